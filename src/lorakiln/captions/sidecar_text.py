"""Caption sidecar files (`img.txt`, `img.caption`) read as clean text, whatever tool saved them.

Every reader of a user's caption files goes through here (`kiln import`, `kiln doctor FOLDER`,
`kiln train --data FOLDER`), so one file reads the same everywhere. The encoding is found in
this order: a byte-order mark (UTF-8, UTF-16, UTF-32), UTF-16/32 without one (its NUL-byte
pattern), strict UTF-8, then charset-normalizer among common legacy code pages (Windows
Western and Cyrillic, Shift-JIS, EUC-JP, GB18030, Big5, Korean). Control characters are
removed; a NUL or a U+FFFD replacement character never reaches a caption: such a file is
refused with its reason, as is anything that is not a regular file of a sensible size.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from lorakiln.core.errors import ItemError
from lorakiln.dataset.folders import os_problem, visible_name

MAX_CAPTION_BYTES = 1 << 20  # a caption is a few hundred bytes; a megabyte is a wrong file
UTF8 = "utf-8"

_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", "utf-8-sig"), (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"),
)
LEGACY_ENCODINGS = ["cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1257", "koi8_r",
                    "cp932", "euc_jp", "gb18030", "big5", "cp949"]
_AS_SPACE = re.compile("[\t\v\f\x85\u00a0]")
_AS_NEWLINE = re.compile("[\r\u2028\u2029]")
# the other C0 and C1 control characters (category Cc), byte-order marks and zero-width spaces
_REMOVED = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u200b\ufeff\ufffe]")


@dataclass(frozen=True)
class SidecarText:
    """A caption file's text, cleaned, with how it was read."""

    path: Path
    text: str
    encoding: str = UTF8
    removed: int = 0  # control characters taken out

    @property
    def note(self) -> str | None:
        """What a user should know about this file, or None when it was plain UTF-8."""
        parts = [f"read as {self.encoding} (not UTF-8)"] if self.encoding != UTF8 else []
        if self.removed:
            parts.append(f"{self.removed} control character(s) removed")
        return "; ".join(parts) or None


def decode_caption_bytes(data: bytes) -> tuple[str, str]:
    """(text, encoding) of a caption file's bytes; ValueError with the reason when none fits."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return _strict(data[len(bom):], enc, f"starts with a {enc} byte-order mark but is not valid {enc}")
    if b"\x00" in data:
        enc = _wide_without_bom(data)
        try:
            text = data.decode(enc) if enc else ""
        except UnicodeDecodeError:
            text = ""
        if not text or not _plausible(text):
            raise ValueError("holds NUL bytes: a binary file, not caption text")
        return text, enc
    try:
        return data.decode(UTF8), UTF8
    except UnicodeDecodeError:
        pass
    return _guess_legacy(data)


def clean_caption_text(text: str) -> tuple[str, int]:
    """(text, how many characters were removed): control characters out, tabs as spaces, CRs as newlines.

    A NUL or U+FFFD means the text was damaged before it reached us: refused, never passed on."""
    if "\x00" in text:
        raise ValueError("holds NUL characters: a binary file, not caption text")
    if "\ufffd" in text:
        raise ValueError("holds U+FFFD replacement characters: an earlier conversion damaged it; "
                         "retype the damaged tags")
    text = _AS_NEWLINE.sub("\n", text.replace("\r\n", "\n"))
    return _REMOVED.subn("", _AS_SPACE.sub(" ", text))


def read_sidecar(path: Path) -> SidecarText:
    """Read one caption file; ItemError (naming the file) when it cannot become caption text."""
    path = Path(path)
    data = _read_bytes(path, visible_name(str(path)))
    try:
        text, enc = decode_caption_bytes(data)
        text, removed = clean_caption_text(text)
    except ValueError as e:
        raise ItemError(visible_name(str(path)), str(e)) from None
    return SidecarText(path, text, enc, removed)


def find_sidecar(image: Path, extensions: Iterable[str], *, full_name: bool = False) -> Path | None:
    """The first caption path beside `image` that exists in any form (a folder or a broken link
    too, so reading it reports the problem instead of skipping the caption silently).

    `img.txt` per extension; with `full_name` also `img.png.txt` right after it."""
    for ext in extensions:
        cands = (image.with_suffix(ext), image.with_name(image.name + ext)) if full_name else (image.with_suffix(ext),)
        for cand in cands:
            if os.path.lexists(cand):
                return cand
    return None


def read_image_caption(image: Path, extensions: Iterable[str], *, full_name: bool = False) -> SidecarText | None:
    """The caption beside `image`, or None when it has none; ItemError when it has a bad one."""
    cand = find_sidecar(image, extensions, full_name=full_name)
    return None if cand is None else read_sidecar(cand)


def _read_bytes(path: Path, shown: str) -> bytes:
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise ItemError(shown, "a folder, not a caption file")
        if not stat.S_ISREG(st.st_mode):  # a pipe would block the read forever
            raise ItemError(shown, "not a regular file (a pipe, socket or device)")
        if st.st_size > MAX_CAPTION_BYTES:
            raise ItemError(shown, f"{st.st_size} bytes, more than the {MAX_CAPTION_BYTES} a caption can be")
        with open(path, "rb") as f:
            data = f.read(MAX_CAPTION_BYTES + 1)
    except OSError as e:
        raise ItemError(shown, os_problem(e)) from None
    if len(data) > MAX_CAPTION_BYTES:  # grew after the size check
        raise ItemError(shown, f"grew past {MAX_CAPTION_BYTES} bytes while read: not a caption")
    return data


def _strict(data: bytes, enc: str, problem: str) -> tuple[str, str]:
    try:
        return data.decode(enc), enc.removesuffix("-sig")
    except UnicodeDecodeError:
        raise ValueError(problem) from None


def _plausible(text: str) -> bool:
    """Text a person typed: no control characters but line ends and tabs, nothing unassigned or private."""
    return all(ch in "\t\n\r" or unicodedata.category(ch) not in ("Cc", "Cn", "Co", "Cs") for ch in text)


def _wide_without_bom(data: bytes) -> str | None:
    """UTF-32 or UTF-16 (little or big endian) told by where the NUL bytes fall.

    Tags are mostly ASCII, so in real UTF-16 text at least a quarter of the characters have a
    NUL high byte (and none a NUL low byte); a binary file with a stray NUL does not pass."""
    def zeros(start: int, step: int) -> bool:
        return all(b == 0 for b in data[start::step])

    if len(data) % 4 == 0 and zeros(2, 4) and zeros(3, 4):
        return "utf-32-le"
    if len(data) % 4 == 0 and zeros(0, 4) and zeros(1, 4):
        return "utf-32-be"
    if len(data) % 2 == 0:
        odd, even, units = data[1::2].count(0), data[0::2].count(0), len(data) // 2
        if even == 0 and odd * 4 >= units:
            return "utf-16-le"
        if odd == 0 and even * 4 >= units:
            return "utf-16-be"
    return None


def _guess_legacy(data: bytes) -> tuple[str, str]:
    """A legacy code page by charset-normalizer; Latin-script guesses read as Windows-1252.

    On a caption's few bytes the detector cannot tell the Latin code pages apart (it reads
    cp1252's `naïve` as cp1250's `naďve`), and Windows-1252 is what Western Windows tools wrote."""
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=LEGACY_ENCODINGS).best()
    if best is None:
        raise ValueError("not UTF-8, and no common encoding fits it: save it as UTF-8")
    enc = best.encoding
    if enc in ("cp1250", "cp1254", "cp1257") and all(a.startswith(("Basic Latin", "Latin")) for a in best.alphabets):
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            pass
    return str(best), enc
