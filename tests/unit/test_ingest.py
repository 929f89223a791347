from pathlib import Path

from rag.ingest import canonical_url, dedupe, ingest, parse_author, parse_bundle
from tests.conftest import SEED

EXPECTED = {
    "https://medium.com/towards-data-science/the-statistical-significance-scam-db904be36714": "The Statistical Significance Scam",
    "https://medium.com/towards-data-science/normalized-discounted-cumulative-gain-ndcg-the-ultimate-ranking-metric-437b03529f75": "Normalized Discounted Cumulative Gain (NDCG) — The Ultimate Ranking Metric",
    "https://medium.com/towards-data-science/to-index-or-not-to-index-8be32ad45cae": "To Index or Not to Index",
    "https://medium.com/stackademic/is-python-still-the-king-of-data-science-476f1e3191b3": "Python is No More The King of Data Science",
    "https://medium.com/stackademic/20-python-scripts-that-will-give-you-superpowers-4c6f4b15fe63": "20 Python Scripts To Automate Your Daily Tasks",
    "https://medium.com/python-in-plain-english/5-overrated-python-libraries-and-what-you-should-use-instead-106bd9ded180": "5 Overrated Python Libraries (And What You Should Use Instead)",
    "https://medium.com/towards-data-science/understanding-llms-from-scratch-using-middle-school-math-e602d27ec876": "LLMs from Scratch Using Middle School Math",
    "https://medium.com/towards-data-science/how-to-query-a-knowledge-graph-with-llms-using-grag-38bfac47a322": "How to Query a Knowledge Graph with LLMs using gRAG",
    "https://medium.com/the-data-entrepreneurs/i-built-an-ai-app-in-4-days-heres-how-i-did-it-2eb805783377": "I Built an AI App in 4 Days — here’s how I did it",
    "https://medium.com/towards-data-science/top-data-science-career-questions-answered-abd3e3c085cc": "Top Data Science Career Questions, Answered",
    "https://medium.com/towards-data-science/kickstart-your-data-science-journey-a-guide-for-aspiring-data-scientists-96e5072bd19a": "Kickstart Your Data Science Journey — A Guide for Aspiring Data Scientists",
}

BOILERPLATE = [
    "Sign up with Google",
    "Recommended from Medium",
    "Open in app",
    "miro.medium.com",
    "](http",
    "Create an account to read",
    "Already have an account",
    "Help\nStatus",
]

ARTICLE = """## Some Publication

Source: {url}
Date fetched: {fetched}

---

Title: {title}

URL Source: {url}

Published Time: 2024-11-01T10:00:00.000Z

Markdown Content:
{body}

## Visual Content Analysis

### Image Analysis
Title: {title}

Markdown Content:
{body}
"""


def article(
    url="https://medium.com/p/test-1",
    title="A Test Article",
    fetched="2024-11-10T00:00:00",
    body="Plain words about testing parsers. Another sentence follows here.",
):
    return ARTICLE.format(url=url, title=title, fetched=fetched, body=body)


def test_shipped_corpus_has_the_eleven_articles():
    result = ingest(SEED)
    assert {a.url: a.title for a in result.articles} == EXPECTED
    assert result.warnings == []


def test_shipped_corpus_text_has_no_boilerplate():
    for a in ingest(SEED).articles:
        for junk in BOILERPLATE:
            assert junk not in a.text, (a.title, junk)
        assert "![" not in a.text


AUTHORS = {
    "The Statistical Significance Scam": "Cai Parry-Jones",  # avatar link only (alt text)
    "Normalized Discounted Cumulative Gain (NDCG) — The Ultimate Ranking Metric": "Saankhya Mondal",
    "To Index or Not to Index": "Christopher Karg",
    "Python is No More The King of Data Science": "Abdur Rahman",
    # A member-only stub whose page has no byline; the recommendations below name other people.
    "20 Python Scripts To Automate Your Daily Tasks": None,
    "5 Overrated Python Libraries (And What You Should Use Instead)": "Abdur Rahman",  # Follow button
    "LLMs from Scratch Using Middle School Math": "Rohit Patel",  # handle.medium.com profile
    "How to Query a Knowledge Graph with LLMs using gRAG": "Cristian Leo",
    "I Built an AI App in 4 Days — here’s how I did it": "Shaw Talebi",
    "Top Data Science Career Questions, Answered": "Haden Pelletier",
    "Kickstart Your Data Science Journey — A Guide for Aspiring Data Scientists": "Saankhya Mondal",
}


def test_author_of_each_shipped_article_comes_from_its_byline():
    assert {a.title: a.author for a in ingest(SEED).articles} == AUTHORS


def test_published_day_comes_from_the_header_or_else_the_byline():
    days = {a.title: (a.published or "")[:10] or None for a in ingest(SEED).articles}
    assert (
        days["5 Overrated Python Libraries (And What You Should Use Instead)"] == "2024-11-03"
    )  # "Nov 3, 2024"
    # "17 hours ago", counted back from the fetch time 2024-11-10T01:52
    assert days["Top Data Science Career Questions, Answered"] == "2024-11-09"
    assert days["LLMs from Scratch Using Middle School Math"] is None  # the page gives no date
    assert days["The Statistical Significance Scam"] == "2024-11-09"  # the header's Published Time


def test_author_falls_back_to_follow_button_then_page_title_then_none():
    follow = (
        "[Follow](https://medium.com/m/signin?actionUrl=x&user=Jane+Q.+Doe&userId=1"
        "&source=post_page-1--byline--abc---post_header----)"
    )
    assert parse_author({}, [follow]) == "Jane Q. Doe"
    assert parse_author({"Title": "A Thing | by Li Wei | Oct, 2024 | Pub"}, []) == "Li Wei"
    assert parse_author({}, ["A Thing | by Li Wei | Medium", "text"]) == "Li Wei"
    # the publication's byline link and recommendation links are not the author
    pub = "[Towards Data Science](https://towardsdatascience.com/?source=post_page---byline--abc----)"
    rec = "[Someone Else](https://medium.com/@else?source=author_recirc-----abc----0----)"
    assert parse_author({"Title": "Plain title"}, [pub, rec, "Words."]) is None


def test_an_article_without_byline_parses_with_author_none(tmp_path: Path):
    f = tmp_path / "b.md"
    f.write_text(article(body="Plain words about testing parsers."))
    (a,), warnings = parse_bundle(f)
    assert a.author is None and warnings == []
    byline = "[Ann Lee](https://medium.com/@annlee?source=post_page---byline--1----)\n\n"
    f.write_text(article(body=byline + "Plain words about testing parsers."))
    (b,), _ = parse_bundle(f)
    assert b.author == "Ann Lee" and b.text == a.text  # the byline is metadata, not text
    assert b.content_hash != a.content_hash  # so a changed author re-indexes the article


def test_member_only_stubs_are_flagged():
    flags = {a.title: a.member_only for a in ingest(SEED).articles}
    assert flags["The Statistical Significance Scam"] is False
    assert flags["LLMs from Scratch Using Middle School Math"] is False
    assert sum(flags.values()) == 9


def test_links_become_anchor_text_and_headings_are_kept():
    stats = next(a for a in ingest(SEED).articles if "Significance" in a.title)
    assert "neutrinos could travel faster than the speed of light." in stats.text
    assert "## Flaw 1: It’s made up" in stats.text
    assert "> “Bacon, ham and sausages rank alongside cigarettes" in stats.text


def test_canonical_url_normalises_scheme_host_slash_and_tracking():
    assert (
        canonical_url("HTTP://Medium.com/a/b/?utm_source=x&source=rss----&id=3#frag")
        == "https://medium.com/a/b?id=3"
    )
    assert canonical_url("https://medium.com/a/b/") == canonical_url("https://MEDIUM.com/a/b")


def test_rescrape_keeps_latest_fetch(tmp_path: Path):
    old = article(body="Old text of the article. It says one thing.", fetched="2024-11-01T00:00:00")
    new = article(
        url="https://Medium.com/p/test-1/?utm_source=feed",
        body="New text of the article. It says another thing.",
        fetched="2024-11-09T00:00:00",
    )
    (tmp_path / "a.md").write_text(new)
    (tmp_path / "b.md").write_text(old)
    arts = ingest(tmp_path).articles
    assert len(arts) == 1
    assert "New text" in arts[0].text


def test_identical_content_under_two_urls_is_indexed_once_with_alias(tmp_path: Path):
    (tmp_path / "a.md").write_text(article() + article(url="https://medium.com/p/mirror"))
    arts = ingest(tmp_path).articles
    assert len(arts) == 1
    assert arts[0].aliases == ("https://medium.com/p/mirror",)


def test_not_a_bundle_is_skipped_with_warning(tmp_path: Path):
    f = tmp_path / "notes.md"
    f.write_text("# My notes\n\nNothing to see here.\n")
    arts, warns = parse_bundle(f)
    assert arts == [] and len(warns) == 1
    assert str(warns[0]).startswith(f"{f}:1: not a scrape bundle")


def test_article_without_source_url_is_skipped(tmp_path: Path):
    bad = (
        article()
        .replace("Source: https://medium.com/p/test-1\n", "")
        .replace("URL Source: https://medium.com/p/test-1\n", "")
    )
    f = tmp_path / "b.md"
    f.write_text(bad + article(url="https://medium.com/p/good", body="Good article body text here."))
    arts, warns = parse_bundle(f)
    assert [a.url for a in arts] == ["https://medium.com/p/good"]
    assert len(warns) == 1 and "no Source URL" in warns[0].message and warns[0].line == 1


def test_non_utf8_bytes_are_read_as_cp1252_with_warning_naming_the_line(tmp_path: Path):
    f = tmp_path / "c.md"
    data = article(body="Caf\u00e9 line one.\nBroken XBYTE here and more words.").encode()
    f.write_bytes(data.replace(b"XBYTE", b"\xff\xfe"))
    arts, warns = parse_bundle(f)
    assert (
        len(arts) == 1
        and "Caf\u00e9 line one." in arts[0].text
        and "Broken \u00ff\u00fe here" in arts[0].text
    )
    assert warns[0].message == "not UTF-8: read as Windows-1252"
    assert warns[0].line == data.decode().splitlines().index("Broken XBYTE here and more words.") + 1


def test_empty_and_binary_files_are_skipped(tmp_path: Path):
    (tmp_path / "empty.md").write_text("")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "good.md").write_text(article())
    result = ingest(tmp_path)
    assert [a.title for a in result.articles] == ["A Test Article"]
    msgs = sorted(str(w) for w in result.warnings)
    assert msgs == [
        f"{tmp_path / 'blob.bin'}:1: binary file, skipped",
        f"{tmp_path / 'empty.md'}:1: empty file, skipped",
    ]


def test_bundle_cut_off_mid_article_keeps_the_complete_ones(tmp_path: Path):
    full = article(url="https://medium.com/p/one")
    cut = article(url="https://medium.com/p/two", body="This article was cut off mid")
    cut = cut[: cut.index("## Visual Content Analysis")]
    f = tmp_path / "d.md"
    f.write_text(full + cut)
    arts, warns = parse_bundle(f)
    assert [a.url for a in arts] == ["https://medium.com/p/one"]
    assert len(warns) == 1 and "cut off" in warns[0].message
    assert warns[0].line == full.count("\n") + 1


def test_dedupe_is_stable_for_the_shipped_corpus():
    arts = ingest(SEED).articles
    assert dedupe(arts) == arts


def test_a_source_url_urllib_cannot_read_is_a_warning_not_a_crash():
    # Found by the fuzzed parser test: a '[' in the host makes urllib raise "Invalid IPv6 URL".
    data = (Path(__file__).parents[1] / "data" / "one_article.md").read_bytes()
    data = data.replace(
        b"https://medium.com/bench-weekly/one-article-1", b"https://me[dium.com/one-article-1"
    )
    articles, warnings = parse_bundle(Path("bad.md"), data)
    assert articles == []
    assert [(w.path, w.line) for w in warnings][:1] == [("bad.md", 3)]
    assert "Source URL cannot be read" in str(warnings[0])
