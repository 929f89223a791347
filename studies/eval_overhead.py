"""Does keeping runs slow `rag eval` down? Times plain `rag eval` (which now saves a run and prints
the significance table) against the same command at an older commit, alternating, in fresh
processes on the same index; prints median (min-max) wall seconds. The new
command leaves its timestamped runs in eval/runs/ (git-ignored).

    python -m studies.eval_overhead --old fd60719 --index indexes/default --repeat 3

Not a test: the machine is shared, so numbers are noisy; run it on a quiet machine to trust them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _export(commit: str, dest: Path) -> None:
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    tar = dest / "src.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")


def _time(src: Path, index: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "rag", "eval", "--index", str(index)]
    subprocess.run(cmd, cwd=src, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", default="fd60719", help="commit to compare with")
    ap.add_argument("--index", type=Path, default=ROOT / "indexes" / "default")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        _export(a.old, old)
        times: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(a.repeat):
            for label, src in (("old", old), ("new", ROOT)):
                times[label].append(_time(src, a.index.resolve()))
        for label, ts in times.items():
            print(
                f"{label}: median {statistics.median(ts):.2f} s (min {min(ts):.2f}, max {max(ts):.2f}) "
                f"over {len(ts)} runs of `rag eval`"
            )


if __name__ == "__main__":
    main()
