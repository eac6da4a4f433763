"""Download real corpora: resumable, checksummed, retried, atomic.

The mini-world is minillm's default data; this fetches real text when you are online:

    minillm download tinyshakespeare                 # a catalogue name (minillm download --list)
    minillm download https://host/file.txt --sha256 HEX --out DIR      (the command: cli.py)

How a download survives a bad network: bytes go to `<file>.part`, and a rerun or a retry
asks for the rest with `Range: bytes=N-` (a server that ignores Range sends the whole file:
the .part starts over); a dropped connection, a timeout or a 5xx is retried with
exponential backoff, counting attempts only while no bytes arrive; the finished file's
sha256 is checked against the catalogue or --sha256 (a mismatch deletes the .part, and
without a known checksum the computed one is printed); only a verified file is renamed
into place. Read warc.py next (what a crawl's files hold).
"""
import hashlib
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from tqdm import tqdm

from minillm.common import UserError

CHUNK = 1 << 16


@dataclass(frozen=True)
class Source:
    """A known corpus: where it lives and the sha256 it must have (None: unknown yet)."""
    url: str
    sha256: str | None
    size: int | None
    note: str


CATALOGUE = {
    # sha256 confirmed in several independent projects.
    "tinyshakespeare": Source(
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", 1_115_394,
        "40,000 lines of Shakespeare (char-rnn's classic benchmark), 1.1 MB"),
    # The sha256s below could not be verified offline: the first download prints them.
    "tinystories-valid": Source(
        "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-valid.txt",
        None, None, "TinyStories validation split (GPT-3.5 stories, plain text), ~19 MB"),
    "tinystories-v2-valid": Source(
        "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-valid.txt",
        None, None, "TinyStories v2 validation split (GPT-4 stories, plain text), ~22 MB"),
    "fineweb-edu-sample": Source(
        "https://huggingface.co/datasets/HuggingFaceFW/fineweb-edu/resolve/main/sample/10BT/000_00000.parquet",
        None, None, "first parquet file of FineWeb-Edu's 10B-token sample, ~2 GB"),
}


# FineWeb's URL word lists (datatrove's assets, Apache-2.0; explicit vocabulary by design),
# pinned to the commits whose bytes the checksums are: `minillm download fineweb-url-filter`
# writes all three into one directory for `minillm clean --url-filter DIR`.
_DATATROVE = "https://raw.githubusercontent.com/huggingface/datatrove/{}/src/datatrove/assets/{}"
CATALOGUE.update({
    "fineweb-banned-words": Source(
        _DATATROVE.format("6fcdc4144b9f6b46a99ce07255e189d8251066cd", "banned_words.txt"),
        "7aae5109ccc4d8357167168fa3a91331fa2fafd8eb8cc9c38cc9147c2610fab0", 1_732,
        "FineWeb's URL filter: words that block a URL"),
    "fineweb-soft-banned-words": Source(
        _DATATROVE.format("07d4409bf7befa1c977b7277bfd832091f5cb9df", "soft_banned_words.txt"),
        "e5043030accca33b0e368a693997576beea4c58279da641bff40b4e02281b063", 674,
        "FineWeb's URL filter: words of which two block a URL"),
    "fineweb-banned-subwords": Source(
        _DATATROVE.format("07d4409bf7befa1c977b7277bfd832091f5cb9df", "banned_subwords.txt"),
        "4770445cd8d2b16495efde88bc4efc3a520bdc0f3137d14d85cd3d89b194a232", 1_673,
        "FineWeb's URL filter: sub-words that block a URL anywhere in it"),
})
# a name for several catalogue entries downloaded into one directory
GROUPS = {"fineweb-url-filter": ("fineweb-banned-words", "fineweb-soft-banned-words", "fineweb-banned-subwords")}


def sha256_file(path):
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Retry(Exception):
    """A transient failure: try again (after backoff) from where the .part ends."""


def _open(url, offset, timeout):
    """GET `url` from byte `offset`. Returns (response, append?, total size or None)."""
    headers = {"User-Agent": "minillm-download/1.0"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing after `offset`: the .part may be complete
            total = e.headers.get("Content-Range", "").rpartition("/")[2]
            e.close()
            if total.isdigit() and int(total) == offset:
                return None, True, offset
            raise _Retry("range not satisfiable; restarting") from None
        if e.code in (408, 429) or e.code >= 500:
            raise _Retry(f"HTTP {e.code}") from None
        raise UserError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, HTTPException) as e:
        raise _Retry(str(getattr(e, "reason", e))) from None
    length = resp.headers.get("Content-Length")
    if resp.status == 206:
        start, _, total = resp.headers.get("Content-Range", "").partition("-")
        if not start.endswith(f" {offset}"):
            resp.close()
            raise _Retry("server answered a different range")
        total = total.rpartition("/")[2]
        return resp, True, int(total) if total.isdigit() else None
    # 200: the server sent the whole file (it ignores Range, or offset was 0).
    return resp, False, int(length) if length and length.isdigit() else None


def _fetch_once(url, part, timeout, bar):
    """One request: append to (or restart) `part`. Returns the expected total size, or None."""
    offset = part.stat().st_size if part.exists() else 0
    resp, append, total = _open(url, offset, timeout)
    if resp is None:
        return total
    with resp, open(part, "ab" if append else "wb") as f:
        if not append and offset:
            bar.reset(total=total)  # subtle: restarting from scratch, the bar must too
        if total and bar.total != total:
            bar.total = total
        while True:
            try:
                block = resp.read(CHUNK)
            except (OSError, HTTPException) as e:  # cut off mid-transfer (IncompleteRead, reset)
                raise _Retry(f"connection lost: {e!r}") from None
            if not block:
                break
            f.write(block)
            bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Retry(f"connection closed after {size} of {total} bytes")
    return size if total is None else total


def download(url, dest, sha256=None, *, retries=5, backoff=1.0, timeout=30.0, progress=True, log=print):
    """Download `url` to `dest` (resumable, verified, atomic). Returns the final Path.

    `dest` already present: verified against `sha256` (if given) and returned. A partial
    `dest.part` is resumed. Raises UserError after `retries` failed attempts in a row or
    on a checksum mismatch (the .part is deleted then).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    sha256 = sha256.lower() if sha256 else None
    if dest.exists():
        if sha256 and sha256_file(dest) != sha256:
            raise UserError(f"{dest} exists but its sha256 is not {sha256}; delete it and rerun")
        log(f"already downloaded: {dest}")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    initial = part.stat().st_size if part.exists() else 0
    with tqdm(total=None, initial=initial, unit="B", unit_scale=True, desc=dest.name,
              disable=not progress, file=sys.stderr) as bar:
        while True:
            before = part.stat().st_size if part.exists() else 0
            try:
                _fetch_once(url, part, timeout, bar)
                break
            except _Retry as e:
                now = part.stat().st_size if part.exists() else 0
                failures = 0 if now > before else failures + 1
                if failures >= retries:
                    raise UserError(f"download of {url} failed {retries} times in a row ({e}); "
                                    f"rerun to resume from {part}") from None
                time.sleep(backoff * 2 ** max(failures - 1, 0))
    digest = sha256_file(part)
    if sha256 and digest != sha256:
        part.unlink()
        raise UserError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest}; "
                        "the download was deleted")
    os.replace(part, dest)
    if not sha256:
        log(f"sha256 {digest}  (no checksum was known; pass --sha256 {digest} to verify next time)")
    return dest


def resolve(name_or_url):
    """A catalogue name or an http(s) URL -> (url, sha256 or None, file name)."""
    if name_or_url in CATALOGUE:
        src = CATALOGUE[name_or_url]
        return src.url, src.sha256, Path(urllib.parse.urlparse(src.url).path).name
    parsed = urllib.parse.urlparse(name_or_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UserError(f"unknown source {name_or_url!r}: give an http(s) URL or one of "
                        f"{', '.join(CATALOGUE)} (minillm download --list)")
    name = Path(urllib.parse.unquote(parsed.path)).name or "download"
    return name_or_url, None, name
