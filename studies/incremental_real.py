"""Adding one article with the real embedder to indexes of 1,000 and 10,000 synthetic articles.

`bench.scale` part 2 times `index_articles` with a fake embedder, which isolates what grows
with the index. This measures what a user waits for: the same update with all-MiniLM-L6-v2
embedding the new article (model loaded once, before timing). Prints a markdown table.

    .venv/bin/python -m studies.incremental_real
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.scale import CHUNKS_PER_ARTICLE, FakeDocEmbedder, Synth
from rag.config import load_settings
from rag.embed import onnx_embedder
from rag.index import index_articles


def main(sizes: tuple[int, ...] = (1_000, 10_000), repeats: int = 5) -> None:
    settings = load_settings(environ={})
    synth = Synth()
    real = onnx_embedder(batch_size=settings.embed.batch_size)
    real.embed(["warm-up"])
    rows = []
    for n in sizes:
        rng = np.random.default_rng(9000 + n)
        texts = synth.texts(n * CHUNKS_PER_ARTICLE, rng)
        arts = [synth.article(i, rng, texts[i * 10 : i * 10 + 10], tag=f"r{n}")[0] for i in range(n)]
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "index"
            index_articles(arts, settings, path, embedder=FakeDocEmbedder(), export_query_model=False)
            times = []
            for r in range(repeats):
                arts.append(synth.article(r, rng, synth.texts(CHUNKS_PER_ARTICLE, rng), tag=f"new{n}")[0])
                t = time.perf_counter()
                rep = index_articles(arts, settings, path, embedder=real, export_query_model=False)
                times.append(time.perf_counter() - t)
                assert rep.added == 1 and rep.embedded_chunks > 0, rep
        rows.append((n, times, rep.embedded_chunks))
        print(f"{n:,}: {statistics.median(times):.3f}s", file=sys.stderr)
    print("| articles in index | add one article, real embedder: s | chunks embedded |")
    print("| ---: | ---: | ---: |")
    for n, times, k in rows:
        print(f"| {n:,} | {statistics.median(times):.3f} ({min(times):.3f}–{max(times):.3f}) | {k} |")
    ratio = statistics.median(rows[-1][1]) / statistics.median(rows[0][1])
    print(f"\nRatio {sizes[-1]:,}/{sizes[0]:,} of the medians: **{ratio:.1f}×**")


if __name__ == "__main__":
    main()
