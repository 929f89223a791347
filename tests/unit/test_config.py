from pathlib import Path

import pytest

from rag.config import load_settings
from rag.errors import RagError


def test_defaults_load_and_paths_are_absolute():
    s = load_settings(environ={})
    assert s.retrieve.k == 10
    assert s.paths.index.is_absolute()


def test_unknown_key_is_rejected_naming_it(tmp_path: Path):
    f = tmp_path / "c.toml"
    f.write_text("[retrieve]\nkk = 3\n")
    with pytest.raises(RagError, match=r"unknown setting 'retrieve.kk'"):
        load_settings(f, environ={})


def test_bad_value_names_the_key(tmp_path: Path):
    f = tmp_path / "c.toml"
    f.write_text("[retrieve]\nk = 'many'\n")
    with pytest.raises(RagError, match=r"bad value for 'retrieve.k'"):
        load_settings(f, environ={})


def test_environment_then_flags_override_the_file():
    s = load_settings(environ={"RAG_RETRIEVE__K": "7", "RAG_LLM__N_THREADS": "1"})
    assert s.retrieve.k == 7 and s.llm.n_threads == 1
    s = load_settings(overrides={"retrieve": {"k": 3}}, environ={"RAG_RETRIEVE__K": "7"})
    assert s.retrieve.k == 3


def test_bad_environment_value_is_a_one_line_error():
    with pytest.raises(RagError, match=r"environment: bad value for 'retrieve.retriever'"):
        load_settings(environ={"RAG_RETRIEVE__RETRIEVER": "magic"})
