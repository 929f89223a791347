"""Answers with citations that are checked, not trusted.

The shipped LLM is tiny: it ignores sources, invents facts and answers what the sources do not
cover. So every guarantee comes from the pipeline, one part a module:

    types.py       Answer, Citation, Source: what the parts pass and what `ask` returns
    sources.py     retrieved chunks as numbered, embedded sentences; instruction-like text withheld
    facts.py       the names and numbers a question or sentence needs a source to mention
    decision.py    the evidence (signals) and the one answer decision, used by `ask` and evaluation
    extractive.py  the one to three sentences that answer, each with the context it needs
    prompt.py      what the LLM is shown: only the passages the extractive answer would quote
    verify.py      each model sentence scored against the source it cites; the unsupported go
    collection.py  questions about the collection (who wrote what, when) answered from metadata;
                   collection_query.py recognises them
    pipeline.py    `Answerer.ask`: the parts composed, and the answer rendered with citations

The model itself (finding, loading, streaming) is rag/llm.py.
"""

from rag.answer.decision import Decision, decide
from rag.answer.extractive import best_first_unique, passage, question_kind
from rag.answer.facts import facts, mentions, missing_facts
from rag.answer.pipeline import Answerer, render
from rag.answer.prompt import SYSTEM_PROMPT
from rag.answer.sources import is_instruction
from rag.answer.types import ABSTAIN_MESSAGE, Answer, Citation, Source, StreamFn
from rag.answer.verify import flips, support
from rag.llm import generate, load_llm, model_file

__all__ = [
    "ABSTAIN_MESSAGE",
    "SYSTEM_PROMPT",
    "Answer",
    "Answerer",
    "Citation",
    "Decision",
    "Source",
    "StreamFn",
    "best_first_unique",
    "decide",
    "facts",
    "flips",
    "generate",
    "is_instruction",
    "load_llm",
    "mentions",
    "missing_facts",
    "model_file",
    "passage",
    "question_kind",
    "render",
    "support",
]
