"""What portability costs: the portable llama.cpp build against a native (-march=native) one.

Builds a native wheel of the same llama-cpp-python version into a throwaway venv (pip's cache off,
so it can never leak into a setup), then times both builds on the same model and the same prompt,
each in its own process: prompt evaluation (a ~330-token prompt, batched) and generation (64
tokens, one at a time), 2 threads, median of 5. Writes bench/LLM_BUILD.md, which `bench.run`
includes in bench/RESULTS.md.

    python -m bench.llm_build [--native-venv DIR]     (the native build takes 5-10 minutes)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

from bench.common import ROOT

VERSION = "0.3.36"

MEASURE = r"""
import json, sys, time
from llama_cpp import Llama, llama_print_system_info
llm = Llama(model_path=sys.argv[1], n_ctx=1024, n_threads=2, verbose=False, seed=0)
tokens = llm.tokenize(sys.argv[3].encode())
prompt_s, gen_s = [], []
for _ in range(int(sys.argv[2])):
    llm.reset()
    t = time.perf_counter(); llm.eval(tokens); prompt_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(64):
        tok = llm.sample(temp=0.0)
        llm.eval([tok])
    gen_s.append(time.perf_counter() - t)
print(json.dumps({"n_prompt": len(tokens), "prompt_s": prompt_s, "gen_s": gen_s,
                  "info": llama_print_system_info().decode()}))
"""


def measure(python: str, model: Path, repeats: int) -> dict:
    from rag.doctor import probe_prompt

    p = subprocess.run(
        [python, "-c", MEASURE, str(model), str(repeats), probe_prompt()], capture_output=True, text=True
    )
    if p.returncode != 0:
        raise SystemExit(f"{python}: measurement failed (rc {p.returncode}): {p.stderr[-600:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def native_venv(path: Path) -> str:
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        # pip's default build of the same version: -march=native (GGML_NATIVE=ON); llava off as in ours
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-cache-dir", f"llama-cpp-python=={VERSION}"],
            check=True,
            env={"CMAKE_ARGS": "-DLLAVA_BUILD=OFF", "PATH": "/usr/bin:/bin:/usr/local/bin"},
        )
    return str(python)


def row(name: str, d: dict) -> str:
    pt = [d["n_prompt"] / s for s in d["prompt_s"]]
    gt = [64 / s for s in d["gen_s"]]
    return f"| {name} | {statistics.median(pt):.0f} ({min(pt):.0f}–{max(pt):.0f}) | " + (
        f"{statistics.median(gt):.1f} ({min(gt):.1f}–{max(gt):.1f}) |"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--native-venv", type=Path, default=ROOT / "bench" / "work" / "venv-native")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from rag.answer import model_file
    from rag.config import load_settings
    from rag.doctor import compiled_features

    model = model_file(load_settings(environ={}).llm)
    portable = measure(sys.executable, model, args.repeats)
    native = measure(native_venv(args.native_venv), model, args.repeats)

    def isa(d: dict) -> str:
        return " ".join(k for k, on in compiled_features(d["info"]).items() if on) or "?"

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    text = "\n".join(
        [
            "## LLM build: portable against native (the cost of running on every CPU)",
            "",
            f"- date: {date.today()}; CPU: {cpu}; model SmolLM2-135M-Instruct Q4_1; 2 threads; "
            f"prompt {portable['n_prompt']} tokens evaluated as one batch, "
            "then 64 tokens generated one at a time; "
            f"median (min–max) of {args.repeats}; `python -m bench.llm_build` regenerates this section",
            "",
            "| build | prompt eval tok/s | generation tok/s |",
            "|---|---:|---:|",
            row("portable (scripts/build-llm.sh)", portable),
            row("native (pip default, -march=native)", native),
            "",
            f"- portable build's instruction sets: {isa(portable)}",
            f"- native build's instruction sets on this CPU: {isa(native)}",
            "",
        ]
    )
    (ROOT / "bench" / "LLM_BUILD.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
