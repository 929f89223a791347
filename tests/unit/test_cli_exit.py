"""How the CLI ends its process: a command that only read a FAISS index ends without the
interpreter's clean-up (its output flushed first); anything else, and every error, ends normally."""

from types import SimpleNamespace

import pytest

from rag.cli import core
from rag.config import load_settings
from rag.errors import RagError


class _Exited(Exception):
    """What the fake os._exit raises: the real one never returns."""


@pytest.fixture
def exits(monkeypatch):
    seen: list[int] = []

    def fake_exit(code: int) -> None:
        seen.append(code)
        raise _Exited

    monkeypatch.setattr(core.os, "_exit", fake_exit)
    return seen


def _app(store: str, raise_: BaseException):
    """A stand-in for the typer app: a command over `store` that ends by raising `raise_`."""

    def run(obj: core.Ending) -> None:
        ctx = SimpleNamespace(obj=obj)  # what typer hands a command: main's Ending as ctx.obj
        core.quick_exit_after(ctx, load_settings(environ={}, overrides={"store": {"kind": store}}))
        raise raise_

    return run


def test_a_read_only_faiss_command_exits_quickly_with_its_code(monkeypatch, exits, capsys):
    monkeypatch.setattr(core, "app", _app("faiss", SystemExit(0)))
    with pytest.raises(_Exited):
        core.main()
    assert exits == [0]
    monkeypatch.setattr(core, "app", _app("faiss", RagError("no index at x")))
    with pytest.raises(_Exited):
        core.main()
    assert exits == [0, 1]
    assert "error: no index at x" in capsys.readouterr().err


def test_milvus_and_other_commands_exit_normally(monkeypatch, exits):
    monkeypatch.setattr(core, "app", _app("milvus", SystemExit(0)))
    with pytest.raises(SystemExit) as e:
        core.main()
    assert e.value.code == 0 and exits == []

    def index_like(obj: core.Ending) -> None:
        raise SystemExit(2)

    monkeypatch.setattr(core, "app", index_like)
    with pytest.raises(SystemExit) as e:
        core.main()
    assert e.value.code == 2 and exits == []


def test_a_caller_can_ask_for_a_normal_end(monkeypatch, exits):
    monkeypatch.setattr(core, "app", _app("faiss", SystemExit(0)))
    with pytest.raises(SystemExit) as e:
        core.main(quick_exit=False)
    assert e.value.code == 0 and exits == []


def test_the_real_search_command_asks_for_a_quick_exit(monkeypatch, exits, capsys):
    # An empty query fails after the command has said how the process ends, before any index.
    monkeypatch.setattr("sys.argv", ["rag", "search", " ", "--store", "faiss"])
    with pytest.raises(_Exited):
        core.main()
    assert exits == [1]
    assert capsys.readouterr().err == "error: empty query: give some words to search for\n"
