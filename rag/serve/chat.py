"""The OpenAI chat-completions wire format over `rag serve`'s answers, so that chat clients (and
the `llm` CLI) can use an index as their model: the answer's text with its [n] citations and a
Sources list, and the structured answer alongside under `rag`."""

from __future__ import annotations

import time
import uuid
from typing import Any

from rag.errors import RagError
from rag.serve.models import MAX_QUESTION, ChatIn

MODELS = {"rag": None, "rag-extractive": "extractive", "rag-llm": "llm"}  # model name -> answer mode


def mode_of(model: str) -> str | None:
    """The answer mode a model name asks for (`rag`: the configured one)."""
    if model not in MODELS:
        raise RagError(f"unknown model '{model}': use one of {', '.join(MODELS)}")
    return MODELS[model]


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if p.get("type") in ("text", "input_text"))
    return content or ""


def questions(req: ChatIn) -> tuple[str, str | None]:
    """The question (the last user message) and the earlier one it may follow up on."""
    asked = [_text(m.content) for m in req.messages if m.role == "user"]
    asked = [q for q in asked if q.strip()]
    if not asked:
        raise RagError("no user message with text: the last user message is the question")
    if len(asked[-1]) > MAX_QUESTION:
        raise RagError(f"question too long ({len(asked[-1])} characters; at most {MAX_QUESTION})")
    return asked[-1], (asked[-2][:MAX_QUESTION] if len(asked) > 1 else None)


def sources_text(answer: dict[str, Any]) -> str:
    """The citations as the text's end: one line a cited chunk, '[n] title — url'."""
    if answer["abstained"]:
        why = f"\n\n(why: {answer['abstain_reason']})" if answer.get("abstain_reason") else ""
        return why
    lines = [f"[{c['n']}] {c['title']} — {c['url']}" for c in answer["citations"]]
    return "\n\nSources:\n" + "\n".join(lines) if lines else ""


def content(answer: dict[str, Any]) -> str:
    """The whole reply: the note of an unsure answer, the answer, its sources."""
    return head(answer) + answer["answer"] + sources_text(answer)


def head(answer: dict[str, Any]) -> str:
    if answer["outcome"] == "unsure":
        return "(not sure: the sources come closest to this, but may not answer it)\n"
    return ""


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def completion(answer: dict[str, Any], model: str, cid: str) -> dict[str, Any]:
    """A whole `chat.completion` object."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content(answer)},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "rag": answer,
    }


def chunk(
    cid: str,
    model: str,
    delta: dict[str, Any],
    finish: str | None = None,
    answer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk` of a stream; the last carries the structured answer."""
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if answer is not None:
        out["rag"] = answer
    return out
