"""Export a trained checkpoint (peft's adapter) to a GGUF LoRA adapter for llama.cpp, and measure it
there:

    .venv/bin/python training/llm/export.py training/llm/work/run1/ckpt-02000 --out models/llm

llama.cpp's own converter (`convert_lora_to_gguf.py` and its `gguf-py`) does the conversion. It is
not part of this repository: it lives in the llama-cpp-python source archive at the version rag
pins (vendor/llama.cpp/); `--llama-cpp DIR` points at an unpacked copy, otherwise the archive is
fetched with pip (as scripts/build-llm.sh does) into a temporary folder. The converter needs only
the base model's config and tokenizer, which are written from the packaged GGUF file.

Writes `adapter.gguf` (f16), `provenance.json` (the training run's, with the base file's sha256
the adapter is tied to, plus the export and its figures through llama.cpp) into `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import metrics  # noqa: E402

import data as data_mod  # noqa: E402

REPO = HERE.parents[1]
SQUAD = Path(os.environ.get("RAG_SHARED", REPO.parent / "shared")) / "benchmarks" / "squad2"
LLAMA_CPP_PYTHON = "0.3.36"  # the version pyproject.toml pins


def converter_dir(given: Path | None, tmp: Path) -> Path:
    """vendor/llama.cpp of the llama-cpp-python source archive."""
    if given:
        d = given / "vendor" / "llama.cpp" if (given / "vendor").is_dir() else given
        if not (d / "convert_lora_to_gguf.py").is_file():
            sys.exit(f"{d}: no convert_lora_to_gguf.py (give vendor/llama.cpp of llama-cpp-python's sdist)")
        return d
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
            "-d",
            str(tmp),
        ],
        check=True,
    )
    archive = next(tmp.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(archive) as tf:
        tf.extractall(tmp, filter="data")
    return next(tmp.glob("llama_cpp_python-*/vendor/llama.cpp"))


def write_base_config(base: Path, out: Path) -> None:
    """config.json and the tokenizer's files of the GGUF base, in Hugging Face layout."""
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(str(base.parent), gguf_file=base.name)
    # A config read from GGUF names no architecture class; the converter picks its model by it.
    cfg.architectures = cfg.architectures or ["LlamaForCausalLM"]
    cfg.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base.parent), gguf_file=base.name).save_pretrained(str(out))


def measure(base: Path, adapter: Path | None, n_ans: int, n_imp: int, seed: int) -> dict:
    """The dev figures through llama.cpp and rag.answer.line (base alone when adapter is None),
    and the warm time to write a line."""
    from rag.answer.line import write_line
    from rag.config import LLMSettings
    from rag.llm import load_llm

    llm = load_llm(base, LLMSettings(), lora_path=adapter)
    dev = data_mod.dev_examples(SQUAD / "dev.json", seed, n_ans, n_imp)
    raws, ps, times = [], [], []
    for ex in dev:
        t = time.perf_counter()
        line = write_line(llm, ex.question, list(ex.evidence))
        times.append(time.perf_counter() - t)
        raws.append(line.raw)
        ps.append(line.p_decline)
    times.sort()
    return metrics.figures(dev, raws, ps) | {
        "line_ms_p50": round(1000 * times[len(times) // 2], 1),
        "line_ms_p95": round(1000 * times[int(len(times) * 0.95)], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="a ckpt-NNNNN folder of train.py")
    ap.add_argument("--out", type=Path, default=REPO / "models" / "llm")
    ap.add_argument(
        "--llama-cpp", type=Path, help="unpacked llama-cpp-python sdist (or its vendor/llama.cpp)"
    )
    ap.add_argument("--outtype", default="f16", choices=["f32", "f16", "q8_0"])
    ap.add_argument("--eval-answerable", type=int, default=60)
    ap.add_argument("--eval-impossible", type=int, default=30)
    ap.add_argument("--no-measure", action="store_true")
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from train import base_file

    base = base_file()
    run_prov = json.loads((args.checkpoint.parent / "provenance.json").read_text(encoding="utf-8"))
    if run_prov["base"]["sha256"] != data_mod.sha256(base):
        sys.exit(f"{base}: not the base file this checkpoint was trained on")
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "adapter.gguf"
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        conv = converter_dir(args.llama_cpp, tmp / "sdist")
        write_base_config(base, tmp / "base")
        t = time.time()
        subprocess.run(
            [
                sys.executable,
                str(conv / "convert_lora_to_gguf.py"),
                "--base",
                str(tmp / "base"),
                "--outtype",
                args.outtype,
                "--outfile",
                str(tmp / "adapter.gguf"),
                str(args.checkpoint),
            ],
            check=True,
            env=os.environ | {"HF_HUB_OFFLINE": "1"},
        )
        shutil.copyfile(tmp / "adapter.gguf", target)
    prov = run_prov | {
        "shipped_checkpoint": args.checkpoint.name,
        "export": {
            # run from that archive, never copied here
            "converter": f"llama-cpp-python {LLAMA_CPP_PYTHON} sdist: "
            "vendor/llama.cpp/convert_lora_to_gguf.py",
            "outtype": args.outtype,
            "adapter_sha256": data_mod.sha256(target),
            "adapter_bytes": target.stat().st_size,
            "export_s": round(time.time() - t, 1),
        },
    }
    if not args.no_measure:
        prov["llama_cpp_figures"] = {
            "adapter": measure(
                base, target, args.eval_answerable, args.eval_impossible, run_prov["settings"]["seed"]
            ),
        }
    (args.out / "provenance.json").write_text(json.dumps(prov, indent=1), encoding="utf-8")
    print(json.dumps(prov.get("export"), indent=1))
    print(json.dumps(prov.get("llama_cpp_figures"), indent=1))


if __name__ == "__main__":
    main()
