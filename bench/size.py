"""Size runs (not tests): one 5 MB article, and a scrape of 20,000 small articles.

    .venv/bin/python -m bench.size

Each case indexes in a fresh process with a fake embedder (hash vectors), so the figures are
the cost of parsing, cleaning, chunking and writing the store; embedding cost is in RESULTS.md.
Prints wall time and peak RSS; the numbers are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from bench.common import ROOT

ARTICLE = """## Size Weekly

Source: https://example.com/{slug}
Date fetched: 2024-11-10T00:00:00

---

Title: {title}

URL Source: https://example.com/{slug}

Markdown Content:
{body}

## Visual Content Analysis

Title: {title}
"""

# Run from the repository root (`python -c` puts the working folder first on sys.path), so the
# child imports this checkout's rag and the tests' fake embedder.
CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    from rag.config import load_settings
    from rag.index import build_index
    from tests.conftest import FakeEmbedder
    t = time.perf_counter()
    r = build_index(load_settings(environ={}), Path(sys.argv[1]), Path(sys.argv[2]),
                    embedder=FakeEmbedder(), export_query_model=False)
    print(json.dumps({"seconds": time.perf_counter() - t, "articles": r.articles, "chunks": r.chunks,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")

SENTENCES = [
    "Vector search compares a query with stored embeddings and returns the closest ones.",
    "Chunking splits long articles into passages that the embedder can read whole.",
    "A manifest records which settings built the index, so that nothing is silently mixed.",
    "Lexical retrieval still wins on rare names, codes and exact phrases.",
]


def paragraph(i: int) -> str:
    return " ".join(SENTENCES[(i + k) % 4] for k in range(6)) + f" Paragraph {i}."


# Linux keeps a process's peak RSS across exec, so a child forked from a big process (bench.run
# has torch and the LLM loaded) reports the parent's peak. A small launcher forks the build and
# reads the build's own peak from RUSAGE_CHILDREN.
LAUNCH = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
)


def run(scrapes: Path, index: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", LAUNCH, sys.executable, "-c", CHILD, str(scrapes), str(index)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    lines = out.stdout.strip().splitlines()
    return {**json.loads(lines[-2]), "rss_mb": float(lines[-1])}


def main() -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory() as d:
        big = Path(d) / "big"
        big.mkdir()
        body = []
        size = 0
        i = 0
        while size < 5 * 1024 * 1024:
            p = (f"## Section {i}\n\n" if i % 20 == 0 else "") + paragraph(i)
            body.append(p)
            size += len(p) + 2
            i += 1
        (big / "big.md").write_text(
            ARTICLE.format(slug="big", title="One Huge Article", body="\n\n".join(body))
        )
        r = run(big, Path(d) / "i1")
        lines.append(
            f"- one 5 MB article: {r['chunks']} chunks in {r['seconds']:.1f} s, peak RSS {r['rss_mb']:.0f} MB"
        )

        many = Path(d) / "many"
        many.mkdir()
        for half in (10_000, 20_000):
            with open(many / "bundle.md", "w") as f:
                for n in range(half):
                    f.write(
                        ARTICLE.format(
                            slug=f"a{n}",
                            title=f"Small article {n}",
                            body=paragraph(n) + "\n\n" + paragraph(n + 1),
                        )
                    )
            r = run(many, Path(d) / f"i{half}")
            lines.append(
                f"- {half:,} small articles in one bundle: {r['chunks']} chunks in "
                f"{r['seconds']:.1f} s, peak RSS {r['rss_mb']:.0f} MB"
            )
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
