from rag.chunk import SPECIAL_TOKENS, chunk_article, prefix
from rag.embed import count_tokens
from rag.ingest import ingest
from rag.text import split_sentences
from tests.conftest import SEED


def _chunks(**kw):
    out = []
    for a in ingest(SEED).articles:
        out.append((a, chunk_article(a, count_tokens, **kw)))
    return out


def test_every_chunk_fits_the_embedder_window_with_its_prefix():
    for _, chunks in _chunks(max_tokens=256, target_tokens=160, overlap_tokens=32):
        for c in chunks:
            assert count_tokens(c.embed_text) + SPECIAL_TOKENS <= 256


def test_chunk_body_is_the_exact_span_of_the_clean_article():
    for a, chunks in _chunks():
        for c in chunks:
            assert a.text[c.start : c.end] == c.text
            assert c.url == a.url and c.title == a.title


def test_chunks_cover_the_whole_article_in_order_with_overlap():
    for a, chunks in _chunks(max_tokens=256, target_tokens=120, overlap_tokens=32):
        starts = [c.start for c in chunks]
        assert starts == sorted(starts)
        body = "".join(a.text.split())
        covered = "".join("".join(c.text.split()) for c in chunks)
        # every non-heading word of the article is in some chunk
        for line in a.text.splitlines():
            if line.strip() and not line.startswith("#"):
                assert "".join(line.split()) in covered or any(
                    "".join(line.split())[:40] in "".join(c.text.split()) for c in chunks
                )
        assert body  # the article is not empty


def test_heading_path_is_carried_and_chunks_do_not_cross_headings():
    stats = next((a, c) for a, c in _chunks() if "Significance" in a.title)
    article, chunks = stats
    flaw3 = [c for c in chunks if c.heading.endswith("Flaw 3: It’s easy to hack (and frequently is)")]
    # The section's first chunk opens with its own heading; no chunk runs into the next one.
    assert flaw3 and flaw3[0].text.startswith("## Flaw 3: It’s easy to hack")
    for c in chunks:
        lines = [ln for ln in c.text.splitlines() if ln.strip()]
        body = [i for i, ln in enumerate(lines) if not ln.startswith("#")]
        assert all(not ln.startswith("#") for ln in lines[body[0] :]) if body else True
    assert chunks[0].embed_text.startswith(prefix(article.title, chunks[0].heading, article.author))
    assert prefix("T", "H", "Ann Lee") == "T (by Ann Lee) > H" and prefix("T", "", None) == "T"


def test_author_rides_in_the_prefix_and_bodies_stay_exact_spans():
    for article, chunks in _chunks():
        for c in chunks:
            assert article.text[c.start : c.end] == c.text
            if article.author:
                assert c.author == article.author and f"(by {article.author})" in c.embed_text


def test_same_text_same_id_and_changed_text_new_id():
    a = ingest(SEED).articles[0]
    first = chunk_article(a, count_tokens)
    again = chunk_article(a, count_tokens)
    assert [c.id for c in first] == [c.id for c in again]
    from dataclasses import replace

    changed = chunk_article(replace(a, text=a.text.replace("drive-thru", "drive-through")), count_tokens)
    assert first[0].id != changed[0].id
    assert [c.id for c in first[3:]] == [c.id for c in changed[3:]]


def test_an_overlong_sentence_is_split_not_truncated():
    from rag.ingest import Article

    words = " ".join(f"word{i}" for i in range(600))
    a = Article("https://x.org/a", "T", "P", None, None, words, False, "f", 1)
    chunks = chunk_article(a, count_tokens, max_tokens=128, target_tokens=100, overlap_tokens=0)
    assert len(chunks) > 3
    assert " ".join(c.text for c in chunks).split() == words.split()
    assert all(count_tokens(c.embed_text) + SPECIAL_TOKENS <= 128 for c in chunks)


def test_split_sentences():
    assert split_sentences("One here. Two there!\n* item three") == [
        "One here.",
        "Two there!",
        "* item three",
    ]


def test_headings_and_a_subtitle_followed_at_once_by_a_heading_are_in_some_chunk():
    for article, chunks in _chunks():
        text = "".join(c.text for c in chunks)
        for line in article.text.splitlines():
            if line.startswith("#"):
                assert line in text, (article.title, line)
    data_q = next(c for a, c in _chunks() if "Career Questions" in a.title)
    # its subtitle is followed at once by "# What does a data scientist do?"
    assert data_q[0].text.startswith("## I’ve been a data scientist for over 3 years.")
    assert data_q[0].heading == "What does a data scientist do?"
