"""What `rag serve` accepts and returns, as pydantic models: the OpenAPI description is made from
them, and the answer's model is checked against `rag ask --json`'s object in the tests.

Every text a request carries is bounded; no field names a file or a path.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_QUESTION = 2000  # characters, as `rag ask` allows (rag.answer.pipeline.MAX_QUESTION_CHARS)
MAX_FIELD = 300  # characters of a filter value or a URL
MAX_MESSAGES = 50  # messages of one chat completion


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FiltersIn(_In):
    """Restrict retrieval to some articles (substrings, any case; dates as YYYY-MM-DD)."""

    url: str | None = Field(None, max_length=MAX_FIELD, description="URL contains this.")
    publication: str | None = Field(None, max_length=MAX_FIELD, description="Publication contains this.")
    author: str | None = Field(None, max_length=MAX_FIELD, description="Author's name contains this.")
    since: str | None = Field(None, max_length=32, description="Published on or after (YYYY-MM-DD).")
    until: str | None = Field(None, max_length=32, description="Published on or before (YYYY-MM-DD).")


class AskIn(_In):
    """A question, as `rag ask` takes it."""

    question: str = Field(min_length=1, max_length=MAX_QUESTION, description="The question.")
    after: str | None = Field(
        None,
        max_length=MAX_QUESTION,
        description="The question asked before this one: a follow-up ('why is it a scam?') is read "
        "with its topic, as `rag ask --after` and `rag chat` do.",
    )
    after_query: str | None = Field(
        None,
        max_length=2 * MAX_QUESTION,
        description="What the earlier question was answered as (its answer's `query`, when it was a "
        "follow-up itself), so that a chain of follow-ups keeps the first topic.",
    )
    cited: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="URLs the previous answer cited: 'who wrote it?' is answered about them.",
    )
    mode: Literal["extractive", "llm"] | None = Field(
        None, description="extractive (quotes) or llm (the model writes, verified); default: config."
    )
    k: int | None = Field(None, ge=1, le=20, description="Sources given to the answerer.")
    filters: FiltersIn | None = None


class CitationOut(BaseModel):
    n: int
    url: str
    title: str
    chunk_id: str
    text: str = Field(description="The whole cited chunk: the passage around the quote.")


class SentenceOut(BaseModel):
    text: str
    cites: list[int] = Field(description="The citation numbers (`n`) this sentence rests on.")


class SourceOut(BaseModel):
    rank: int
    url: str
    title: str
    author: str | None
    published: str | None
    chunk_id: str


class AnswerOut(BaseModel):
    """`rag ask --json`'s object (`rag.answer.types.answer_json`), plus `sentences` and
    `sources`."""

    model_config = ConfigDict(extra="forbid")

    question: str
    answer: str
    outcome: Literal["answered", "unsure", "abstained"]
    abstained: bool
    confidence: float | None
    abstain_reason: str
    mode: str
    citations: list[CitationOut]
    timings: dict[str, float]
    follows: str | None = Field(None, description="The earlier question whose topic was added.")
    query: str | None = Field(None, description="What was retrieved and answered, for a follow-up.")
    sentences: list[SentenceOut] = Field(default_factory=list)
    sources: list[SourceOut] = Field(default_factory=list, description="The closest articles.")


class HitOut(BaseModel):
    rank: int
    score: float
    chunk_id: str
    url: str
    title: str
    author: str | None
    heading: str | None
    published: str | None
    text: str


class SearchOut(BaseModel):
    """`rag search --json`'s object."""

    query: str
    retriever: str
    results: list[HitOut]


class ArticleOut(BaseModel):
    """`rag sources --json`'s object, one an article."""

    article_id: str
    url: str
    title: str
    publication: str
    published: str | None
    fetched: str | None
    member_only: bool
    chunks: int
    content_hash: str
    aliases: list[str]
    author: str | None


class ErrorOut(BaseModel):
    error: str = Field(description="One line: what was wrong, and what to do.")


# ------------------------------------------------------------------- OpenAI chat completions


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients send name, tool_calls ...; they are ignored

    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = Field(None, description="Text, or a list of text parts.")


class ChatIn(BaseModel):
    """The OpenAI chat-completions request; the last user message is the question and the user
    message before it, if any, the earlier question a follow-up leans on. Sampling options are
    accepted and ignored: rag's answers do not depend on them."""

    model_config = ConfigDict(extra="allow")

    model: str = Field("rag", max_length=100, description="rag, rag-extractive or rag-llm.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
