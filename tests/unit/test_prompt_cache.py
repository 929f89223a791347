"""A model whose chat template is missing or cannot be rendered gets no prompt cache, not an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.prompt_cache import prefix_tokens, start_from_prefix


class _Model:
    def __init__(self, template: str | None) -> None:
        self.metadata = {"tokenizer.chat_template": template} if template is not None else {}

    def token_eos(self) -> int:
        return 2

    def token_bos(self) -> int:
        return 1

    def detokenize(self, tokens: list[int], special: bool = False) -> bytes:
        return b"<s>" if tokens == [1] else b"</s>"

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(text)


BROKEN = ["{% for m in messages %}{{ m.content", "{{ raise_exception('no') }}"]


@pytest.mark.parametrize("template", [None, "", *BROKEN])
def test_no_usable_template_means_no_cache(template, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    llm = _Model(template)
    assert prefix_tokens(llm, "system") == []
    assert start_from_prefix(llm, Path("unused.gguf"), "system") == "none"
    assert not any(tmp_path.iterdir())


def test_the_prefix_is_what_two_prompts_share():
    llm = _Model("{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}")
    assert bytes(prefix_tokens(llm, "Be brief.")) == b"<system>Be brief.\n<user>Passages:\n[1] "
