"""rag serve's parts that need no index: question cleaning, the loopback rule, the OpenAI
request's questions, the event format, and the CLI's refusal to listen beyond loopback without a
token."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="rag serve needs the serve extra (pip install -e '.[serve]')")

from rag.cli.serve import is_loopback  # noqa: E402
from rag.errors import RagError  # noqa: E402
from rag.serve import chat  # noqa: E402
from rag.serve.app import sse  # noqa: E402
from rag.serve.models import ChatIn  # noqa: E402
from rag.serve.service import clean_question  # noqa: E402


def test_clean_question_drops_control_characters_and_folds_whitespace():
    # the terminal's escape sequence goes whole, as `rag ask` drops it (rag.textio)
    assert clean_question("  what\x00 is\tp-hacking?\x1b[31m \n") == "what is p-hacking?"
    assert clean_question("\x00\x07") == ""
    assert clean_question("naïve Bayes — why?") == "naïve Bayes — why?"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.org", False),
        ("::", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_serving_beyond_loopback_without_a_token_is_refused(monkeypatch):
    from typer.testing import CliRunner

    from rag.cli import app

    monkeypatch.delenv("RAG_SERVE_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert isinstance(result.exception, RagError) and "--token" in str(result.exception)


def test_the_last_user_message_is_the_question_and_the_one_before_it_the_topic():
    req = ChatIn.model_validate(
        {
            "model": "rag",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "What is NDCG?"},
                {"role": "assistant", "content": "..."},
                {"role": "user", "content": [{"type": "text", "text": "and MAP?"}, {"type": "image_url"}]},
            ],
        }
    )
    assert chat.questions(req) == ("and MAP?", "What is NDCG?")
    with pytest.raises(RagError):
        chat.questions(ChatIn.model_validate({"messages": [{"role": "system", "content": "x"}]}))
    with pytest.raises(RagError):
        chat.mode_of("gpt-4")


def test_an_abstention_reads_as_the_refusal_and_its_reason():
    answer = {
        "outcome": "abstained",
        "abstained": True,
        "answer": "The indexed articles do not answer this.",
        "abstain_reason": "far from every source",
        "citations": [],
    }
    assert chat.content(answer) == "The indexed articles do not answer this.\n\n(why: far from every source)"


def test_an_event_is_one_data_line_of_json_whatever_the_text_holds():
    raw = sse("sentence", {"text": "two\nlines </script>"}).decode()
    name, data, blank = raw.split("\n", 2)
    assert name == "event: sentence" and blank == "\n"
    assert json.loads(data.removeprefix("data: ")) == {"text": "two\nlines </script>"}
