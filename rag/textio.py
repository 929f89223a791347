"""Text as it comes in, whatever its bytes: decoded explicitly, and a question cleaned of what no
tokenizer should see.

Every place text enters `rag` goes through here: arguments, standard input, scrape files, the
config file (and `rag serve`'s requests). The rules, in order:

- a byte-order mark decides: UTF-8, UTF-16 or UTF-32 (little or big endian);
- no mark, but a NUL in every other byte of the start: UTF-16 of that byte order (ASCII text
  written by Windows tools);
- otherwise UTF-8, where each byte that is not UTF-8 is read on its own as Windows-1252 (Latin-1
  for the five bytes that code page leaves undefined). So a Latin-1 "café" reads as "café", and a
  UTF-8 file with one stray byte keeps the rest of its text; `Decoded.bad_line` says where the
  first such byte was, for a warning.

Python's surrogate escapes (how it hands over argument bytes that are not in the locale's
encoding) are turned back into their bytes and decoded by the same rules, so no lone surrogate
ever reaches the tokenizer, which rejects them.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from rag.errors import RagError

FALLBACK = "Windows-1252"  # named in warnings: how bytes that are not UTF-8 were read

# Longest marks first: UTF-32-LE's mark begins with UTF-16-LE's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _cp1252_char(b: int) -> str:
    try:
        return bytes([b]).decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d: Latin-1's control characters
        return chr(b)


# Latin-1 decodes every byte to the code point of its value; this table then makes it cp1252.
_LATIN1_TO_CP1252 = {b: _cp1252_char(b) for b in range(0x80, 0xA0)}
# A run of well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
_UTF8_RUN = re.compile(
    rb"(?:[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})+"
)


def _utf8_else_cp1252(data: bytes) -> str:
    """Runs of UTF-8 as UTF-8, each byte between them as Windows-1252."""
    out, at = [], 0
    for m in _UTF8_RUN.finditer(data):
        out.append(data[at : m.start()].decode("latin-1").translate(_LATIN1_TO_CP1252))
        out.append(m.group().decode("utf-8"))
        at = m.end()
    out.append(data[at:].decode("latin-1").translate(_LATIN1_TO_CP1252))
    return "".join(out)


@dataclass(frozen=True)
class Decoded:
    """Decoded text, the encoding it was read in, and the 1-based line of the first byte that
    was not UTF-8 (read as Windows-1252), or None when every byte was."""

    text: str
    encoding: str
    bad_line: int | None = None


def bom_encoding(data: bytes) -> str | None:
    """The encoding the byte-order mark at the start of `data` names, or None."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return None


def sniff_encoding(data: bytes) -> str | None:
    """The encoding the start of `data` gives away, or None (then UTF-8 is tried): a byte-order
    mark's, or UTF-16 when a NUL is every other byte of the start (ASCII written as UTF-16)."""
    encoding = bom_encoding(data)
    head = data[:64]
    if encoding is not None or len(head) < 4 or len(head) % 2:
        return encoding
    if not any(head[0::2]):
        return "utf-16-be"
    if not any(head[1::2]):
        return "utf-16-le"
    return None


def _utf8(data: bytes) -> Decoded:
    try:
        return Decoded(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return Decoded(_utf8_else_cp1252(data), "utf-8", bad_line=line)


def decode_bytes(data: bytes) -> Decoded:
    """`data` as text, by the rules in this module's docstring; never fails."""
    encoding = sniff_encoding(data)
    if encoding == "utf-8":
        return _utf8(data[len(codecs.BOM_UTF8) :])
    if encoding is not None:
        # The utf-16 and utf-32 codecs read and drop a mark themselves; a broken unit is U+FFFD.
        codec = encoding if bom_encoding(data) is None else encoding[:6]
        return Decoded(data.decode(codec, errors="replace"), encoding)
    return _utf8(data)


def decode_lines(data: bytes) -> Iterator[tuple[int, str, bool]]:
    """Each line of `data` (a file or standard input) as (1-based number, text, whether some of
    its bytes were not UTF-8). Lines end at '\\n' only, so the numbers are an editor's."""
    encoding = sniff_encoding(data)
    if encoding is not None and encoding != "utf-8":
        for n, line in enumerate(decode_bytes(data).text.split("\n"), start=1):
            yield n, line, False
        return
    if encoding == "utf-8":
        data = data[len(codecs.BOM_UTF8) :]
    # Line by line, so that a warning names the very lines that were not UTF-8.
    for n, raw in enumerate(data.split(b"\n"), start=1):
        d = _utf8(raw)
        yield n, d.text, d.bad_line is not None


def from_argv(arg: str) -> str:
    """An argument as Python handed it over (bytes not in the locale's encoding as surrogate
    escapes), decoded by this module's rules; any other lone surrogate is dropped."""
    if not any("\ud800" <= c <= "\udfff" for c in arg):
        return arg
    try:
        return decode_bytes(arg.encode("utf-8", errors="surrogateescape")).text
    except UnicodeEncodeError:  # a surrogate that is no escape: drop every surrogate
        return "".join(c for c in arg if not "\ud800" <= c <= "\udfff")


_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
EMPTY = "empty query: give some words to search for"


def _unwanted(c: str) -> str | None:
    """What a character becomes in a question: None to keep it, '' to drop it, ' ' for a break."""
    cat = unicodedata.category(c)
    if cat == "Cc":  # controls, NUL, tab, newline, C1 controls: a break between words
        return " "
    if cat in ("Cf", "Cs", "Co") or c == "\ufffd":
        # format (bidi overrides, zero-width), surrogates, private use, replacement characters
        return ""
    if cat in ("Zl", "Zp"):
        return " "
    return None


class _Cleaner(dict[int, str]):
    """str.translate's table, filled as characters are met (cheap for the few a text uses), up
    to a bound, so that a server fed every code point does not keep a million entries."""

    def __missing__(self, code: int) -> str:
        out = _unwanted(chr(code))
        value = chr(code) if out is None else out
        if len(self) < 65536:
            self[code] = value
        return value


_TABLE = _Cleaner()


def clean_question(text: str | bytes, max_chars: int | None = None) -> str:
    """A question or query fit for the tokenizer: decoded (bytes, or a str holding surrogate
    escapes), without control, format (bidi, zero-width) or private-use characters, NULs and lone
    surrogates, runs of whitespace made one space. Raises RagError with a one-line message when
    nothing is left or (with `max_chars`) when it is longer than that."""
    if isinstance(text, bytes):
        text = decode_bytes(text).text
    else:
        text = from_argv(text)
    if "\x1b" in text:  # a terminal's colours pasted along: drop the whole escape sequence
        text = _ANSI_RE.sub(" ", text)
    if not text.strip():
        raise RagError(EMPTY)
    cleaned = " ".join(text.translate(_TABLE).split())
    if not cleaned:
        raise RagError("nothing left once control characters are removed: give some words to search for")
    if max_chars is not None and len(cleaned) > max_chars:
        raise RagError(f"question too long ({len(cleaned)} characters; at most {max_chars})")
    return cleaned
