"""Article metadata and follow-ups as a user meets them: `rag sources`, `rag ask`, `rag chat`,
on the real corpus with the real models."""

from __future__ import annotations

import json

from tests.conftest import run_rag
from tests.unit.test_ingest import AUTHORS, EXPECTED

STATS = "https://medium.com/towards-data-science/the-statistical-significance-scam-db904be36714"
ABSTAIN = "The indexed articles do not answer this."


def test_sources_fit_an_80_column_terminal_without_cutting_urls(real_index, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    res = run_rag("sources", "--index", str(real_index))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) == 1 + len(EXPECTED) + 1  # header, one line per article, the hint
    assert "://" not in res.stdout  # no URL column at all, rather than cut URLs
    assert "…" in res.stdout  # long titles end in an ellipsis
    for author in {a for a in AUTHORS.values() if a}:
        assert author in res.stdout
    assert "2024-11-09" in res.stdout and "--json" in lines[-1]


def test_sources_on_a_wide_terminal_show_whole_urls(real_index, monkeypatch):
    monkeypatch.setenv("COLUMNS", "260")
    res = run_rag("sources", "--index", str(real_index))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 260
    assert len([line for line in lines if "https://" in line]) == len(EXPECTED)
    for url, title in EXPECTED.items():  # the whole URL on its article's line
        assert any(f" {url} " in f"{line} " and title[:40] in line for line in lines), title


def test_sources_json_has_full_values_and_author_filters(real_index):
    res = run_rag("sources", "--json", "--index", str(real_index))
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert {r["url"]: r["title"] for r in rows} == EXPECTED
    assert {r["title"]: r["author"] for r in rows} == AUTHORS
    res = run_rag("sources", "--json", "--author", "abdur", "--index", str(real_index))
    assert {json.loads(line)["author"] for line in res.stdout.splitlines()} == {"Abdur Rahman"}
    res = run_rag("sources", "--json", "--author", "no such person", "--index", str(real_index))
    assert res.returncode == 0 and res.stdout == ""


def test_search_author_flag_and_json_field(real_index):
    res = run_rag("search", "data", "--author", "karg", "--json", "--index", str(real_index))
    assert res.returncode == 0, res.stderr
    results = json.loads(res.stdout)["results"]
    assert results and {r["author"] for r in results} == {"Christopher Karg"}


def test_a_question_naming_the_author_is_answered_and_the_sources_name_them(real_index):
    res = run_rag("ask", "According to Cai Parry-Jones, what is p-hacking?", "--index", str(real_index))
    assert res.returncode == 0, res.stderr
    assert ABSTAIN not in res.stdout
    assert f"The Statistical Significance Scam, by Cai Parry-Jones — {STATS}" in res.stdout


def test_chat_answers_a_follow_up_with_the_previous_questions_topic(real_index):
    res = run_rag(
        "chat",
        "--extractive",
        "--index",
        str(real_index),
        stdin="What is statistical significance?\nwhy is it a scam?\n:quit\n",
    )
    assert res.returncode == 0, res.stderr
    first, second = res.stdout.split("(following up on: What is statistical significance?)")
    assert "The Statistical Significance Scam" in first
    # Read as "why is statistical significance a scam?": answered from that article, cited.
    assert ABSTAIN not in second and "[1]" in second, second
    first_url = second[second.index("https://medium.com/") :].split()[0]
    assert first_url == STATS, second


def test_ask_after_reads_a_follow_up_with_the_earlier_question(real_index):
    args = ("ask", "why is it a scam?", "--json", "--index", str(real_index))
    alone = json.loads(run_rag(*args).stdout)
    assert "follows" not in alone
    res = run_rag(*args, "--after", "What is statistical significance?")
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout)
    assert row["question"] == "why is it a scam?" and row["follows"] == "What is statistical significance?"
    assert row["query"] == "why is statistical significance a scam? what is statistical significance?"
    assert not row["abstained"] and row["citations"][0]["url"] == STATS
    hits = run_rag("search", row["query"], "--json", "--k", "1", "--index", str(real_index)).stdout
    assert json.loads(hits.splitlines()[0])["results"][0]["url"] == STATS
    standalone = json.loads(
        run_rag("ask", "What is p-hacking?", "--json", "--after", "why?", *args[3:]).stdout
    )
    assert "follows" not in standalone and standalone["question"] == "What is p-hacking?"
