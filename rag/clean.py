"""Clean one scraped Medium page: the article's own text, its author and its date.

A page is navigation, byline, the article, then sign-up walls and recommendations. The cleaner
keeps the article's own prose, headings, lists, quotes, code and tables and drops the page
around it; the author and, when the header has none, the publication day come from the byline.
A change to these rules changes the articles: bump `rag.ingest.CLEANER_VERSION` with it, so an
index built by the old rules is rebuilt rather than mixed.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qsl, urlsplit

# ---------------------------------------------------------------------------------------------
# The article's own text


_LINK_RE = re.compile(
    r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^()\s]*(?:\([^()]*\)[^()\s]*)*)(?:\s+\"[^\"]*\")?\)"
)
_BARE_IMAGE_RE = re.compile(r"!\[[^\]]*\]\([^)]*\)")

# A page ends at the first of these: the sign-up wall, the author box, recommendations, footer.
_END_MARKERS = re.compile(
    r"^(?:Sign up with Google|Sign up with Facebook|Sign up with email|Sign up with Apple"
    r"|Create an account to read the full story\.?|Already have an account\?.*"
    r"|The author made this story available to Medium members only\.?"
    r"|More from .+|Recommended from Medium|See more recommendations|Written by .+"
    r"|See all from .+|Lists|Help|Status)$",
    re.IGNORECASE,
)
_WALL_MARKERS = re.compile(
    r"^(?:Sign up with (?:Google|Facebook|email|Apple)|Create an account to read the full story\.?"
    r"|Already have an account\?.*|Member-only story)$",
    re.IGNORECASE,
)
# Whole lines that are page chrome wherever they occur.
_CHROME_LINES = {
    "open in app",
    "sign up",
    "sign in",
    "write",
    "listen",
    "share",
    "follow",
    "·follow",
    "· follow",
    "member-only story",
    "top highlight",
    "in",
    "by",
    "·",
    "--",
    "about",
    "careers",
    "press",
    "blog",
    "privacy",
    "terms",
    "text to speech",
    "teams",
    "help",
    "status",
    "responses",
    "see more recommendations",
    "get started",
    "save",
    "subscribe",
    "more",
    "published in",
    "mastodon",
    "or, continue in mobile web",
}
_AMBIGUOUS_END = {"help", "status", "lists"}
_COUNT_RE = re.compile(r"^[\d.,]+[KkMm]?(?:\s+[\d.,]+[KkMm]?)*$")
_DATE_LINE_RE = re.compile(
    r"^(?:\d+\s+(?:min|mins|minute|minutes|hour|hours|day|days|week|weeks)\s+(?:read|ago)"
    r"|\d+[dhmw] ago|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{1,2}(?:, \d{4})?"
    r"|Published in .+|·\s*\d+ min read.*|\d+ min read)$",
    re.IGNORECASE,
)
_CAPTION_RE = re.compile(
    r"^(?:photo|image|illustration|source|credit|picture|figure|fig\.|gif|generated|ai generated"
    r"|created|screenshot|diagram)\b.{0,160}$"
    r"|^.{0,100}\b(?:image|photo|illustration|gif) (?:by|from|created by|courtesy of)\b.{0,60}$",
    re.IGNORECASE,
)
_UNDERLINE_RE = re.compile(r"^\s*(=+|-+)\s*$")
_NOT_MEMBER_RE = re.compile(
    r"^>?\s*(?:Not a member|Non-member)s?\b.{0,40}\b(?:read|here|free)\b.{0,40}$", re.IGNORECASE
)
_ESCAPE_RE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~<])")
_BOLD_RE = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_EMPH_RE = re.compile(r"(?<![\w\\])_(?=\S)(.+?)(?<=\S)_(?!\w)")


def _is_chrome_url(url: str) -> bool:
    u = url.lower()
    return (
        "source=" in u
        or "/m/signin" in u
        or "/m/connect/" in u
        or "miro.medium.com" in u
        or "rsci.app.link" in u
        or "medium.com/@" in u
        or u.startswith("https://medium.com/?")
        or u.startswith("https://medium.com/search")
    )


def _strip_links(line: str) -> tuple[str, int, int]:
    """Replace links by their anchor text and drop images.

    Returns the text and the number of links and of page-chrome links (Medium tracking URLs,
    sign-in links, images) that the line held.
    """
    links = chrome = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal links, chrome
        links += 1
        bang, text, url = m.group(1), m.group(2), m.group(3)
        if bang or _is_chrome_url(url) or _BARE_IMAGE_RE.fullmatch(text.strip()):
            chrome += 1
            return "" if bang or _BARE_IMAGE_RE.search(text) else text
        return text

    prev = None
    out = line
    while prev != out:  # nested links ([![img](..)](..)) need two passes
        prev = out
        out = _LINK_RE.sub(sub, out)
    return out, links, chrome


def _inline(text: str) -> str:
    text = _ESCAPE_RE.sub(r"\1", text)
    text = _BOLD_RE.sub(lambda m: m.group(1) or m.group(2), text)
    text = _EMPH_RE.sub(r"\1", text)
    return text


def _norm_title(s: str) -> str:
    return re.sub(r"\W+", " ", unicodedata.normalize("NFKC", s)).strip().lower()


def clean_page(body: list[str], title: str) -> tuple[str, bool]:
    """The article's own text from a scraped Medium page, and whether it is a member-only stub."""
    member_only = any(_WALL_MARKERS.match(_strip_links(line)[0].strip()) for line in body)
    out: list[str] = []
    in_code = False
    prev_was_image = False
    norm_title = _norm_title(title)
    i = 0
    while i < len(body):
        raw = body[i]
        nxt = body[i + 1].strip() if i + 1 < len(body) else ""
        i += 1
        if raw.strip().startswith("```"):
            in_code = not in_code
            out.append(raw.rstrip())
            continue
        if in_code:
            out.append(raw.rstrip())
            continue
        text, links, chrome = _strip_links(raw)
        stripped = text.strip()
        # Bare "Help"/"Status"/"Lists" can be prose; as links they are the page footer.
        if _END_MARKERS.match(stripped) and (links or stripped.lower() not in _AMBIGUOUS_END):
            break
        if links and chrome == links and not stripped.strip(" ·|"):
            prev_was_image = prev_was_image or "![" in raw
            continue
        # Setext heading: the text line followed by ==== or ----.
        if stripped and _UNDERLINE_RE.match(nxt) and not _UNDERLINE_RE.match(stripped):
            level = 1 if nxt.lstrip().startswith("=") else 2
            i += 1
            heading = _inline(stripped)
            if " | by " in heading or (level == 1 and _norm_title(heading).startswith(norm_title)):
                continue  # the page's <title> or the article title, both kept as metadata
            out.extend(["", "#" * level + " " + heading, ""])
            prev_was_image = False
            continue
        if _UNDERLINE_RE.match(stripped) and len(stripped) > 2:
            continue  # a stray underline (of a dropped line)
        if not stripped:
            out.append("")
            continue
        if _is_chrome(stripped, links, chrome):
            continue
        if prev_was_image and _CAPTION_RE.match(stripped) and len(stripped.split()) <= 25:
            prev_was_image = False
            continue
        if raw.lstrip().startswith("#"):
            m = re.match(r"^(#{1,6})\s+(.*)$", stripped)
            if m:
                heading = _inline(m.group(2)).strip()
                if m.group(1) == "#" and _norm_title(heading).startswith(norm_title):
                    continue
                out.extend(["", m.group(1) + " " + heading, ""])
                prev_was_image = False
                continue
        out.append(_inline(text.rstrip()))
        prev_was_image = False
    return _tidy(out), member_only


def _is_chrome(stripped: str, links: int, chrome: int) -> bool:
    """A line of the page around the article: menus, counts, dates, membership notes, or a
    short line made only of site links."""
    return bool(
        stripped.lower() in _CHROME_LINES
        or _COUNT_RE.match(stripped)
        or _DATE_LINE_RE.match(stripped)
        or _NOT_MEMBER_RE.match(_inline(stripped))
        or (links and chrome == links and len(stripped.split()) <= 8 and not stripped.endswith("."))
    )


def _tidy(lines: list[str]) -> str:
    """Collapse blank runs, trim, and drop an unclosed trailing ellipsis line's marker."""
    result: list[str] = []
    for line in lines:
        if not line.strip():
            if result and result[-1] != "":
                result.append("")
            continue
        result.append(line.rstrip())
    while result and result[-1] == "":
        result.pop()
    while result and result[0] == "":
        result.pop(0)
    # A heading left with nothing under it (end of a truncated page) says nothing.
    while result and result[-1].startswith("#"):
        result.pop()
        while result and result[-1] == "":
            result.pop()
    return "\n".join(result)


# ---------------------------------------------------------------------------------------------
# The byline: author and date

# The byline: a link to the author's profile (medium.com/@handle or handle.medium.com) whose
# tracking parameter says `byline`, either as text or as the avatar's alt text ("Image 2: Name").
_PROFILE_URL_RE = re.compile(
    r"^https?://(?:medium\.com/@[^/?#]+|(?!miro\.|rsci\.|www\.)[\w-]+\.medium\.com/?)(?:[?#]|$)"
)
_ALT_RE = re.compile(r"^Image \d+:\s*")
_TITLE_BY_RE = re.compile(r"\|\s*by\s+([^|]+?)\s*\|")
_AUTHOR_SCAN_LINES = 80  # the byline sits in the page's first lines, before the article


def parse_author(header: dict[str, str], body: list[str]) -> str | None:
    """The article's author as the page names it, or None when it names nobody.

    In order of trust: the byline's link to the author's profile, the byline's Follow button
    (`user=Name`), then the page title's `X | by Name | Pub` form (header `Title:` or the
    page's first lines). Links in the recommendations below the article are never used.
    """
    follow: str | None = None
    for raw in body:
        for m in _LINK_RE.finditer(raw):
            url = m.group(3)
            if "byline" not in url:
                continue
            if _PROFILE_URL_RE.match(url):
                text = m.group(2).strip()
                inner = _LINK_RE.fullmatch(text)
                if inner:  # the avatar: an image link whose alt text is the name
                    text = _ALT_RE.sub("", inner.group(2))
                name = _author_name(text)
                if name:
                    return name
            elif follow is None and "user=" in url:
                users = [v for k, v in parse_qsl(urlsplit(url).query) if k == "user"]
                follow = _author_name(users[0]) if users else None
    if follow:
        return follow
    for line in [header.get("Title", ""), *body[:_AUTHOR_SCAN_LINES]]:
        by = _TITLE_BY_RE.search(_strip_links(line)[0])
        if by:
            name = _author_name(by.group(1))
            if name:
                return name
    return None


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_BYLINE_DATE_RE = re.compile(r"^[·\s]*([A-Z][a-z]{2})[a-z]* (\d{1,2}), (\d{4})[·\s]*$")
_AGO_RE = re.compile(r"^[·\s]*(\d+) (minute|hour|day)s? ago[·\s]*$", re.IGNORECASE)


def byline_date(body: list[str], fetched: str | None) -> str | None:
    """The publication day from the byline ("Nov 3, 2024", or "17 hours ago" counted back from
    the fetch time) when the header has no `Published Time:`; None when neither is there."""
    from datetime import datetime, timedelta

    for raw in body[:_AUTHOR_SCAN_LINES]:
        m = _BYLINE_DATE_RE.match(raw)
        if m and m.group(1).lower() in _MONTHS:
            return f"{m.group(3)}-{_MONTHS.index(m.group(1).lower()) + 1:02d}-{int(m.group(2)):02d}"
        ago = _AGO_RE.match(raw)
        if ago and fetched:
            try:
                when = datetime.fromisoformat(fetched)
            except ValueError:
                return None
            delta = timedelta(**{f"{ago.group(2).lower()}s": int(ago.group(1))})
            return (when - delta).date().isoformat()
    return None


def _author_name(text: str) -> str | None:
    name = " ".join(_inline(text).split()).strip(" ·|")
    if not name or len(name) > 100 or "://" in name or name.lower().startswith("image"):
        return None
    return name
