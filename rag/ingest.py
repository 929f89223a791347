"""Read scrape bundles into clean articles.

A bundle is a markdown file holding articles, each under `## <Publication>` with a header block
(`Source:`, `Date fetched:`, `Title:`, `URL Source:`, `Published Time:`, `Markdown Content:`) and a
body that is a Medium page: navigation, byline, the article, then sign-up walls and recommendations.
Every article is repeated under `## Visual Content Analysis`; the repeat is skipped.

Here: finding bundle files, reading them safely, splitting them into articles, canonical URLs and
de-duplication; cleaning each page (its own text, author and date) is `rag.clean`, and the Article
record is `rag.records`. Anything unexpected in a file becomes a `Warning` naming file and line,
never an exception: one bad scrape must not stop the rest from being indexed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rag.clean import byline_date, clean_page, parse_author
from rag.records import Article
from rag.textio import FALLBACK, decode_bytes, sniff_encoding

CLEANER_VERSION = "2"  # 2: the author is parsed from the byline (and hashed); covers rag.clean

# ---------------------------------------------------------------------------------------------
# What ingesting reports (the Article itself is in rag.records)


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
    """The file's text, decoded as rag.textio says (UTF-8, a byte-order mark's UTF-16, else
    Windows-1252 byte by byte), with a warning for what was not UTF-8 and for NULs removed."""
    name = str(path)
    if not data.strip():
        return None, [Warning(name, 1, "empty file, skipped")]
    # UTF-16 is half NULs: only bytes in no encoding sniff_encoding names are judged by them.
    if sniff_encoding(data) is None and _control_ratio(data[:8192]) > 0.1:
        return None, [Warning(name, 1, "binary file, skipped")]
    decoded = decode_bytes(data)
    text = decoded.text
    warnings: list[Warning] = []
    if decoded.bad_line is not None:
        warnings.append(Warning(name, decoded.bad_line, f"not UTF-8: read as {FALLBACK}"))
    if "\x00" in text:  # a few stray NULs in a text file: drop them, keep the text
        line = text.count("\n", 0, text.index("\x00")) + 1
        warnings.append(Warning(name, line, "NUL bytes removed"))
        text = text.replace("\x00", "")
    if not text.strip():
        return None, [*warnings, Warning(name, 1, "empty file, skipped")]
    return text, warnings


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
        try:
            url = canonical_url(url)
        except ValueError as e:  # urllib's own check, e.g. a '[' in the host ("Invalid IPv6 URL")
            warnings.append(Warning(name, raw.line, f"article's Source URL cannot be read ({e}), skipped"))
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
                url=url,
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
