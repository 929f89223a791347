"""The LLM's evaluated system prompt, kept on disk, so that a cold `rag ask --llm` starts from it.

Every prompt `rag` sends begins with the same tokens: the chat template's system turn (our
instructions) and the opening of the user turn. Evaluating those 76 tokens is about 0.4 s of the
first token's wait on a 2-core machine. llama.cpp can hand out its context (the key/value cache of
the tokens evaluated so far) as bytes and take them back, so the first `rag ask --llm` on a machine
evaluates the prefix once and writes the context to the per-user cache
(`$XDG_CACHE_HOME/rag/llm-prompts`, or `~/.cache/rag/llm-prompts`, about 2 MB); every later process
reads it back in a few milliseconds. llama-cpp-python then reuses the matching prefix of the real
prompt by itself and evaluates only the rest, so the answer is the same token for token.

The file's name is a hash of everything the bytes depend on: the model file (path, size, mtime),
the llama-cpp-python version, the context size and the prefix's tokens. A file that does not
match (a truncated write, another build's format, a changed prompt) is recomputed and replaced;
a cache that cannot be written only costs the 0.4 s again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from rag import user_cache

_MAGIC = b"RAGKV1\n"


def cache_dir() -> Path:
    return user_cache.cache_dir("llm-prompts")


def start_from_prefix(llm: Any, model_path: Path, system_prompt: str) -> str:
    """Leave `llm` holding the evaluated prompt prefix; say how: "read" from the cache,
    "evaluated" (and written to the cache), or "none" (no chat template to find it with)."""
    prefix = prefix_tokens(llm, system_prompt)
    if not prefix:
        return "none"
    path = cache_dir() / f"{_key(llm, model_path, prefix)}.kv"
    if _restore(llm, path, prefix):
        return "read"
    llm.reset()
    llm.eval(prefix)
    _save(llm, path, prefix)
    return "evaluated"


def chat_formatter(llm: Any) -> Any:
    """The model's chat template, rendered as llama-cpp-python's chat handler renders it; None
    when the model carries no template. A template Jinja cannot parse raises."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None

    def text(token: int) -> str:  # a special token's spelling, as the chat handler reads it
        return llm.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""

    return Jinja2ChatFormatter(
        template=template, eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos())
    )


def prefix_tokens(llm: Any, system_prompt: str) -> list[int]:
    """The tokens every chat prompt with this system prompt starts with, tokenized as
    llama-cpp-python's chat handler does: the common start of two prompts that differ only in
    the user's text. Empty when the model carries no chat template."""

    def tokens(formatter: Any, user: str) -> list[int]:
        messages: list[Any] = [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": user},
        ]
        out = formatter(messages=messages)
        return list(llm.tokenize(out.prompt.encode("utf-8"), add_bos=not out.added_special, special=True))

    try:
        formatter = chat_formatter(llm)
        if formatter is None:
            return []
        a = tokens(formatter, "Passages:\n[1] a\nQuestion: x")
        b = tokens(formatter, "Passages:\n[1] b\nQuestion: y")
    except Exception:  # a template we cannot render (any GGUF may be given): no cache, and the
        return []  # chat handler reports the problem itself when the question is asked
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _key(llm: Any, model_path: Path, prefix: list[int]) -> str:
    import llama_cpp

    st = model_path.stat()
    ident = [str(model_path.resolve()), st.st_size, st.st_mtime_ns, llama_cpp.__version__]
    ident += [llm.n_ctx(), prefix]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:20]


def _restore(llm: Any, path: Path, prefix: list[int]) -> bool:
    """Load the saved context into `llm`; False (and `llm` untouched or reset) when there is
    no usable file."""
    from llama_cpp.llama import LlamaState

    try:
        blob = path.read_bytes()
    except OSError:
        return False
    head_end = blob.find(b"\n", len(_MAGIC))
    if not blob.startswith(_MAGIC) or head_end < 0:
        return False
    try:
        head = json.loads(blob[len(_MAGIC) : head_end])
    except ValueError:
        return False
    data = blob[head_end + 1 :]
    if head.get("tokens") != prefix or head.get("sha256") != hashlib.sha256(data).hexdigest():
        return False
    n = len(prefix)
    ids = np.zeros(llm.n_ctx(), dtype=np.intc)
    ids[:n] = prefix
    logits = np.zeros((n, llm.n_vocab()), dtype=np.single)  # recomputed: the next decode refreshes them
    try:
        llm.load_state(LlamaState(ids, logits, n, data, len(data), getattr(llm, "_seed", 0)))
    except RuntimeError:  # another build's format: start clean
        llm.reset()
        return False
    return True


def _save(llm: Any, path: Path, prefix: list[int]) -> None:
    data = llm.save_state().llama_state
    head = json.dumps({"tokens": prefix, "sha256": hashlib.sha256(data).hexdigest()}).encode()
    with contextlib.suppress(OSError):  # a read-only cache costs the prefix's evaluation next time
        user_cache.write_atomic(path, _MAGIC + head + b"\n" + data)
