"""The answer line's check: what the model writes stands only when its cited source holds it."""

from __future__ import annotations

from types import SimpleNamespace

from rag.answer.line import REFUSAL, check, evidence_from, prompt, user_message

EVIDENCE = [
    (
        1,
        "Normans",
        "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
    ),
    (2, "Normans > Origin", "Normandy is a region in France. The Norman dynasty began in 1066."),
]


def test_short_answer_with_citation_of_its_source_is_kept():
    line = check("France. [2]", EVIDENCE)
    assert line.kept and line.cite == 2 and line.text == "France."
    assert not line.declined and line.reason == ""


def test_a_line_is_cited_to_the_shown_source_that_holds_it():
    line = check("France. [1]", EVIDENCE)  # [1] lacks it, [2] holds it: printed with [2]
    assert line.kept and line.cite == 2
    assert check("France. [7]", EVIDENCE).cite == 2  # a number it was never shown, likewise
    line = check("Germany. [1]", EVIDENCE)
    assert not line.kept and line.cite == 1 and line.reason == "not in source: germani"


def test_word_missing_from_every_source_is_not_kept():
    line = check("Germany. [2]", EVIDENCE)
    assert not line.kept and "germani" in line.reason


def test_number_must_stand_as_written():
    assert check("1066. [2]", EVIDENCE).kept
    line = check("1067. [2]", EVIDENCE)
    assert not line.kept and "1067" in line.reason


def test_inflected_words_stand_through_stems():
    assert check("The Norman dynasty. [2]", EVIDENCE).kept


def test_refusal_is_a_decline_not_a_line():
    line = check(REFUSAL, EVIDENCE)
    assert line.declined and not line.kept and line.reason == "declined"
    assert check("", EVIDENCE).declined


def test_a_line_without_a_citation_or_in_no_source_is_not_kept():
    assert check("France.", EVIDENCE).reason == "no citation"
    assert check("Germany. [7]", EVIDENCE).reason == "unshown source"
    line = check("France [2] and Normandy [1].", EVIDENCE)  # both stand in [2]
    assert line.kept and line.cite == 2


def test_only_the_first_line_counts():
    line = check("France. [2]\nQuestion: something else entirely [9]", EVIDENCE)
    assert line.kept and line.cite == 2


def test_prompt_numbers_sources_with_their_labels_and_ends_at_the_assistant_turn():
    text = user_message("Where is Normandy?", EVIDENCE)
    assert text.startswith("Sources:\n[1] Normans\nThe Normans")
    assert "[2] Normans > Origin\nNormandy is a region" in text
    assert text.endswith("Question: Where is Normandy?")
    assert prompt("Where is Normandy?", EVIDENCE).endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_evidence_groups_quoted_sentences_by_source_with_the_chunk_prefix():
    def source(n, title, heading, author=None):
        chunk = SimpleNamespace(title=title, heading=heading, author=author)
        return SimpleNamespace(n=n, hit=SimpleNamespace(chunk=chunk))

    sources = [source(1, "Stats", "P-values", "Ann"), source(2, "Other", "")]
    sentences = [("A p-value is a probability.", [1], 1.0), ("It is small.", [1], 1.0), ("Other.", [2], 1.0)]
    assert evidence_from(sentences, sources) == [
        (1, "Stats (by Ann) > P-values", "A p-value is a probability. It is small."),
        (2, "Other", "Other."),
    ]


def test_a_files_hash_is_remembered_across_processes_until_it_changes(tmp_path, monkeypatch):
    import hashlib

    from rag.answer import line as mod

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(mod, "_SHA_CACHE", {})
    f = tmp_path / "model.gguf"
    f.write_bytes(b"weights")
    assert mod.file_sha256(f) == hashlib.sha256(b"weights").hexdigest()
    (saved,) = (tmp_path / "cache" / "rag" / "sha256").iterdir()
    saved.write_text("a" * 64)  # a new process reads the remembered digest, not the file
    mod._SHA_CACHE.clear()
    assert mod.file_sha256(f) == "a" * 64
    saved.write_text("not a digest")  # a damaged entry is hashed again
    mod._SHA_CACHE.clear()
    assert mod.file_sha256(f) == hashlib.sha256(b"weights").hexdigest()
    f.write_bytes(b"other weights")  # changed: a new size, so a new key
    assert mod.file_sha256(f) == hashlib.sha256(b"other weights").hexdigest()


def test_a_line_that_only_gives_the_question_back_is_not_kept():
    evidence = [(1, "Indexing", "Leverage SQL indexes to speed up queries on large tables.")]
    line = check("Leverage SQL. [1]", evidence, "What does the article say about leverage SQL?")
    assert not line.kept and line.reason == "repeats the question"
    assert check("Indexes. [1]", evidence, "What does the article say about leverage SQL?").kept
    assert check("SQL. [1]", evidence, "Does it leverage SQL or Python?").kept  # a choice asked for
