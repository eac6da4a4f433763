"""PII scrubbing (minillm/internet/pii.py): e-mails, IPv4/IPv6, phone numbers -> placeholders.

Run: python -m pytest tests/internet/test_pii.py
"""
import pytest

from minillm.internet.pii import find_pii, scrub_pii


@pytest.mark.parametrize("pii, kind", [
    ("ana.ruiz@example.org", "email"),
    ("j.doe+news@mail.example.co.uk", "email"),
    ("ops_team@sub-domain.example.travel", "email"),
    ("192.168.0.1", "ip"),
    ("8.8.4.4", "ip"),
    ("2001:db8::8a2e:370:7334", "ip"),
    ("fe80::1", "ip"),
    ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "ip"),
    ("+34 912 345 678", "phone"),
    ("(555) 123-4567", "phone"),
    ("555-123-4567", "phone"),
    ("555.123.4567", "phone"),
    ("555-1234", "phone"),
    ("+44 20 7946 0958", "phone"),
    ("+49 (0)30 1234567", "phone"),
    ("030 1234567", "phone"),
    ("06 12 34 56 78", "phone"),
    ("+1-202-555-0143", "phone"),
])
def test_finds_each_kind_in_a_sentence(pii, kind):
    text = f"Write to us at {pii}, or come by."
    assert find_pii(text) == [(15, 15 + len(pii), kind)]
    new, counts = scrub_pii(text)
    assert new == f"Write to us at <{kind.upper()}>, or come by." and counts == {kind: 1}


@pytest.mark.parametrize("text", [
    "It happened on 2024-05-18 at 12:30:45.",
    "Dates like 18.05.2024 and 05/18/2024 are not phones.",
    "He reigned 1979-1983 and again 1987 - 1991.",
    "Version 1.2.3.4.5 is not an address, nor is 10.0.0.256 or 999.1.1.1.",
    "ISBN 978-3-16-148410-0 and pi = 3.14159265.",
    "The town has 1,234,567 people and covers 19,01 km2 at 40.41 3.02.",
    "Order 12345678 shipped in 2023.",
    "Write to me at name at example dot com.",
    "user@localhost is not a public address",
])
def test_leaves_look_alikes_alone(text):
    assert scrub_pii(text) == (text, {})


def test_several_in_one_text_and_overlaps():
    text = "Mail a@b.example or c@d.example; server 10.1.2.3; call +33 1 23 45 67 89."
    new, counts = scrub_pii(text)
    assert new == "Mail <EMAIL> or <EMAIL>; server <IP>; call <PHONE>."
    assert counts == {"email": 2, "ip": 1, "phone": 1}
    spans = find_pii(text)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))   # sorted, non-overlapping
