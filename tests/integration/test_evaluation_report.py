"""The HTML report: every section, nothing fetched from the network, valid HTML, and a real
browser draws it without console errors."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.evaluation import compare, report
from tests.eval_fixtures import QUESTIONS, fake_record

pytest.importorskip("matplotlib", reason="the report needs matplotlib: pip install -e '.[report]'")

PAIRS = {
    "q1": (0.9, True),
    "q2": (0.6, True),
    "q3": (0.5, True),
    "q4": (0.3, True),
    "q5": (None, True),
    "q6": (0.4, False),
}
ARTICLE_URLS = {e.url for q in QUESTIONS for e in q.relevant}


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    record = fake_record("fake")
    cmp = compare.compare_runs(record, [fake_record("again")])
    path = tmp_path_factory.mktemp("report") / "report.html"
    sizes = report.write_html(
        record, path, abstention_pairs=PAIRS, threshold=0.35, abstention_source="test", comparison=cmp
    )
    assert set(sizes) == set(report.SECTIONS)
    return path


def test_report_has_every_section_with_its_figure(page):
    text = page.read_text(encoding="utf-8")
    for sid, title in report.SECTIONS.items():
        assert f'<section id="{sid}"><h2>{title}</h2>' in text
    for fig in ("recall", "types", "scatter", "abstention"):
        assert re.search(rf'<figure id="fig-{fig}"><svg[^>]*>.*?</svg>', text, re.S), fig
    assert "configured threshold 0.35" in text  # the threshold is marked on the curve
    assert "q3" in text and "earned at rank" in text  # worst questions say where the evidence was


def test_report_refers_to_no_external_resource(page):
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\((?!#)|src=", text, re.I)
    rest = text
    for url in sorted(ARTICLE_URLS, key=len, reverse=True):
        rest = rest.replace(url, "")
    assert "http" not in rest.lower() and "//" not in re.sub(r"<!--.*?-->", "", rest)
    hrefs = re.findall(r'href="([^"]*)"', text)
    assert hrefs and all(h.startswith("#") for h in hrefs)  # only links within the page and the SVG's


def test_report_is_valid_html(page):
    html5lib = pytest.importorskip("html5lib", reason="html5lib is the strict parser used here")
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(page.read_text(encoding="utf-8"))  # raises on the first parse error
    assert parser.errors == []


def test_query_path_and_plain_eval_modules_never_import_matplotlib():
    code = (
        "import sys; import rag.cli, rag.retrieve, rag.answer, rag.evaluation.questions, "
        "rag.evaluation.metrics, rag.evaluation.dev, rag.evaluation.beir, rag.evaluation.answers, "
        "rag.evaluation.baselines, rag.evaluation.workflow, rag.evaluation.tables, rag.evaluation.runs, "
        "rag.evaluation.compare, rag.evaluation.stats, rag.evaluation.abstention, rag.evaluation.report; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: `make report-check` installs it")
def test_chromium_renders_the_report_without_console_errors(page, tmp_path):
    png = tmp_path / "report.png"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={png}",
            "--window-size=1200,4000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.stat().st_size > 50_000  # a page with figures, not a blank one
    # Chromium logs every console message as "...:CONSOLE:<line>] ..."; the page has no script,
    # so any message at all (an uncaught error, a resource that failed to load) is a fault.
    assert not re.search(r"Uncaught|:CONSOLE[:(]", proc.stderr), proc.stderr[-2000:]
    if os.environ.get("RAG_REPORT_PNG"):  # keep the picture to look at
        shutil.copy(png, os.environ["RAG_REPORT_PNG"])
