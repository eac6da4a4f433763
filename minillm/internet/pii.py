"""PII scrubbing: e-mail addresses, IP addresses and phone numbers -> placeholders.

The last text stage of the cleaning pipeline (after deduplication, as in FineWeb, whose
PII formatter anonymises e-mails and IP addresses). We replace each match with a
placeholder a model can learn the shape of without learning the person:

    "mail ana.ruiz@example.org or call +34 912 345 678"
 -> "mail <EMAIL> or call <PHONE>"

IP addresses are found by a loose pattern and then validated with the standard library's
`ipaddress` (so "12:30:45" or "999.1.1.1" are left alone). Phone numbers are the hard one:
we accept 7-15 digits in groups separated by spaces, dots or hyphens, optionally with a
+country code and an (area code), and reject shapes that are usually something else
(dates, version numbers, plain long integers, year ranges).

    python -m minillm.internet.pii "text with jo@example.com"

Read score.py next (how well the whole pipeline did).
"""
import ipaddress
import re
import sys

EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])")
# Candidates only; _valid_ip decides.
IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:|\d{1,3}(?:\.\d{1,3}){3})(?![\w:])")
PHONE = re.compile(
    r"(?<![\w+.,])"
    r"(?P<prefix>\+\d{1,3}[ .-]?(?:\(0\)[ .-]?)?)?"   # +44, +49 (0)
    r"(?P<area>\(\d{1,5}\)[ .-]?)?"                  # (555), (030)
    r"(?P<body>\d{1,8}(?:[ .-]\d{1,8}){0,5})"         # 555-123-4567, 06 12 34 56 78
    r"(?![\w]|[.,]\d)")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_YEAR_RANGE = re.compile(r"\d{4}\s*-\s*\d{4}")
_SEPARATOR = re.compile(r"[ .-]")

PLACEHOLDERS = {"email": "<EMAIL>", "ip": "<IP>", "phone": "<PHONE>"}


def _valid_ip(s):
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def _is_phone(m):
    """Whether a PHONE match looks like a phone number rather than a date, an ISBN, a
    version number, a decimal, a plain integer or a year range."""
    s, body = m.group(), m.group("body")
    digits = sum(c.isdigit() for c in s)
    if not 7 <= digits <= 15 or _DATE.fullmatch(s) or _YEAR_RANGE.fullmatch(s):
        return False
    groups = _SEPARATOR.split(body)
    separators = set(_SEPARATOR.findall(body))
    if len(separators) > 1:                # "40.41 3.02": phones keep one separator
        return False
    if any(len(g) == 1 for g in groups[1:]):  # ISBNs and versions have 1-digit groups
        return False
    if separators == {"."} and min(map(len, groups)) < 2:
        return False
    if m.group("prefix") or m.group("area"):
        return True
    # No country or area code: we need a phone-like grouping: 3+ groups (555 123 4567,
    # 06 12 34 56 78), or a trunk "0" prefix (030 1234567), or 555-1234.
    return (len(groups) >= 3 or (len(groups) == 2 and groups[0].startswith("0"))
            or (separators == {"-"} and len(groups) == 2 and len(groups[1]) == 4))


def find_pii(text):
    """Sorted, non-overlapping (start, end, kind) spans of PII in `text`."""
    spans = [(m.start(), m.end(), "email") for m in EMAIL.finditer(text)]
    spans += [(m.start(), m.end(), "ip") for m in IPV4.finditer(text) if _valid_ip(m.group())]
    spans += [(m.start(), m.end(), "ip") for m in IPV6.finditer(text) if _valid_ip(m.group())]
    spans += [(m.start(), m.end(), "phone") for m in PHONE.finditer(text) if _is_phone(m)]
    spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    out, end = [], -1
    for s in spans:             # earlier and, at equal start, longer spans win
        if s[0] >= end:
            out.append(s)
            end = s[1]
    return out


def scrub_pii(text):
    """Replace PII with placeholders. Returns (new_text, counts {kind: n})."""
    spans = find_pii(text)
    if not spans:
        return text, {}
    parts, counts, pos = [], {}, 0
    for start, end, kind in spans:
        parts.append(text[pos:start])
        parts.append(PLACEHOLDERS[kind])
        counts[kind] = counts.get(kind, 0) + 1
        pos = end
    parts.append(text[pos:])
    return "".join(parts), counts


if __name__ == "__main__":
    print(scrub_pii(" ".join(sys.argv[1:]) or sys.stdin.read())[0])
