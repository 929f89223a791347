"""`rag search` on the real corpus with the real models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rag.errors import RagError
from rag.retrieve import cap_per_article, rrf_fuse
from rag.stores import Filters
from tests.conftest import ROOT, run_rag


def test_rare_keyword_is_found_lexically(retriever):
    (top,) = retriever.search("y2b", k=1, retriever="bm25")
    assert "I Built an AI App" in top.chunk.title
    (top,) = retriever.search("sentencpiece", k=1, retriever="bm25")
    assert top.chunk.heading.endswith("Subword Tokenizers")


def test_paraphrase_without_shared_words_is_found_densely(retriever):
    query = "making the final scores look like odds summing to 100 percent"
    assert "softmax" not in query

    def softmax_in(name: str) -> bool:
        return any(h.chunk.heading.endswith("Softmax") for h in retriever.search(query, k=3, retriever=name))

    assert softmax_in("dense") and not softmax_in("bm25")


def test_hybrid_finds_both_kinds(retriever):
    assert any("I Built an AI App" in h.chunk.title for h in retriever.search("y2b", k=3))
    hits = retriever.search("turning raw output numbers into chances that add up to one", k=3)
    assert any(h.chunk.heading.endswith("Softmax") for h in hits)


def test_filters_restrict_hits(retriever):
    hits = retriever.search("python libraries", k=10, filters=Filters(publication="plain english"))
    assert hits and all("python-in-plain-english" in h.chunk.url for h in hits)
    hits = retriever.search("data science", k=10, filters=Filters(since="2024-11-01"))
    assert hits and all(h.chunk.published and h.chunk.published[:10] >= "2024-11-01" for h in hits)


@pytest.mark.parametrize(
    ("question", "title", "retrievers"),
    [
        # a name and nothing else: the embedder knows little of names; BM25 and hybrid find it
        ("What does Christopher Karg write about?", "To Index or Not to Index", ("bm25", "hybrid")),
        ("what does haden pelletier say", "Top Data Science Career Questions, Answered", ("bm25", "hybrid")),
        (
            "Rohit Patel on transformers",
            "LLMs from Scratch Using Middle School Math",
            ("dense", "bm25", "hybrid"),
        ),
        (
            "what does Cai Parry-Jones say about dice",
            "The Statistical Significance Scam",
            ("dense", "bm25", "hybrid"),
        ),
    ],
)
def test_a_question_naming_an_author_ranks_their_article_first(retriever, question, title, retrievers):
    for name in retrievers:
        assert retriever.search(question, k=1, retriever=name)[0].chunk.title == title, name


def test_named_authors_are_whole_names_in_any_case(retriever):
    assert retriever.named_authors("what does SAANKHYA MONDAL's guide say") == ["Saankhya Mondal"]
    assert retriever.named_authors("what does Mondal say") == []  # a full name, not a surname
    assert retriever.named_authors("abdur rahmanx") == []


def test_author_filter_keeps_that_authors_articles(retriever):
    hits = retriever.search("data science", k=10, filters=Filters(author="MONDAL"))
    assert hits and {h.chunk.author for h in hits} == {"Saankhya Mondal"}


def test_max_per_article_caps_hits(retriever):
    hits = retriever.search("neural network weights", k=5, max_per_article=1)
    assert len({h.chunk.article_id for h in hits}) == len(hits)


def test_empty_query_is_an_error(retriever):
    with pytest.raises(RagError, match="empty query"):
        retriever.search("   ")


def test_rrf_fusion_by_hand():
    fused = rrf_fuse([["a", "b"], ["b", "c"]], [1.0, 1.0], 60)
    assert [d for d, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_cap_per_article_keeps_order():
    from rag.stores import StoredChunk

    def ch(cid, art):
        return StoredChunk(cid, art, "u", "t", "p", None, "", "", 0, 0, 0, False)

    ranked = [(ch("1", "A"), 3.0), (ch("2", "A"), 2.0), (ch("3", "B"), 1.0)]
    assert [c.chunk_id for c, _ in cap_per_article(ranked, 1)] == ["1", "3"]


def test_cli_json_and_stdin_batch(real_index):
    res = run_rag(
        "search",
        "-",
        "--index",
        str(real_index),
        "--json",
        "--k",
        "3",
        stdin="what is p-hacking\n\nhow does softmax work\n",
    )
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x["query"] for x in lines] == ["what is p-hacking", "how does softmax work"]
    for x in lines:
        assert x["retriever"] == "hybrid" and len(x["results"]) == 3
        r = x["results"][0]
        assert set(r) == {
            "rank",
            "score",
            "chunk_id",
            "url",
            "title",
            "author",
            "heading",
            "published",
            "text",
        }
        assert r["rank"] == 1 and r["url"].startswith("https://medium.com/")


def test_cli_errors_are_one_line(real_index, tmp_path):
    res = run_rag("search", "", "--index", str(real_index))
    assert res.returncode == 1 and res.stderr.strip() == "error: empty query: give some words to search for"
    res = run_rag("search", "x", "--index", str(tmp_path / "none"))
    assert res.returncode == 1 and "no index here yet" in res.stderr and "Traceback" not in res.stderr
    res = run_rag("search", "x", "--index", str(real_index), "--since", "last week")
    assert res.returncode == 1 and "--since" in res.stderr
    res = run_rag("search", "x", "--k", "many")
    assert res.returncode == 2 and "--k" in res.stderr and "Traceback" not in res.stderr
    res = run_rag("index", "--scrapes", str(tmp_path / "missing"), "--index", str(tmp_path / "i"))
    assert res.returncode == 1 and "scrapes path not found" in res.stderr
    assert not (tmp_path / "i").exists()


def test_a_search_loads_no_torch_no_cleaner_and_no_chunker(real_index):
    code = (
        "import sys; from rag.config import load_settings; from rag.stores import open_store; "
        "from rag.retrieve import Retriever; s = load_settings(None); "
        f"r = Retriever(open_store(__import__('pathlib').Path({str(real_index)!r})), s.retrieve); "
        "hits = r.search('what is a smart contract', k=3); "
        "print(len(hits), sorted(m for m in ('torch', 'sentence_transformers', 'rag.ingest', 'rag.chunk', "
        "'rag.index', 'pymilvus') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, timeout=120
    )
    assert out.stdout.strip() == "3 []"


def test_cli_text_output_names_each_hit_with_its_whole_url(real_index):
    res = run_rag("search", "what is p-hacking", "--index", str(real_index), "--k", "2")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "what is p-hacking  [hybrid]"
    # into a pipe: rank, score, article and author on one line; heading, URL, text indented
    firsts = [line for line in lines if line[:2].strip().isdigit()]
    assert [line.split()[0] for line in firsts] == ["1", "2"]
    assert "The Statistical Significance Scam, by Cai Parry-Jones" in firsts[0]
    urls = [line.strip() for line in lines if line.strip().startswith("https://")]
    assert len(urls) == 2 and all(" " not in u and u.startswith("https://medium.com/") for u in urls)
    assert "\x1b[" not in res.stdout  # no colour codes into a pipe
