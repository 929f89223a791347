"""Bad input never costs a traceback or the rest of a batch (issue 33), with the real models and
the real index: generated batches through the CLI in process, and the fixed corpus of nasty inputs
(tests/data/nasty/corpus.py) through `rag` in a fresh process, as a user runs it.

Sizes: 40 generated standard inputs of up to 6 lines through `rag search - --json` and 8 of up to
2 lines through `rag ask - --json` (the cheap >= 10,000 are in tests/unit/test_textio.py); the
fixed corpus's 47 inputs as one batch to `rag search -` (the first of each of 10 kinds to
`rag ask -`, where answering costs about a second a line), three of them as arguments, and all of
them as the scrapes of a build that must fail and leave the index as it was.
`rag serve` (with its extra installed) gets 60 generated queries and 10 generated ask bodies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rag.cli import app
from rag.textio import decode_lines
from tests.data.nasty.corpus import inputs
from tests.unit.test_textio import BYTES, FUZZ, TEXT

GOOD = b"what is softmax"


@pytest.fixture(scope="module")
def in_process(real_index, retriever, settings, monkeypatch_module):
    """The CLI in this process over the session's loaded retriever and an extractive answerer
    (model loading, done once a process, is the only part replaced)."""
    from rag.answer import Answerer

    answerer = Answerer(retriever, settings.answer, settings.llm, settings.paths.abstention)
    monkeypatch_module.setattr("rag.assembly.open_retriever", lambda *a, **k: retriever)
    monkeypatch_module.setattr("rag.cli.query._answerer", lambda *a, **k: answerer)
    return real_index


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as m:
        yield m


def _nonblank(data: bytes) -> list[int]:
    return [n for n, text, _ in decode_lines(data) if text.strip()]


def _check_batch(stdout: str, expected: list[int], answered_key: str) -> int:
    """Every non-blank line got one JSON object, in order: an answer or {"line", "error"}; returns
    how many failed."""
    rows = [json.loads(x) for x in stdout.splitlines()]
    assert len(rows) == len(expected)
    failed = 0
    for row, n in zip(rows, expected, strict=True):
        if "error" in row:
            assert set(row) == {"line", "error"} and row["line"] == n and "\n" not in row["error"]
            failed += 1
        else:
            assert answered_key in row
    return failed


LINES = st.lists(st.one_of(TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), BYTES), max_size=5)


@given(LINES)
@settings(FUZZ, max_examples=40)
def test_generated_search_batches_answer_every_line_in_process(in_process, lines):
    data = b"\n".join([*lines, GOOD])
    res = CliRunner().invoke(
        app, ["search", "-", "--json", "--k", "3", "--index", str(in_process)], input=data
    )
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    failed = _check_batch(res.stdout, _nonblank(data), "results")
    assert res.exit_code == (3 if failed else 0)


@given(LINES.map(lambda lines: lines[:2]))
@settings(FUZZ, max_examples=8)
def test_generated_ask_batches_answer_every_line_in_process(in_process, lines):
    data = b"\n".join(lines)
    res = CliRunner().invoke(
        app, ["ask", "-", "--json", "--extractive", "--index", str(in_process)], input=data
    )
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    failed = _check_batch(res.stdout, _nonblank(data), "answer")
    assert res.exit_code == (3 if failed else 0)


def test_an_argument_in_another_encoding_is_read_in_process(in_process):
    arg = os.fsdecode(b"caf\xe9 \xff softmax")  # what Python makes of such an argument
    res = CliRunner().invoke(app, ["search", arg, "--json", "--k", "1", "--index", str(in_process)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["query"] == "caf\u00e9 \u00ff softmax"


# --------------------------------------------------------------------------- in a fresh process


def _rag(*args: str | bytes, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "rag", *args], input=stdin, capture_output=True, timeout=300)


# The kinds that ended in a traceback or cut a batch short before issue 33 (bench/BAD_INPUT.md),
# and the ones `ask` refuses; `ask -` gets the first of each (answering costs ~1 s a line).
ASK_KINDS = ("latin1", "cp1252", "stray-byte", "invalid-utf8", "utf16-bom", "random-bytes", "mixed", "nul")
ASK_KINDS += ("empty-after-cleaning", "long")


def _corpus_batch(kinds: tuple[str, ...] | None = None) -> bytes:
    """The fixed corpus's inputs (all, or the first of each of `kinds`), one after another,
    between two good questions."""
    chosen = [data for name, data in inputs() if kinds is None or name in {f"{k}-1" for k in kinds}]
    return b"\n".join([GOOD, *chosen, GOOD]) + b"\n"


def test_the_nasty_corpus_as_one_ask_batch_is_answered_line_by_line(real_index):
    data = _corpus_batch(ASK_KINDS)
    res = _rag("ask", "-", "--json", "--index", str(real_index), stdin=data)
    err = res.stderr.decode()
    assert "Traceback" not in err, err
    assert all(x.startswith("warning: line ") for x in err.splitlines()), err
    expected = _nonblank(data)
    failed = _check_batch(res.stdout.decode(), expected, "answer")
    assert 0 < failed < len(expected) and res.returncode == 3
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert rows[0]["question"] == rows[-1]["question"] == GOOD.decode()


def test_the_nasty_corpus_as_one_search_batch_names_each_failed_line(real_index):
    data = _corpus_batch()
    res = _rag("search", "-", "--k", "2", "--index", str(real_index), stdin=data)
    err = res.stderr.decode()
    assert "Traceback" not in err, err
    failed = [x for x in err.splitlines() if not x.startswith("warning: line ")]
    assert failed and all(x.startswith("error: line ") for x in failed), err
    assert res.returncode == 3
    assert res.stdout.decode().count("softmax") >= 2  # the first and the last line were searched


def test_arguments_in_other_encodings_are_read(real_index):
    res = _rag("search", b"caf\xe9 \xff softmax", "--author", b"\xff", "--index", str(real_index))
    assert res.returncode == 0 and b"Traceback" not in res.stderr, res.stderr
    res = _rag("ask", b"\x93what is p-hacking?\x94", "--json", "--index", str(real_index))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["question"] == "\u201cwhat is p-hacking?\u201d"


def test_a_build_from_nasty_scrapes_fails_in_one_line_and_leaves_the_index_as_it_was(
    real_index_copy: Path, tmp_path: Path
):
    scrapes = tmp_path / "scrapes"
    scrapes.mkdir()
    for name, data in inputs():
        (scrapes / f"{name}.md").write_bytes(data)

    def snapshot() -> dict[str, bytes]:
        return {
            str(p.relative_to(real_index_copy)): p.read_bytes()
            for p in real_index_copy.rglob("*")
            if p.is_file()
        }

    before = snapshot()
    res = _rag("index", "--scrapes", str(scrapes), "--index", str(real_index_copy))
    err = res.stderr.decode()
    assert res.returncode == 1 and "Traceback" not in err, err
    assert err.splitlines()[-1].startswith("error: no articles found"), err
    assert snapshot() == before


# --------------------------------------------------------------------------- rag serve


@pytest.fixture(scope="module")
def serve_client(real_index, settings):
    """`rag serve`'s app through FastAPI's test client (skipped without the serve extra)."""
    pytest.importorskip("fastapi", reason="rag serve needs the serve extra")
    from fastapi.testclient import TestClient

    from rag.serve.app import create_app
    from rag.serve.service import Service

    service = Service(settings, real_index, workers=1)
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield client
    service.close()


def _served(r) -> None:
    """An answer, or one line of JSON that says why not; never a server error."""
    assert r.status_code in (200, 400, 413, 422), (r.status_code, r.text[:300])
    assert "Traceback" not in r.text
    if r.status_code != 200:
        body = r.json()
        assert set(body) == {"error"} and "\n" not in body["error"]


@given(st.one_of(TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), BYTES))
@settings(FUZZ, max_examples=60)
def test_generated_queries_to_rag_serve_get_a_result_or_a_one_line_error(serve_client, raw):
    # the raw bytes percent-encoded in the URL, as a browser or curl would send any of them
    _served(serve_client.get("/api/search?k=2&q=" + quote_from_bytes(raw[:3000])))


@given(st.one_of(TEXT, BYTES))
@settings(FUZZ, max_examples=10)
def test_generated_ask_bodies_to_rag_serve_get_an_answer_or_a_one_line_error(serve_client, raw):
    if isinstance(raw, str):  # a JSON body (lone surrogates as \ud800 escapes, as JSON allows)
        body = json.dumps({"question": raw, "mode": "extractive"}).encode()
    else:  # the question's bytes pasted into a body as they are, JSON or not
        body = b'{"question": "' + raw[:2000] + b'"}'
    _served(serve_client.post("/api/ask", content=body, headers={"Content-Type": "application/json"}))
