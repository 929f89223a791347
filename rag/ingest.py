"""Read scrape bundles into clean articles.

A bundle is a markdown file holding articles, each under `## <Publication>` with a header block
(`Source:`, `Date fetched:`, `Title:`, `URL Source:`, `Published Time:`, `Markdown Content:`) and a
body that is a Medium page: navigation, byline, the article, then sign-up walls and recommendations.
Every article is repeated under `## Visual Content Analysis`; the repeat is skipped.

The cleaner keeps the article's own prose, headings, lists, quotes, code and tables and drops the
page around it. Anything unexpected in a file becomes a `Warning` naming file and line, never an
exception: one bad scrape must not stop the rest from being indexed.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

CLEANER_VERSION = "2"  # 2: the author is parsed from the byline (and hashed)

# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Article:
    """One cleaned article, identified by its canonical URL."""

    url: str
    title: str
    publication: str
    published: str | None  # ISO 8601 as scraped, or None when the page had no date
    fetched: str | None
    text: str  # clean markdown: ATX headings, paragraphs, lists, quotes, code, tables
    member_only: bool
    source_file: str
    source_line: int
    aliases: tuple[str, ...] = ()
    author: str | None = None  # from the page's byline or title; None when the page names nobody

    # Cached: an incremental build asks every article for both, and hashing is its main cost.
    @cached_property
    def id(self) -> str:
        return article_id(self.url)

    @cached_property
    def content_hash(self) -> str:
        """Hash of everything that shapes this article's chunks; a change means re-embedding."""
        h = hashlib.sha256()
        parts = (self.url, self.title, self.author or "", self.publication, self.published or "", self.text)
        for part in parts:
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()[:32]


@dataclass(frozen=True)
class Warning:  # noqa: A001 - a record, not the builtin category
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class IngestResult:
    articles: list[Article] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    files: int = 0


def article_id(url: str) -> str:
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# URLs

_TRACKING_PARAMS = {"source", "sk", "gi", "fbclid", "gclid", "ref", "referrer", "sharedby"}


def canonical_url(url: str) -> str:
    """Normalise a URL so that re-scrapes of one article compare equal.

    Lower-cases scheme and host, forces https, drops the fragment, tracking parameters
    (utm_*, Medium's `source` and friends) and a trailing slash.
    """
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "https").lower()
    if scheme == "http":
        scheme = "https"
    host = parts.netloc.lower()
    if host.endswith(":443"):
        host = host[:-4]
    path = parts.path.rstrip("/") or ""
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in _TRACKING_PARAMS
    ]
    return urlunsplit((scheme, host, path, urlencode(query), ""))


# ---------------------------------------------------------------------------------------------
# Finding bundle files and reading them safely


def find_bundles(path: Path) -> list[Path]:
    """Every file under `path` (a file or a folder, recursively), in a stable order."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def _decode(path: Path, data: bytes) -> tuple[str | None, list[Warning]]:
    name = str(path)
    if not data.strip():
        return None, [Warning(name, 1, "empty file, skipped")]
    if _control_ratio(data[:8192]) > 0.1:
        return None, [Warning(name, 1, "binary file, skipped")]
    warnings: list[Warning] = []
    if b"\x00" in data:  # a few stray NULs in a text file: drop them, keep the text
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        warnings.append(Warning(name, line, "NUL bytes removed"))
        data = data.replace(b"\x00", b"")
    try:
        return data.decode("utf-8"), warnings
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        text = data.decode("utf-8", errors="replace").replace("\ufffd", "")
        return text, [*warnings, Warning(name, line, "invalid UTF-8 bytes removed")]


def _control_ratio(data: bytes) -> float:
    if not data:
        return 0.0
    bad = sum(1 for b in data if b < 32 and b not in (9, 10, 12, 13))  # NUL included
    return bad / len(data)


# ---------------------------------------------------------------------------------------------
# Splitting a bundle into raw articles

_ODD_SPACE_RE = re.compile("[\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_INVISIBLE_RE = re.compile("[\u200b-\u200d\u2060\ufeff]")
_HEADER_RE = re.compile(r"^(Source|Date fetched|Title|URL Source|Published Time):\s*(.*)$")
_VISUAL = "## Visual Content Analysis"


@dataclass
class _RawArticle:
    publication: str
    line: int  # 1-based line of the `## Publication` heading
    header: dict[str, str]
    body: list[str]
    body_line: int
    complete: bool  # followed by its Visual Content Analysis repeat, another article or a bundle


def _is_article_start(lines: list[str], i: int) -> bool:
    """`## X` followed, within a few non-blank lines, by a header line such as `Source:`."""
    line = lines[i]
    if not line.startswith("## ") or line.startswith(_VISUAL):
        return False
    seen = 0
    for j in range(i + 1, min(i + 8, len(lines))):
        s = lines[j].strip()
        if not s:
            continue
        if _HEADER_RE.match(s):
            return True
        seen += 1
        if seen >= 2:
            return False
    return False


def _split_articles(lines: list[str]) -> Iterator[_RawArticle]:
    starts = [i for i in range(len(lines)) if _is_article_start(lines, i)]
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        block = lines[start:end]
        # The article ends at its Visual Content Analysis repeat or at the next bundle.
        stop = len(block)
        complete = n + 1 < len(starts)
        for k, line in enumerate(block[1:], start=1):
            if line.startswith(_VISUAL) or line.startswith("# Bundle:"):
                stop, complete = k, True
                break
        header: dict[str, str] = {}
        k = 1
        while k < stop:
            s = block[k].strip()
            if s == "Markdown Content:":
                k += 1
                break
            m = _HEADER_RE.match(s)
            if m:
                header.setdefault(m.group(1), m.group(2).strip())
            elif s and s != "---":
                # A body that starts without `Markdown Content:` (seen in real scrapes).
                if "Title" in header or "URL Source" in header:
                    break
            k += 1
        yield _RawArticle(
            publication=block[0][3:].strip(),
            line=start + 1,
            header=header,
            body=block[k:stop],
            body_line=start + k + 1,
            complete=complete,
        )


# ---------------------------------------------------------------------------------------------
# Cleaning one Medium page into the article's own text

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
# Parsing, then de-duplicating


def parse_bundle(path: Path, data: bytes | None = None) -> tuple[list[Article], list[Warning]]:
    """Articles in one bundle file, and a warning for everything that had to be skipped."""
    name = str(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as e:
            return [], [Warning(name, 0, f"cannot read file: {e.strerror or e}")]
    text, warnings = _decode(path, data)
    if text is None:
        return [], warnings
    text = _ODD_SPACE_RE.sub(" ", _INVISIBLE_RE.sub("", text))
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    raws = list(_split_articles(lines))
    if not raws:
        return [], [
            *warnings,
            Warning(
                name, 1, "not a scrape bundle (no '## <Publication>' heading followed by 'Source:'), skipped"
            ),
        ]
    # A bundle normally repeats each article under Visual Content Analysis; when it does, a last
    # article without its repeat was cut off mid-way.
    has_repeats = any(line.startswith(_VISUAL) for line in lines)
    articles: list[Article] = []
    for raw in raws:
        url = raw.header.get("Source") or raw.header.get("URL Source")
        if not url or not re.match(r"^https?://\S+$", url):
            warnings.append(Warning(name, raw.line, "article has no Source URL, skipped"))
            continue
        if (has_repeats and not raw.complete) or not any(s.strip() for s in raw.body):
            warnings.append(Warning(name, raw.line, "article is cut off (bundle ends mid-article), skipped"))
            continue
        title = _clean_title(raw.header.get("Title", ""), raw.publication)
        clean, member_only = clean_page(raw.body, title)
        title = title or _first_heading(clean) or url
        if not clean.strip():
            warnings.append(Warning(name, raw.line, "article has no text after cleaning, skipped"))
            continue
        articles.append(
            Article(
                url=canonical_url(url),
                title=title,
                publication=raw.publication,
                published=raw.header.get("Published Time")
                or byline_date(raw.body, raw.header.get("Date fetched")),
                fetched=raw.header.get("Date fetched") or None,
                text=clean,
                member_only=member_only,
                source_file=name,
                source_line=raw.line,
                author=parse_author(raw.header, raw.body),
            )
        )
    return articles, warnings


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


def _clean_title(title: str, publication: str) -> str:
    """`The X - Towards Data Science` and `X | by Y | Pub` become `The X`."""
    t = title.split(" | by ")[0]
    for sep in (" - ", " | ", " — "):
        if publication and t.endswith(sep + publication):
            t = t[: -len(sep + publication)]
    return t.strip()


def _first_heading(text: str) -> str:
    for line in text.split("\n"):
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def dedupe(articles: Iterable[Article]) -> list[Article]:
    """One article per canonical URL (latest `Date fetched` wins), one per identical text.

    Identical text under two URLs is indexed once, under the URL seen first, with the other
    recorded as an alias.
    """
    by_url: dict[str, Article] = {}
    for a in articles:
        old = by_url.get(a.url)
        if old is None or (a.fetched or "") >= (old.fetched or ""):
            by_url[a.url] = a
    by_text: dict[str, Article] = {}
    for a in sorted(by_url.values(), key=lambda a: (a.source_file, a.source_line)):
        key = hashlib.sha256(a.text.encode("utf-8")).hexdigest()
        first = by_text.get(key)
        if first is None:
            by_text[key] = a
        else:
            by_text[key] = replace(first, aliases=(*first.aliases, a.url))
    return sorted(by_text.values(), key=lambda a: (a.source_file, a.source_line))


def ingest(path: Path) -> IngestResult:
    """Parse every bundle under `path` and de-duplicate the articles."""
    result = IngestResult()
    found: list[Article] = []
    for f in find_bundles(path):
        result.files += 1
        arts, warns = parse_bundle(f)
        found.extend(arts)
        result.warnings.extend(warns)
    result.articles = dedupe(found)
    return result
