"""Which scrape files changed since the last build, and the articles an update must look at.

The index keeps a record of every bundle file it read (size, modification time, content hash,
and the ids and hashes of the articles parsed from it). A scan compares the scrapes folder with
those records so that `rag index` reads, parses and de-duplicates only what may have changed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rag.ingest import dedupe, find_bundles, parse_bundle
from rag.records import Article, FileRecord


@dataclass
class Scan:
    """What reading the scrapes folder against the stored file records found."""

    files: dict[str, FileRecord]  # the records the index should hold afterwards
    articles: list[Article] | None  # None: no article can have changed
    partial: bool = False  # `articles` are new articles to add to what the store holds
    warnings: list[Any] = field(default_factory=list)
    read: int = 0  # files read (the others were skipped by size and modification time)


def _text_hash(a: Article) -> str:
    return hashlib.sha256(a.text.encode("utf-8")).hexdigest()[:16]


def _record(key: str, st: os.stat_result, sha: str, arts: list[Article]) -> FileRecord:
    return FileRecord(
        key, st.st_size, st.st_mtime_ns, sha, tuple((a.id, a.content_hash, _text_hash(a)) for a in arts)
    )


def scan_scrapes(scrapes: Path, old: dict[str, FileRecord], store_has_articles: bool) -> Scan:
    """Read only the bundle files that may have changed since the records `old` were made.

    A file with the recorded size and modification time is not opened. One whose bytes hash as
    recorded is not parsed. A changed file is parsed; when it yields the same articles (same
    ids, content and text hashes: say a re-saved file, or changed text outside any article),
    only its record changes and nothing is re-embedded. When the only news is new files whose
    articles are all new (no URL or text seen before), those are the whole update; anything
    else (a removed file, a file whose articles changed, a re-scrape of a known URL) re-reads
    every file, as the de-duplication across files needs them all.
    """
    paths = find_bundles(scrapes)
    files, parsed, read = _read_changed(paths, old)
    removed = set(old) - set(files)
    changed = {k for k in parsed if k in old and (k not in files or files[k].articles != old[k].articles)}
    new_files = [k for k in parsed if k not in old]
    warnings = [w for _, ws in parsed.values() for w in ws]
    if not removed and not changed and not new_files:
        return Scan(files, None, warnings=warnings, read=read)
    if not removed and not changed and old and store_has_articles:
        fresh = [a for k in new_files for a in parsed[k][0]]
        known_ids = {t[0] for r in old.values() for t in r.articles}
        known_texts = {t[2] for r in old.values() for t in r.articles}
        if not any(a.id in known_ids or _text_hash(a) in known_texts for a in fresh):
            return Scan(files, dedupe(fresh), partial=True, warnings=warnings, read=read)
    # Everything, in the order `ingest` reads it.
    found: list[Article] = []
    warnings = []
    for p in paths:
        key = str(p.resolve())
        if key not in parsed:
            try:
                st, data = p.stat(), p.read_bytes()
            except OSError:
                parsed[key] = parse_bundle(p)
            else:
                read += 1
                parsed[key] = parse_bundle(p, data)
                files[key] = _record(key, st, hashlib.sha256(data).hexdigest(), parsed[key][0])
        found.extend(parsed[key][0])
        warnings.extend(parsed[key][1])
    return Scan(files, dedupe(found), warnings=warnings, read=read)


Parsed = dict[str, tuple[list[Article], list[Any]]]  # file key -> (articles, warnings)


def _read_changed(paths: list[Path], old: dict[str, FileRecord]) -> tuple[dict[str, FileRecord], Parsed, int]:
    """Records of every file, and the parse of those whose bytes changed; files read."""
    files: dict[str, FileRecord] = {}
    parsed: Parsed = {}
    read = 0
    for p in paths:
        key = str(p.resolve())
        try:
            st = p.stat()
            prev = old.get(key)
            if prev and (prev.size, prev.mtime_ns) == (st.st_size, st.st_mtime_ns):
                files[key] = prev
                continue
            data = p.read_bytes()
        except OSError:
            parsed[key] = parse_bundle(p)  # it reports the unreadable file as a warning
            continue
        read += 1
        sha = hashlib.sha256(data).hexdigest()
        if prev and prev.sha256 == sha:
            files[key] = replace(prev, size=st.st_size, mtime_ns=st.st_mtime_ns)
            continue
        parsed[key] = parse_bundle(p, data)
        files[key] = _record(key, st, sha, parsed[key][0])
    return files, parsed, read
