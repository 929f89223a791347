"""Vector segments of the FAISS store: how vectors are laid out in files, merged and searched.

A build writes only the vectors it added, as a new small segment, and the manifest lists the
live segments, oldest first, each with the generations it covers and its count of tombstones
(vectors of rows removed since it was written). A removed row needs no FAISS write: it is
invisible through SQLite's generation filter, and a search asks each segment for enough extra
hits to make up for its tombstones. Segments are merged (rewritten from SQLite, without their
tombstones) as they grow, see `merge_from`; only the first segment has the configured kind
(HNSW, IVF, flat), the newer ones are flat and searched exactly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorrupt
from rag.stores.base import Manifest, StoredChunk, crash_point

Segment = dict[str, Any]  # file, kind, first, last (generations), vectors, removed (tombstones)
Lookup = Callable[[list[int]], dict[int, tuple[StoredChunk, int]]]  # rows -> (chunk, gen added)

MERGE_RATIO = 2  # flat: merge the newest run once it holds half as many vectors as the one before
REBUILD_RATIO = 10  # HNSW/IVF first segment: rebuild once the flat ones after it hold a tenth of it
DEAD_SHARE = 0.25  # a segment of which this share are tombstones is rewritten


def segments(m: Manifest) -> list[Segment]:
    """The manifest's vector segments, oldest first, as fresh dicts a commit may change.

    A schema-1 manifest (before segments) names one file that holds every live vector.
    """
    if "segments" in m:
        return [dict(seg) for seg in m["segments"]]
    return [
        {
            "file": m["faiss_file"],
            "kind": m.get("index_kind", "flat"),
            "first": 0,
            "last": int(m["generation"]),
            "vectors": int(m.get("counts", {}).get("chunks", 0)),
            "removed": 0,
        }
    ]


def live(seg: Segment) -> int:
    return int(seg["vectors"] - seg["removed"])


def segment_of(segs: list[Segment], born: int) -> Segment:
    """The segment that holds the vector of a row added by generation `born`."""
    for seg in segs:
        if seg["first"] <= born <= seg["last"]:
            return seg
    raise IndexCorrupt(f"no vector segment holds generation {born}; run `rag index --rebuild`")


def merge_from(segs: list[Segment], kind: str) -> int | None:
    """Where the newest run of segments to rewrite as one starts; None when none needs it.

    Flat segments follow the logarithmic method: the newest run is merged with the segment
    before it while the run holds at least 1/MERGE_RATIO as many live vectors, so a store of n
    vectors has O(log n) segments and a vector is rewritten O(log n) times, and an update that
    adds a few chunks writes a few chunks. The first segment has the configured kind; an HNSW or
    IVF one is rebuilt (a full rebuild: they cannot be extended cheaply and exactly) once the flat
    segments after it hold 1/REBUILD_RATIO as many vectors. A segment with too many tombstones
    is rewritten, with all after it, since every search over-fetches by its tombstones.
    """
    if not segs:
        return None
    if segs[0]["kind"] != kind:
        return 0
    start, run = len(segs) - 1, live(segs[-1])
    while start > 0:
        before = segs[start - 1]
        ratio = REBUILD_RATIO if start == 1 and kind != "flat" else MERGE_RATIO
        if run * ratio < live(before):
            break
        start -= 1
        run += live(before)
    for j, seg in enumerate(segs[: start + 1]):
        if seg["removed"] > DEAD_SHARE * seg["vectors"]:
            return j
    return start if start < len(segs) - 1 else None  # alone, the newest is written as it is


def add_generation(
    segs: list[Segment],
    rows: list[int],
    vecs: list[np.ndarray],
    gen: int,
    kind: str,
    dim: int,
    read: Callable[[int, int], list[tuple[int, bytes]]],
    folder: Path,
) -> Any:
    """Add generation `gen`'s vectors (keyed by `rows`) to `segs` in place, and write the one
    segment file that changes: a new flat segment, or the run `merge_from` picks rewritten as
    one from `read(first generation, expected count)`. Returns its FAISS index, or None when
    no file was written."""
    if rows:
        segs.append(
            {"file": "", "kind": "flat", "first": gen, "last": gen, "vectors": len(rows), "removed": 0}
        )
    start = merge_from(segs, kind)
    index: Any = None
    if start is not None:
        first = 0 if start == 0 else segs[start]["first"]
        seg_kind = kind if start == 0 else "flat"
        index = build(seg_kind, dim, read(first, sum(live(seg) for seg in segs[start:])))
        segs[start:] = [
            {"file": "", "kind": seg_kind, "first": first, "last": gen, "vectors": index.ntotal, "removed": 0}
        ]
    elif rows:
        index = new_index("flat", dim, len(rows))
        index.add_with_ids(np.stack(vecs), np.asarray(rows, dtype=np.int64))
    if index is not None and index.ntotal == 0:
        segs.pop()  # every row of the merged segments was removed: no file at all
        return None
    if index is not None:
        segs[-1]["file"] = f"vectors-{gen}.faiss"
        write(index, folder, segs[-1]["file"])
    return index


# --------------------------------------------------------------------------------- FAISS files


def new_index(kind: str, dim: int, n: int) -> Any:
    """An empty FAISS index of `kind` (flat, hnsw, ivf) for about `n` vectors, keyed by row id."""
    import faiss

    base: Any
    if kind == "hnsw":
        base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = 80
    elif kind == "ivf":
        nlist = max(1, min(int(4 * n**0.5), n // 39 if n >= 39 else 1))
        base = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        base = faiss.IndexFlatIP(dim)
    return faiss.IndexIDMap2(base)


def tuned(index: Any) -> Any:
    """Search-time settings of approximate indexes (they are not stored in the FAISS file)."""
    import faiss

    inner: Any = faiss.downcast_index(index.index) if hasattr(index, "index") else None
    if hasattr(inner, "hnsw"):
        # 256, not 128: at 1M chunks recall@10 rises from 0.95 to 0.99 for well under a
        # millisecond (bench/SCALE.md, part 4)
        inner.hnsw.efSearch = 256
    if hasattr(inner, "nprobe"):
        inner.nprobe = 32
    return index


def single_thread() -> None:
    """One query at a time: threads cost more than they give (measured in bench/SCALE.md)."""
    import faiss

    faiss.omp_set_num_threads(1)


def build(kind: str, dim: int, rows_vecs: list[tuple[int, bytes]]) -> Any:
    """A FAISS index of `kind` holding the (row, vector bytes) pairs; empties the list."""
    import faiss

    index = new_index(kind, dim, len(rows_vecs))
    if rows_vecs:
        mat = np.frombuffer(b"".join(v for _, v in rows_vecs), dtype=np.float32).reshape(-1, dim)
        ids = np.asarray([r for r, _ in rows_vecs], dtype=np.int64)
        rows_vecs.clear()  # the bytes are in `mat` now: at a million rows this halves peak memory
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is parallel; queries are not
        if kind == "ivf":
            index.train(mat)
        index.add_with_ids(mat, ids)
    return index


def write(index: Any, folder: Path, name: str) -> None:
    """Write a segment file whole (temporary file, fsync, rename)."""
    import faiss

    tmp = folder / f".{name}.{os.getpid()}.tmp"
    faiss.write_index(index, str(tmp))
    crash_point("faiss-tmp-written")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, folder / name)
    crash_point("faiss-written")


def drop_above(folder: Path, gen: int) -> None:
    """Delete segment files of generations above `gen` (a killed build's), and temporary files."""
    for f in folder.glob("vectors-*.faiss"):
        n = re.match(r"vectors-(\d+)\.faiss$", f.name)
        if n and int(n.group(1)) > gen:
            f.unlink(missing_ok=True)
    for f in folder.glob(".*.tmp"):
        f.unlink(missing_ok=True)


def drop_unlisted(folder: Path, m: Manifest) -> None:
    """Delete the segment files manifest `m` does not list."""
    keep = {seg["file"] for seg in segments(m)}
    for f in folder.glob("vectors-*.faiss"):
        if f.name not in keep:
            f.unlink(missing_ok=True)


def load(folder: Path, segs: list[Segment], cached: dict[str, Any]) -> dict[str, Any]:
    """The FAISS index of every segment, read unless `cached` has it; counts are checked."""
    import faiss

    loaded: dict[str, Any] = {}
    for seg in segs:
        index = cached.get(seg["file"])
        path = folder / seg["file"]
        if index is None:
            try:
                index = tuned(faiss.read_index(str(path)))
            except (RuntimeError, OSError) as e:
                msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                raise IndexCorrupt(
                    f"{path}: cannot read vectors ({msg}); run `rag index --rebuild`"
                ) from None
        if index.ntotal != seg["vectors"]:
            raise IndexCorrupt(
                f"{path}: holds {index.ntotal} vectors but the manifest lists {seg['vectors']}; "
                "run `rag index --rebuild`"
            )
        loaded[seg["file"]] = index
    return loaded


def exact(rows_vecs: list[tuple[int, bytes]], q: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The best k of `rows_vecs` (row id, float32 bytes) by inner product with `q`, computed
    exactly: (row id, score), best first."""
    mat = np.frombuffer(b"".join(r[1] for r in rows_vecs), dtype=np.float32).reshape(len(rows_vecs), -1)
    scores = mat @ q[0]
    top = np.argsort(-scores, kind="stable")[:k]
    return [(rows_vecs[i][0], float(scores[i])) for i in top]


def search(
    loaded: dict[str, Any], segs: list[Segment], q: np.ndarray, k: int, lookup: Lookup
) -> list[tuple[StoredChunk, float]]:
    """The best k live chunks over all segments, exact when the segments are.

    A segment's hits include its tombstones (rows removed, or ids SQLite has since given to
    a newer row: a hit counts only if its row was added within the segment's generations).
    Tombstones are rarely near the top, so a segment is first asked for k + min(tombstones,
    k) hits and asked again for more only when fewer than k of them are live; asking for k
    + tombstones would be exact at once but costly where a segment holds many.
    """
    found: dict[int, tuple[StoredChunk, int]] = {}
    best: list[tuple[float, int]] = []
    ask = {j: min(seg["vectors"], k + min(seg["removed"], k)) for j, seg in enumerate(segs)}
    while ask:
        hits: dict[int, list[tuple[int, float]]] = {}
        for j, n in ask.items():
            if n > 0:
                scores, ids = loaded[segs[j]["file"]].search(q, n)
                hits[j] = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        found.update(lookup([i for h in hits.values() for i, _ in h if i not in found]))
        again = {}
        for j, h in hits.items():
            seg = segs[j]
            kept = [(s, i) for i, s in h if i in found and seg["first"] <= found[i][1] <= seg["last"]]
            most = min(seg["vectors"], k + seg["removed"])
            if len(kept) < k and ask[j] < most:
                again[j] = min(most, 4 * ask[j])
            else:
                best += kept[:k]
        ask = again
    best.sort(key=lambda p: -p[0])
    return [(found[i][0], s) for s, i in best[:k]]
