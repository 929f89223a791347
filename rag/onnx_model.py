"""The embedder as an ONNX graph, written from its safetensors weights without torch.

all-MiniLM-L6-v2 is a 6-layer BERT encoder followed by mean pooling. This module reads the packaged
`model.safetensors` with numpy and writes the same computation as an ONNX graph (opset 17): token
and position embeddings, LayerNorm, then per layer multi-head self-attention over the real tokens,
exact (erf) GELU feed-forward, residuals and LayerNorm; finally mean pooling over the real tokens.
Inputs are `input_ids` and `attention_mask` ([batch, seq] int64), the output is
`sentence_embedding` ([batch, hidden], not yet L2-normalised).

Attention, the GELU and the residual-plus-LayerNorm steps are onnxruntime's fused CPU kernels
(`Attention`, `BiasGelu`, `SkipLayerNormalization` of the com.microsoft domain, in every
onnxruntime build) rather than chains of standard operators: the same arithmetic in fewer
passes over memory, about 1.5x the throughput on 2 cores (bench/RESULTS.md), vectors within
cosine 0.9999999 of the standard-operator graph.

The file is written once per model and precision into a per-user cache
(`$XDG_CACHE_HOME/rag/models`, or `~/.cache/rag/models`), named after a hash of the weights, the
config and GRAPH_VERSION, so every index on the machine shares one copy and a change of any of
them gives a new file. tests/test_embed.py checks it against sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rag import user_cache
from rag.errors import RagError

GRAPH_VERSION = 2  # bump when the graph written below changes (2: fused com.microsoft kernels)
# Bump when the int8 recipe in _quantise changes (2: per-channel weights in 7 bits). It is part of
# the int8 file's name and of the index's embedder identity, so int8 vectors are never mixed.
QUANT_VERSION = 2
PRECISIONS = ("fp32", "int8")
MS_DOMAIN = "com.microsoft"
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file: an 8-byte little-endian header length, a JSON header
    mapping names to dtype, shape and [start, end) byte offsets, then the raw little-endian data."""
    data = path.read_bytes()
    if len(data) < 8:
        raise RagError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + n])
    except (ValueError, UnicodeDecodeError):
        raise RagError(f"{path}: not a safetensors file (unreadable header)") from None
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise RagError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        arr = np.frombuffer(
            data,
            dtype=np.dtype(dtype).newbyteorder("<"),
            count=(end - start) // np.dtype(dtype).itemsize,
            offset=base + start,
        )
        out[name] = arr.reshape(info["shape"]).astype(dtype, copy=False)
    return out


def cache_dir() -> Path:
    return user_cache.cache_dir("models")


def weights_digest(model_dir: Path) -> str:
    """sha256 (16 hex) of the weights and config; remembered per (path, size, mtime) so that a
    cold search does not re-read 90 MB to find its model file."""
    weights = model_dir / "model.safetensors"
    config = model_dir / "config.json"
    st, sc = weights.stat(), config.stat()
    key = f"{weights.resolve()}|{st.st_size}|{st.st_mtime_ns}|{sc.st_size}|{sc.st_mtime_ns}"
    memo_path = cache_dir() / "digests.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo, dict) and isinstance(memo.get(key), str):
        return memo[key]
    h = hashlib.sha256()
    with weights.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(config.read_bytes())
    digest = h.hexdigest()[:16]
    memo = memo if isinstance(memo, dict) else {}
    memo[key] = digest
    try:
        user_cache.write_atomic(memo_path, json.dumps(memo, indent=1).encode())
    except OSError:
        pass  # a read-only cache only costs the hash next time
    return digest


def precision_tag(precision: str) -> str:
    """The precision as it appears in model file names: int8 carries its recipe (an index's
    identity records the recipe as its own "quantisation" key instead)."""
    return f"{precision}q{QUANT_VERSION}" if precision == "int8" else precision


def model_file_name(model_name: str, precision: str, digest: str) -> str:
    return f"{model_name}-{precision_tag(precision)}-{digest}-g{GRAPH_VERSION}.onnx"


def ensure_model(model_dir: Path, model_name: str, precision: str = "fp32") -> Path:
    """Path of the cached ONNX graph for this model and precision, writing it first if missing.

    The weights go in a `.data` file beside the graph (ONNX external data), which onnxruntime
    loads in about half the time of one 90 MB protobuf: that is most of a cold search's start.
    """
    if precision not in PRECISIONS:
        raise RagError(f"embed.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    digest = weights_digest(model_dir)
    path = cache_dir() / model_file_name(model_name, precision, digest)
    if path.exists():
        return path
    fp32 = cache_dir() / model_file_name(model_name, "fp32", digest)
    try:
        if not fp32.exists():
            model = build_graph(model_dir)
            with _staging(fp32.parent) as tmp:
                _save(model, tmp / fp32.name)
        if precision == "int8":
            with _staging(path.parent) as tmp:
                _quantise(fp32, tmp / path.name)
    except OSError as e:
        raise RagError(f"{cache_dir()}: cannot write the embedder's ONNX model ({e.strerror or e})") from None
    return path


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A temp folder inside `target` whose files are moved into `target` on success, the graph
    (.onnx) last, so that a graph in the cache always has its weights beside it."""
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target, prefix=".staging-"))
    try:
        yield tmp
        files = sorted(tmp.iterdir(), key=lambda f: f.suffix == ".onnx")
        for f in files:
            f.chmod(0o644)
            os.replace(f, target / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save(model: Any, path: Path) -> None:
    import onnx

    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
        size_threshold=1024,
    )


def _quantise(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the feed-forward and output products (Attention's fused
    projection stays float): weights int8 per output channel, activations uint8 per batch.

    Weights use 7 bits (reduce_range): on x86 CPUs without VNNI, onnxruntime multiplies uint8 by
    int8 with an instruction that saturates at int16, and full-range weights overflow it. With
    one scale per tensor and 8 bits the vectors were at cosine 0.94 of fp32 (dev nDCG@10 -0.02);
    per channel and 7 bits they are at 0.994 (bench/RESULTS.md)."""
    import logging

    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice on the root logger; we stay silent
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            reduce_range=True,
            use_external_data_format=True,
            # onnx's shape inference does not know onnxruntime's fused kernels, so the types of
            # their outputs are not inferred; every tensor here is float32.
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)


class _Graph:
    """Nodes and weights of an ONNX graph being written; node outputs are numbered in order."""

    def __init__(self, weights: dict[str, np.ndarray], eps: float) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.w, self.eps = weights, eps
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.counter = 0

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        self.counter += 1
        out = f"{op.lower()}_{self.counter}"
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def fused(self, op: str, inputs: list[str], **attrs: Any) -> str:
        """A node of onnxruntime's com.microsoft operator domain."""
        self.counter += 1
        out = f"{op.lower()}_{self.counter}"
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, domain=MS_DOMAIN, **attrs))
        return out

    def weight(self, name: str, arr: np.ndarray) -> str:
        """A float32 weight; torch stores Linear weights as [out, in], ONNX MatMul wants [in, out]."""
        return self.const(name, np.ascontiguousarray(arr.T, dtype=np.float32))

    def layer_norm(self, x: str, prefix: str) -> str:
        w = self.w
        gamma, beta = (
            self.const(prefix + ".g", w[prefix + ".weight"]),
            self.const(prefix + ".beta", w[prefix + ".bias"]),
        )
        return self.node("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=self.eps)


def build_graph(model_dir: Path) -> Any:  # -> onnx.ModelProto
    """The BERT encoder plus mean pooling, as an ONNX model holding the weights."""
    from onnx import TensorProto, helper

    cfg = json.loads((model_dir / "config.json").read_text())
    if cfg.get("model_type") != "bert" or cfg.get("position_embedding_type", "absolute") != "absolute":
        raise RagError(f"{model_dir}/config.json: only BERT encoders with absolute positions are supported")
    if cfg.get("hidden_act") != "gelu":
        raise RagError(f"{model_dir}/config.json: hidden_act {cfg.get('hidden_act')!r} is not supported")
    w = read_safetensors(model_dir / "model.safetensors")
    g = _Graph({k.removeprefix("bert."): v for k, v in w.items()}, float(cfg["layer_norm_eps"]))
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])

    x = _embeddings(g)
    # Attention takes the padding mask as it is (1 for tokens, 0 for padding), as int32.
    mask = g.node("Cast", ["attention_mask"], to=TensorProto.INT32)
    for i in range(int(cfg["num_hidden_layers"])):
        x = _encoder_layer(g, f"encoder.layer.{i}", x, mask, heads)
    _mean_pool(g, x, g.node("Cast", ["attention_mask"], to=TensorProto.FLOAT))

    ints = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
        for n in ("input_ids", "attention_mask")
    ]
    out = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])
    graph = helper.make_graph(g.nodes, "sentence_encoder", ints, [out], initializer=g.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="rag.onnx_model",
    )
    model.ir_version = 8
    return model


def _embeddings(g: _Graph) -> str:
    """Word plus position embeddings, normalised. Token types are always 0 for single
    sentences: that row is folded into the positions."""
    w = g.w
    word = g.node("Gather", [g.const("word_embeddings", w["embeddings.word_embeddings.weight"]), "input_ids"])
    pos_table = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
    seq_len = g.node("Shape", ["input_ids"], start=1, end=2)  # 1-D [S]
    table = g.const("position_embeddings", pos_table.astype(np.float32))
    zero, axis0 = g.const("zero", np.array([0], np.int64)), g.const("axis0", np.array([0], np.int64))
    pos = g.node("Slice", [table, zero, seq_len, axis0])
    return g.layer_norm(g.node("Add", [word, pos]), "embeddings.LayerNorm")


def _encoder_layer(g: _Graph, p: str, x: str, mask: str, heads: int) -> str:
    """One BERT layer: self-attention and the feed-forward block, each with residual and norm.

    `Attention` projects to queries, keys and values with one [hidden, 3 x hidden] product
    (scaling scores by 1/sqrt(head size) itself); `SkipLayerNormalization` adds the projection's
    bias and the residual before normalising; the feed-forward GELU is exact (erf).
    """
    w, a = g.w, f"{p}.attention.self"
    wqkv = np.concatenate([w[f"{a}.{t}.weight"] for t in ("query", "key", "value")])
    bqkv = np.concatenate([w[f"{a}.{t}.bias"] for t in ("query", "key", "value")]).astype(np.float32)
    attn = g.fused(
        "Attention", [x, g.weight(f"{p}.qkv.W", wqkv), g.const(f"{p}.qkv.b", bqkv), mask], num_heads=heads
    )
    x = _add_and_norm(g, attn, x, f"{p}.attention.output")
    h = g.node("MatMul", [x, g.weight(f"{p}.intermediate.W", w[f"{p}.intermediate.dense.weight"])])
    gelu = g.fused(
        "BiasGelu", [h, g.const(f"{p}.intermediate.b", w[f"{p}.intermediate.dense.bias"].astype(np.float32))]
    )
    return _add_and_norm(g, gelu, x, f"{p}.output")


def _add_and_norm(g: _Graph, h: str, residual: str, prefix: str) -> str:
    """LayerNorm(h @ W + b + residual) for the checkpoint's `prefix`.dense and `prefix`.LayerNorm."""
    w = g.w
    y = g.node("MatMul", [h, g.weight(f"{prefix}.W", w[f"{prefix}.dense.weight"])])
    gamma, beta = (
        g.const(f"{prefix}.g", w[f"{prefix}.LayerNorm.weight"]),
        g.const(f"{prefix}.beta", w[f"{prefix}.LayerNorm.bias"]),
    )
    bias = g.const(f"{prefix}.b", w[f"{prefix}.dense.bias"].astype(np.float32))
    return g.fused("SkipLayerNormalization", [y, residual, gamma, beta, bias], epsilon=g.eps)


def _mean_pool(g: _Graph, x: str, maskf: str) -> None:
    """The output `sentence_embedding`: the mean of the token vectors over real tokens."""
    m3 = g.node("Unsqueeze", [maskf, g.const("axis2", np.array([2]))])  # B,S,1
    summed = g.node("ReduceSum", [g.node("Mul", [x, m3]), g.const("axis1", np.array([1]))], keepdims=0)
    tokens = g.node("ReduceSum", [m3, g.const("axis1b", np.array([1]))], keepdims=0)
    count = g.node("Max", [tokens, g.const("tiny", np.array(1e-9, np.float32))])
    g.nodes.append(g.helper.make_node("Div", [summed, count], ["sentence_embedding"], name="pool"))
