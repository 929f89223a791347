"""An article's structure as answers read it: which place a question asks about ("the second
flaw", "number one on the list", "the third script"), the number a heading or list item carries
("Flaw 2: ...", "## 3. File Organizer", "1. It's made up: ..."), and the sentences that lead into
an article rather than answer anything ("Let's get to it!").

Medium articles are often lists of numbered sections; a question about a position is answered
from the heading or item with that number, never from the prose that happens to be closest.
"""

from __future__ import annotations

import re

_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "last": -1, "final": -1,
}  # fmt: skip
_CARDINALS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
}  # fmt: skip
_NUM = r"(\d{1,2}|" + "|".join(_CARDINALS) + r")"
# "the second flaw", "the 3rd script", "number one", "#4", "No. 2", "script 5", "step three".
_ORDINAL_Q_RE = re.compile(
    r"\b(?:the|its|their|his|her)\s+(" + "|".join(_ORDINALS) + r")\b"
    r"|\b(\d{1,2})(?:st|nd|rd|th)\b"
    r"|\b(?:number|no\.?|#)\s*" + _NUM + r"\b"
    r"|\b(?:flaw|step|script|reason|tip|item|point|library|lesson|tool|rule|mistake|part|section"
    r"|question|stage|phase|way|idea|example|trick|thing)s?\s+" + _NUM + r"\b",
    re.IGNORECASE,
)
# The number a heading or list item opens with: "1.", "1)", "#1", "Flaw 1:", "Step 3 -", "No. 2".
_NUMBERED_RE = re.compile(
    r"^(?:#{1,6}\s+)?(?:[*+-]\s+)?(?:\*\*)?"
    r"(?:(\d{1,2})[.):]\s|#(\d{1,2})\b|(?:[A-Z][a-z]+|No\.?)\s+(\d{1,2})\s*[:.)\-–—]\s*)"
)
# Lead-ins and sign-offs: what an article says about itself, never what it says about its topic.
_FILLER_RE = re.compile(
    r"^(?:let['’]s (?:get|dive|begin|start|jump|go|take a look|look|explore)\b"
    r"|(?:so,? )?without further ado\b|here we go\b|read on\b|stay tuned\b"
    r"|(?:since|if|as|now that) you(?:['’]re| are) reading this\b"
    r"|you(?:['’]re| are) (?:probably )?reading this\b"
    r"|in this (?:article|post|piece|blog|story|guide|tutorial)\b"
    r"|(?:thanks|thank you) for reading\b|if you (?:enjoyed|liked|found) this\b|follow me\b"
    r"|(?:feel free to|don['’]t forget to) (?:follow|clap|subscribe|connect|reach)\b"
    r"|happy (?:coding|learning)\b|i hope (?:you|this)\b|hope (?:you|this)\b"
    r"|(?:but )?there['’]s a catch\b|case closed\b|not quite\b)",
    re.IGNORECASE,
)


def asked_position(question: str) -> int | None:
    """The place in a sequence the question asks about (1-based; -1 for "the last"), or None."""
    m = _ORDINAL_Q_RE.search(question)
    if not m:
        return None
    word = next(g for g in m.groups() if g)
    low = word.lower()
    if low in _ORDINALS:
        return _ORDINALS[low]
    if low in _CARDINALS:
        return _CARDINALS[low]
    return int(low)


def position_of(line: str) -> int | None:
    """The number a heading or list item opens with ("Flaw 2: ..." -> 2), or None."""
    m = _NUMBERED_RE.match(line.strip())
    if not m:
        return None
    return int(next(g for g in m.groups() if g))


def is_filler(sentence: str) -> bool:
    """Whether a sentence leads into the article or signs off rather than says anything."""
    return bool(_FILLER_RE.match(plain(sentence)))


def plain(line: str) -> str:
    """A heading or list line as prose: without its markdown marks ("## ", "1. ", "**")."""
    line = re.sub(r"^#{1,6}\s+", "", line.strip())
    line = re.sub(r"^(?:[*+-]|>)\s+", "", line)
    return line.replace("**", "").strip()


def numbered(text: str, place: int) -> list[str]:
    """The heading and list item lines of an article's clean text that carry number `place`
    (-1: the highest number its headings, else its items, reach), headings first."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    heads = [(position_of(ln), ln) for ln in lines if ln.startswith("#")]
    items = [(position_of(ln), ln) for ln in lines if not ln.startswith("#")]
    out: list[str] = []
    for seq in (heads, items):
        numbers = [n for n, _ in seq if n is not None]
        if not numbers:
            continue
        want = max(numbers) if place == -1 else place
        out += [ln for n, ln in seq if n == want]
    return out
