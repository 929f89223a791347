"""How the CLI ends its process: a command that only read a FAISS index ends without the
interpreter's clean-up (its output flushed first); anything else, and every error, ends normally."""

import pytest

from rag import cli
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

    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    monkeypatch.setattr(cli, "_QUICK_EXIT", False)
    return seen


def _app(store: str, raise_: BaseException):
    def run() -> None:
        cli._quick_exit_after(load_settings(environ={}, overrides={"store": {"kind": store}}))
        raise raise_

    return run


def test_a_read_only_faiss_command_exits_quickly_with_its_code(monkeypatch, exits, capsys):
    monkeypatch.setattr(cli, "app", _app("faiss", SystemExit(0)))
    with pytest.raises(_Exited):
        cli.main()
    assert exits == [0]
    monkeypatch.setattr(cli, "app", _app("faiss", RagError("no index at x")))
    with pytest.raises(_Exited):
        cli.main()
    assert exits == [0, 1]
    assert "error: no index at x" in capsys.readouterr().err


def test_milvus_and_other_commands_exit_normally(monkeypatch, exits):
    monkeypatch.setattr(cli, "app", _app("milvus", SystemExit(0)))
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 0 and exits == []

    def index_like() -> None:
        raise SystemExit(2)

    monkeypatch.setattr(cli, "_QUICK_EXIT", False)
    monkeypatch.setattr(cli, "app", index_like)
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2 and exits == []
