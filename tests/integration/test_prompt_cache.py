"""The system prompt's evaluated context, cached on disk: the same answer, token for token."""

from __future__ import annotations

from rag.answer.prompt import SYSTEM_PROMPT
from rag.llm import generate, load_llm, model_file
from rag.prompt_cache import cache_dir, prefix_tokens, start_from_prefix

MESSAGES = [
    {"role": "system", "content": SYSTEM_PROMPT},
    {
        "role": "user",
        "content": "Passages:\n[1] Statistical significance\nA p-value under 0.05 is called significant.\n\n"
        "Question: what p-value is significant?\nAnswer:",
    },
]


def _answer(llm, settings) -> str:
    return "".join(generate(llm, MESSAGES, settings.llm.model_copy(update={"max_tokens": 24})))


def test_a_cached_prompt_prefix_gives_the_same_answer(settings, llm_works, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = model_file(settings.llm)
    plain = load_llm(path, settings.llm)
    expected = _answer(plain, settings)
    prefix = prefix_tokens(plain, SYSTEM_PROMPT)
    # the prefix is the chat template's system turn and the start of the user's: the prompt
    # llama-cpp-python builds for MESSAGES begins with it
    assert len(prefix) > 40 and list(plain.input_ids[: len(prefix)]) == prefix

    first = load_llm(path, settings.llm)
    assert start_from_prefix(first, path, SYSTEM_PROMPT) == "evaluated"
    (saved,) = cache_dir().glob("*.kv")
    assert _answer(first, settings) == expected

    second = load_llm(path, settings.llm)
    assert start_from_prefix(second, path, SYSTEM_PROMPT) == "read"
    assert second.n_tokens == len(prefix)
    assert _answer(second, settings) == expected

    saved.write_bytes(saved.read_bytes()[:-100])  # a truncated file is recomputed and replaced
    third = load_llm(path, settings.llm)
    assert start_from_prefix(third, path, SYSTEM_PROMPT) == "evaluated"
    assert _answer(third, settings) == expected
    assert start_from_prefix(load_llm(path, settings.llm), path, SYSTEM_PROMPT) == "read"


def test_another_system_prompt_has_its_own_entry(settings, llm_works, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = model_file(settings.llm)
    llm = load_llm(path, settings.llm)
    assert start_from_prefix(llm, path, SYSTEM_PROMPT) == "evaluated"
    assert start_from_prefix(llm, path, "Answer in French.") == "evaluated"
    assert len(list(cache_dir().glob("*.kv"))) == 2
