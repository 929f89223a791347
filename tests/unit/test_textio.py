"""Text in, whatever its bytes (issue 33): decoding by rag.textio's rules, questions cleaned for the
tokenizer, and the batch reader of `rag ask -` / `rag search -`; fuzzed with hypothesis.

The fuzzed tests here are the cheap part of the issue's >= 10,000 generated inputs, drawn ten to a
hypothesis example where that is cheaper: 5,000 byte strings decoded (500 examples), 4,000
questions and raw byte strings cleaned and tokenized (400), 1,000 UTF-8 texts read back (100),
300 standard inputs of up to 5 lines read as a batch: 10,300 inputs;
tests/integration/test_bad_input.py runs 118 more through the whole CLI and `rag serve`.
"""

from __future__ import annotations

import io
import os
import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.config import load_settings
from rag.errors import RagError
from rag.ingest import parse_bundle
from rag.textio import EMPTY, clean_question, decode_bytes, decode_lines, from_argv, sniff_encoding
from tests.unit.test_ingest import article

FUZZ = settings(
    deadline=None,
    database=None,  # nothing written into the working tree; a failure prints its example
    # the batch test resets what it patches for each input (monkeypatch.context)
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

# What terminals, pipes and editors add to text: controls, bidi and invisible characters, lone
# surrogates (Python's escapes among them), odd line breaks, text that looks like JSON or a flag.
# fmt: off
ODD = st.sampled_from(
    [
        "\x00", "\x07", "\x08", "\x1b[31m", "\x1b", "\r", "\r\n", "\t", "\x0b", "\x0c", "\x7f", "\x85",
        "\u2028", "\u2029", "\u202e", "\u202d", "\u2066", "\u2069", "\u200b", "\u200d", "\ufeff",
        "\ufffd", "\ufffe", "\uffff", "\ud800", "\udfff", "\udce9", "\udcff", "\ue000", "\U0010ffff",
        "\U0001f916", "e\u0301", '{"question": "x"}', '{"line": 1, "error": "x"}', "[", "null",
        "--help", "-k", "--json", "-", 'softmax" OR "', "NEAR(", "*", "%s{0}",
    ]
)
# fmt: on
WORDS = st.sampled_from(["what is", " softmax", "caf\u00e9", " ", "p-hacking", "\n"])
TEXT = st.lists(st.one_of(ODD, WORDS, st.characters(), st.text(max_size=6)), max_size=10).map("".join)
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "cp1252", "latin-1"]


@st.composite
def encoded(draw: st.DrawFn) -> bytes:
    """Text in one encoding, or pieces in several (a file edited on two machines)."""
    pieces = draw(st.lists(st.tuples(TEXT, st.sampled_from(ENCODINGS)), min_size=1, max_size=2))
    return b"".join(
        t.encode(enc, errors="surrogatepass" if enc.startswith("utf") else "replace") for t, enc in pieces
    )


LONG = st.builds(
    lambda word, n: word * n,
    st.sampled_from([b"a", b"softmax ", "\u00e9".encode(), b"\xe9", b"\x00"]),
    st.integers(500, 20_000),
)
BYTES = st.one_of(st.binary(max_size=300), encoded(), LONG)


@pytest.fixture(scope="module")
def tokenizer():
    from rag.embed import read_tokenizer

    return read_tokenizer(256)


# --------------------------------------------------------------------------------- decoding


def test_utf8_with_or_without_a_mark_is_read_as_utf8():
    assert decode_bytes("caf\u00e9".encode()).text == "caf\u00e9"
    d = decode_bytes(b"\xef\xbb\xbfcaf\xc3\xa9")
    assert (d.text, d.encoding, d.bad_line) == ("caf\u00e9", "utf-8", None)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_are_read_by_their_mark_or_their_nuls(encoding):
    text = "what is softmax?\nna\u00efve bayes"
    data = text.encode(encoding)
    if encoding.endswith(("le", "be")) and encoding.startswith("utf-16"):
        assert sniff_encoding(data) == encoding  # no mark: ASCII's NULs give it away
    assert decode_bytes(data).text == text
    assert [t for _, t, _ in decode_lines(data)] == text.split("\n")


def test_bytes_that_are_not_utf8_are_read_as_windows_1252_naming_the_line():
    d = decode_bytes(b"fine\nfine too\n\x93caf\xe9\x94 \xff\n")
    assert d.text == "fine\nfine too\n\u201ccaf\u00e9\u201d \u00ff\n"
    assert d.bad_line == 3
    # UTF-8 around a stray byte keeps its own characters
    assert decode_bytes("na\u00efve ".encode() + b"\x81").text == "na\u00efve \x81"


def test_lines_say_which_were_not_utf8():
    lines = list(decode_lines(b"ok\ncaf\xe9\n\xef\xbb\xbfstill utf-8"))
    assert lines == [(1, "ok", False), (2, "caf\u00e9", True), (3, "\ufeffstill utf-8", False)]


def test_arguments_python_escaped_are_decoded():
    assert from_argv(os.fsdecode(b"caf\xc3\xa9")) == "caf\u00e9"
    assert from_argv(os.fsdecode(b"caf\xe9 \xff")) == "caf\u00e9 \u00ff"
    assert from_argv("\ud800 lone") == " lone"


@given(st.lists(BYTES, min_size=10, max_size=10))
@settings(FUZZ, max_examples=500)
def test_any_bytes_decode_to_text_utf8_can_hold(datas):
    for data in datas:
        for text in [decode_bytes(data).text, *(t for _, t, _ in decode_lines(data))]:
            text.encode("utf-8")  # no lone surrogate: the codecs used never produce one


UTF8_TEXT = st.text().filter(lambda t: not t.startswith("\ufeff") and "\x00" not in t[:32])


@given(st.lists(UTF8_TEXT, min_size=10, max_size=10))
@settings(FUZZ, max_examples=100)
def test_utf8_text_reads_back_unchanged(texts):
    for text in texts:
        assert decode_bytes(text.encode("utf-8")).text == text


# --------------------------------------------------------------------------------- questions


def test_questions_lose_controls_bidi_and_invisibles_and_keep_their_words():
    q = "\x1b[31mwhat\x00is \u202esoft\u200bmax\u202c\x07?\x1b[0m\r\n"
    assert clean_question(q) == "what is softmax ?"
    assert clean_question("  caf\u00e9\tau\u2028lait  ") == "caf\u00e9 au lait"
    assert clean_question(b"\xff\xfe" + "p-hacking".encode("utf-16-le")) == "p-hacking"
    assert clean_question("what is \U0001f916 e\u0301?") == "what is \U0001f916 e\u0301?"


def test_a_question_with_nothing_left_is_one_line_error():
    with pytest.raises(RagError, match=f"^{EMPTY}$"):
        clean_question(" \t ")
    with pytest.raises(RagError, match="^nothing left once control characters are removed"):
        clean_question("\u200b\x00\x1b[0m")
    with pytest.raises(RagError, match=r"^question too long \(2001 characters; at most 2000\)$"):
        clean_question("a" * 2001, max_chars=2000)


@given(st.lists(st.one_of(TEXT, BYTES), min_size=10, max_size=10))
@settings(FUZZ, max_examples=400)
def test_any_question_is_cleaned_for_the_tokenizer_or_refused_in_one_line(tokenizer, raws):
    for raw in raws:
        try:
            q = clean_question(raw)
        except RagError as e:
            assert "\n" not in str(e) and str(e)
            continue
        assert q == q.strip() and "  " not in q
        assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in q)
        assert clean_question(q) == q
        tokenizer.encode(q[:4000])  # a str it rejects raises here (its length does not matter)


# --------------------------------------------------------------------------------- batches


def _read_batch(monkeypatch, data: bytes):
    from rag.cli import query

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    return query._queries("-")


def test_a_batch_keeps_every_line_numbered(monkeypatch, capsys):
    data = b"what is softmax\n\n\x00\x00\ncaf\xe9\n" + b"a" * 10 + b"\n  \n\xe2\x80\x8b\n"
    lines = _read_batch(monkeypatch, data)
    assert [(x.number, x.text, x.error) for x in lines] == [
        (1, "what is softmax", None),
        (3, "", "nothing left once control characters are removed: give some words to search for"),
        (4, "caf\u00e9", None),
        (5, "aaaaaaaaaa", None),
        (7, "", "nothing left once control characters are removed: give some words to search for"),
    ]
    assert capsys.readouterr().err == "warning: line 4: not UTF-8; read as Windows-1252\n"


@given(st.lists(st.one_of(TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), BYTES), max_size=5))
@settings(FUZZ, max_examples=300)
def test_any_standard_input_gives_one_query_or_error_per_nonblank_line(monkeypatch, parts):
    data = b"\n".join(parts)
    with monkeypatch.context() as m:
        m.setattr("rag.cli.query.warn", lambda message: None)
        lines = _read_batch(m, data)
    expected = [n for n, text, _ in decode_lines(data) if text.strip()]
    assert [x.number for x in lines] == expected
    assert all((x.error is None) == bool(x.text) for x in lines)


# --------------------------------------------------------------------------------- files


def test_a_scrape_in_windows_1252_is_read_and_warned_about_by_name(tmp_path):
    f = tmp_path / "latin.md"
    f.write_bytes(article(body="Caf\u00e9 au lait \u2013 a na\u00efve r\u00e9sum\u00e9.").encode("cp1252"))
    arts, warns = parse_bundle(f)
    assert len(arts) == 1 and "Caf\u00e9 au lait \u2013 a na\u00efve r\u00e9sum\u00e9." in arts[0].text
    assert [str(w) for w in warns] == [f"{f}:{warns[0].line}: not UTF-8: read as Windows-1252"]


def test_a_scrape_in_utf16_is_read_without_warning(tmp_path):
    f = tmp_path / "wide.md"
    f.write_bytes(article(body="Caf\u00e9 in UTF-16.").encode("utf-16"))
    arts, warns = parse_bundle(f)
    assert len(arts) == 1 and "Caf\u00e9 in UTF-16." in arts[0].text and warns == []


def test_config_files_with_a_mark_are_read_and_others_refused_by_line(tmp_path):
    toml = "[retrieve]\nk = 7\n# caf\u00e9\n"
    for encoding in ("utf-8-sig", "utf-16"):
        f = tmp_path / f"{encoding}.toml"
        f.write_bytes(toml.encode(encoding))
        assert load_settings(f, environ={}).retrieve.k == 7
    bad = tmp_path / "latin.toml"
    bad.write_bytes(toml.encode("latin-1"))
    with pytest.raises(RagError, match=r"latin\.toml: line 3 is not UTF-8: save the file as UTF-8$"):
        load_settings(bad, environ={})
    for blob in (b"\x00\x01\x02binary", bytes(range(256))):
        bad.write_bytes(blob)
        with pytest.raises(RagError):
            load_settings(bad, environ={})
    with pytest.raises(RagError, match="cannot read the config file"):
        load_settings(tmp_path, environ={})
