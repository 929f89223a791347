"""`ask`: retrieve, decide, answer (extractively or with the LLM), verify, render.

The parts each do one job (rag/answer/): sources reads the retrieved chunks, decide weighs the
evidence, extractive picks passages, prompt and rag.llm draft an answer, verify checks it. This
module composes them and renders the result as an `Answer` with renumbered citations.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rag import llm as local_llm
from rag.abstain import AbstentionModel
from rag.answer import collection, decision, extractive, prompt, reference, structure, verify
from rag.answer.sources import read_sources, sources_from_texts
from rag.answer.types import ABSTAIN_MESSAGE, Answer, Citation, Sentence, Source, StreamFn
from rag.config import AnswerSettings, LLMSettings
from rag.errors import RagError
from rag.records import ArticleInfo
from rag.retrieve import Hit, Retriever
from rag.stores.base import Filters

MAX_QUESTION_CHARS = 2000


class Answerer:
    """Retrieval, the answer decision, generation and verification, with models loaded once."""

    def __init__(
        self,
        retriever: Retriever,
        settings: AnswerSettings,
        llm_settings: LLMSettings,
        abstention: Path | AbstentionModel | None = None,
        prior: float = 0.5,
    ) -> None:
        self.retriever = retriever
        self.settings = settings
        self.llm_settings = llm_settings
        # The share of answerable questions among those asked (rag.config.DecisionCosts).
        self.prior = prior
        self._catalogue: tuple[Any, list[tuple[ArticleInfo, str]]] = (None, [])
        # The fitted abstention model; without one, the similarity threshold decides.
        if isinstance(abstention, Path):
            abstention = AbstentionModel.load(abstention) if abstention.exists() else None
        self.abstention: AbstentionModel | None = abstention
        self.model = local_llm.LocalLLM(llm_settings, prompt.SYSTEM_PROMPT)
        if abstention is not None and "reader" in abstention.features and not settings.reader:
            raise RagError(
                "the fitted answer decision uses the reader's signal: set answer.reader = true "
                "(or refit it without the reader: python -m eval.fit_decision)"
            )

    # ------------------------------------------------------------------------- the parts

    @property
    def reader(self) -> Any:
        """The reader whose score the decision takes (the retriever's), None when answer.reader
        is off."""
        return self.retriever.reader if self.settings.reader else None

    def model_path(self) -> Path:
        return self.model.path()

    def preload(self) -> None:
        """Start loading the LLM in the background while retrieval runs."""
        self.model.preload()

    @property
    def llm(self) -> Any:
        return self.model.get()

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.retriever.embedder.embed(texts)

    def sources(self, hits: list[Hit]) -> list[Source]:
        return read_sources(hits, self._embed)

    def sources_from_texts(self, texts: list[str]) -> list[Source]:
        return sources_from_texts(texts, self._embed)

    def signals(
        self,
        question: str,
        qvec: np.ndarray,
        hits: list[Hit],
        sources: list[Source],
        filters: Filters | None = None,
    ) -> tuple[dict[str, float], list[str]]:
        signals, missing = decision.signals(self.retriever.store, question, qvec, hits, sources, filters)
        if self.settings.reader and hits:
            passages = [h.chunk.text for h in hits[: self.settings.reader_passages]]
            signals["reader"] = max(r.score for r in self.retriever.reader.read(question, passages))
        return signals, missing

    def question_signals(self, question: str) -> tuple[dict[str, float], list[str]]:
        """The signals of a question as `ask` computes them (evaluation fits on these)."""
        qvec = self.retriever.embed_query(question)
        hits = self.retriever.search(question, k=self.settings.sources, query_vector=qvec)
        return self.signals(question, qvec, hits, self.sources(hits))

    def decide(self, signals: dict[str, float], missing: list[str]) -> decision.Decision:
        """The one answer decision: `ask` uses it, and evaluation scores it. Only names and
        numbers the whole collection never mentions veto an answer."""
        unknown = decision.unknown_facts(self.retriever.store, missing) if missing else []
        return decision.decide(
            signals, missing, self.abstention, self.settings.abstain_below, unknown, self.prior
        )

    def catalogue(self) -> list[tuple[ArticleInfo, str]]:
        """Every indexed article with its subtitle, read once per index generation."""
        store = self.retriever.store
        gen = (store.manifest() or {}).get("generation")
        if self._catalogue[0] != gen or gen is None:
            arts = store.articles()
            texts = [store.article_text(a.article_id) for a in arts]
            self._catalogue = (gen, [(a, reference.subtitle_of(t)) for a, t in zip(arts, texts, strict=True)])
        return self._catalogue[1]

    def select(
        self, question: str, qvec: np.ndarray, sources: list[Source], fill: bool = True
    ) -> list[Sentence]:
        return extractive.select(question, qvec, sources, self.settings, fill)

    def prompt(
        self, question: str, sources: list[Source], qvec: np.ndarray | None = None
    ) -> list[dict[str, str]]:
        if qvec is None:
            qvec = self.retriever.embed_query(question)
        return prompt.messages(question, qvec, sources, self.settings)

    def verify(self, draft: str, sources: list[Source]) -> tuple[list[Sentence], list[str]]:
        return verify.verify(draft, sources, self._embed, self.settings.min_support, self._backs())

    def _backs(self) -> Callable[[str, Source], bool] | None:
        """The reader's check of a drafted sentence against its source, when `answer.reader_check`
        is on: the sentence stands where the question would, and the source must score at least
        the setting."""
        cut = self.settings.reader_check
        if not cut:
            return None
        reader = self.retriever.reader
        return lambda text, source: reader.read(text, [source.hit.chunk.text])[0].score >= cut

    # ------------------------------------------------------------------------- the pipeline

    def ask(
        self,
        question: str,
        k: int | None = None,
        mode: str | None = None,
        filters: Filters | None = None,
        stream: StreamFn | None = None,
        typed: str | None = None,
        cited: Sequence[str] = (),
    ) -> Answer:
        """Answer `question` (as retrieval should read it: a follow-up carries its earlier topic).
        `typed` is the question as the user typed it and `cited` the URLs the previous answer of a
        conversation cited: "who wrote it?" is answered about those articles."""
        question = " ".join(question.split())
        if not question:
            raise RagError("empty question: ask something")
        if len(question) > MAX_QUESTION_CHARS:
            raise RagError(f"question too long ({len(question)} characters; at most {MAX_QUESTION_CHARS})")
        mode = mode or self.settings.mode
        t0 = time.perf_counter()
        # Who wrote what, and when: answered from the stored metadata, cited like any answer.
        asked = " ".join((typed or question).split())
        query = None if filters else collection.collection_question(asked)
        if query is not None:
            articles = self.retriever.store.articles()
            about = collection.answer_collection(query, asked, articles, self.retriever, cited)
            if about is not None:
                about.mode = "metadata"
                about.timings = {"total": time.perf_counter() - t0}
                return about
        # "the SQL-indexing article", "Rohit Patel's article": retrieval keeps to that article (the
        # question keeps its words: they say what it is about); one that asks only what the
        # article is about is answered with its title and subtitle.
        described = None if filters else reference.described_article(question, self.catalogue)
        if described is not None:
            filters = Filters(url=described.article.url)
            if reference.asks_overview(described.question):
                ans = self._overview(question, described)
                ans.timings = {"total": time.perf_counter() - t0}
                return ans
        words = structure_query(question)
        qvec = self.retriever.embed_query(question)
        hits = self.retriever.search(words, k=k or self.settings.sources, filters=filters, query_vector=qvec)
        timings = {"retrieve": time.perf_counter() - t0}
        hits = self._with_place(question, hits, filters)
        sources = self.sources(hits)
        signals, missing = self.signals(question, qvec, hits, sources, filters)
        verdict = self.decide(signals, missing)
        if verdict.outcome == "unsure" and self._defines_subject(question, hits):
            # "What is NDCG?" of an article titled with it: its definition is the answer.
            verdict = replace(verdict, outcome="answered", reason="")
        if verdict.outcome == "abstained" or not sources:
            ans = Answer(question, ABSTAIN_MESSAGE, True, mode, [], closest=hits, outcome="abstained")
            ans.abstain_reason = verdict.reason or "nothing was retrieved"
        elif verdict.outcome == "unsure":
            # The closest passages, quoted and cited, never drafted by the model: they are shown
            # as what the sources say nearest to the question, not as its answer.
            ans = self._extractive(question, qvec, sources)
            ans.outcome, ans.abstain_reason = "unsure", verdict.reason
        elif mode == "extractive":
            ans = self._extractive(question, qvec, sources)
        else:
            ans = self._generate(question, qvec, sources, stream, timings)
        ans.evidence_score = signals["sentence_cos"]
        ans.confidence, ans.signals, ans.closest = verdict.confidence, {**signals, **ans.signals}, hits
        timings["total"] = time.perf_counter() - t0
        ans.timings = {**timings, **ans.timings}
        return ans

    @staticmethod
    def _defines_subject(question: str, hits: list[Hit]) -> bool:
        """A definition question whose subject is the title of the article retrieved first."""
        return (
            bool(hits)
            and extractive.question_kind(question) == "define"
            and reference.names_title(question, hits[0].chunk.title)
        )

    def _with_place(self, question: str, hits: list[Hit], filters: Filters | None) -> list[Hit]:
        """For a question about a place in a sequence ("the third script"), the hits with the
        chunks holding the headings and list items of that number in the first hit's article
        put first: retrieval by meaning rarely finds "3." for "third"."""
        place = structure.asked_position(question)
        if place is None or not hits:
            return hits
        top = hits[0].chunk
        text = self.retriever.store.article_text(top.article_id) or ""
        lines = structure.numbered(text, place)
        keep = replace(filters or Filters(), url=top.url)
        found: list[Hit] = []
        for line in lines[:2]:
            for h in self.retriever.search(structure.plain(line), k=3, filters=keep, retriever="bm25"):
                if line in h.chunk.text and all(h.chunk.chunk_id != f.chunk.chunk_id for f in found):
                    found.append(h)
                    break
        ids = {h.chunk.chunk_id for h in found}
        return [*found, *(h for h in hits if h.chunk.chunk_id not in ids)][: max(len(hits), len(found))]

    def _with_line(
        self,
        llm: Any,
        question: str,
        qvec: np.ndarray,
        sources: list[Source],
        stream: StreamFn | None,
        timings: dict[str, float],
    ) -> Answer:
        """The model (with our adapter) writes one short line from the evidence the extractive
        answer quotes; a line that cites a source and whose every word stands in it is printed
        above that evidence, else the evidence alone is (rag/answer/line.py checks it)."""
        from rag.answer import line

        selected = self.select(question, qvec, sources)
        ans = render(question, "extractive", selected, sources)
        if not asks_for_a_line(question):
            ans.evidence = ans.answer
            return ans
        t1 = time.perf_counter()
        # The decision, not the model, says whether to answer: the adapter's refusal tells
        # answerable from impossible questions no better than chance (AUC 0.50, models/llm/README).
        written = line.write_line(llm, question, line.evidence_from(selected, sources), allow_decline=False)
        timings["first_token"] = timings["generate"] = time.perf_counter() - t1
        ans.draft = written.raw.strip()
        # The model's own "cannot answer" (the refusal's first-token probability), recorded as a
        # signal for `rag eval`; the decision does not use it (it adds nothing: models/llm/README).
        ans.signals["line_decline"] = written.p_decline
        ans.signals["line_confidence"] = written.confidence
        if written.kept and written.confidence >= self.llm_settings.min_line_confidence:
            ans = with_line(ans, written, sources)
        else:
            ans.evidence = ans.answer
            ans.dropped = [written.raw.strip()] if written.raw.strip() else []
        if stream:
            for text, cites, _ in ans.sentences:
                stream(text.rstrip() + " " + "".join(f"[{n}]" for n in cites))
        return ans

    def _overview(self, question: str, described: reference.Described) -> Answer:
        """What an article is about, for a question that asks only that ("What does Rohit
        Patel's article explain?"): its title and subtitle, cited."""
        article = described.article
        filters = Filters(url=article.url)
        hits = self.retriever.search(described.subtitle or article.title, k=1, filters=filters)
        text = f"“{article.title}”" + (f": {described.subtitle}" if described.subtitle else "")
        chunk = hits[0].chunk if hits else None
        citation = Citation(
            n=1,
            url=article.url,
            title=article.title,
            chunk_id=chunk.chunk_id if chunk else "",
            text=chunk.text if chunk else text,
            published=article.published,
        )
        ans = Answer(question, f"{text} [1]", False, "metadata", [citation], sentences=[(text, [1], 1.0)])
        ans.closest = hits
        return ans

    def _extractive(self, question: str, qvec: np.ndarray, sources: list[Source]) -> Answer:
        """The selected passages, quoted and cited (see rag.answer.extractive)."""
        return render(question, "extractive", self.select(question, qvec, sources), sources)

    def _generate(
        self,
        question: str,
        qvec: np.ndarray,
        sources: list[Source],
        stream: StreamFn | None,
        timings: dict[str, float],
    ) -> Answer:
        """The model's draft, verified sentence by sentence as it is written: `stream` receives
        each sentence that stands (citations numbered as in the final answer), never one that is
        dropped. The extractive answer when no sentence of the draft stands."""
        t0 = time.perf_counter()
        llm = self.llm
        timings["llm_load"] = time.perf_counter() - t0
        if self.model.adapter is not None:
            return self._with_line(llm, question, qvec, sources, stream, timings)
        shown = prompt.shown(sources, self.settings)  # verification accepts only what the model was shown
        t1 = time.perf_counter()
        checker = verify.Verifier(shown, self._embed, self.settings.min_support, self._backs())
        numbers: dict[int, int] = {}
        draft, done, first = "", 0, None

        def release(final: bool) -> None:
            # Every sentence but the last is final: citations after a full stop join the
            # sentence before them, so the last one may still grow.
            nonlocal done
            sents = verify.draft_sentences(draft)
            upto = len(sents) if final else len(sents) - 1
            for sent in sents[done:upto]:
                kept = checker.check(sent)
                if kept is not None and stream:
                    stream(rendered_sentence(kept, numbers))
            done = max(done, upto)

        for token in local_llm.generate(llm, self.prompt(question, shown, qvec), self.llm_settings):
            if first is None:
                first = time.perf_counter() - t1
            draft += token
            release(final=False)
        release(final=True)
        timings["first_token"] = first if first is not None else 0.0
        timings["generate"] = time.perf_counter() - t1
        kept, dropped = checker.kept, checker.dropped
        ans = render(question, "llm", kept, shown) if kept else self._extractive(question, qvec, sources)
        ans.dropped, ans.draft = dropped, draft.strip()
        return ans


_EXPLAIN_Q_RE = re.compile(r"^\s*(?:how(?! (?:many|much|long|old|far|big|often))|why)\b", re.IGNORECASE)


def asks_for_a_line(question: str) -> bool:
    """Whether a short line can answer the question: a fact (what, which, who, when, where, how
    many), not a definition ("What is p-hacking?") or an explanation ("How does ... work?",
    "Why ..."), which the quoted evidence answers better than a few words (a line of "hack." for
    "What is p-hacking?" passes the word check and says nothing)."""
    return extractive.question_kind(question) != "define" and not _EXPLAIN_Q_RE.search(question)


def with_line(ans: Answer, written: Any, sources: list[Source]) -> Answer:
    """The extractive answer `ans` with the model's checked line above its quoted evidence: the
    line cites its source in the answer's numbering (a source the evidence does not quote is
    never cited by it, since the line is written from the quoted evidence alone)."""
    by_n = {s.n: s for s in sources}
    chunk_id = by_n[written.cite].hit.chunk.chunk_id
    m = next(c.n for c in ans.citations if c.chunk_id == chunk_id)
    text = written.text.rstrip()
    ans.line, ans.evidence = text, ans.answer
    ans.answer = f"{text} [{m}] {ans.answer}"
    ans.sentences = [(text, [m], 1.0), *ans.sentences]
    ans.mode = "llm"
    return ans


def structure_query(question: str) -> str:
    """The question as lexical search should read it: a question about a place in a sequence
    ("the second flaw") also asks for the number that heading or item carries ("flaw 2")."""
    place = structure.asked_position(question)
    return f"{question} {place}" if place is not None and place > 0 else question


def rendered_sentence(sentence: Sentence, numbers: dict[int, int]) -> str:
    """A kept sentence as the answer shows it, its sources numbered in order of first use
    (`numbers` carries that order from one sentence to the next, as `render` numbers them)."""
    text, cites, _ = sentence
    for n in cites:
        numbers.setdefault(n, len(numbers) + 1)
    return text.rstrip() + " " + "".join(f"[{numbers[n]}]" for n in cites)


def render(question: str, mode: str, sentences: list[Sentence], sources: list[Source]) -> Answer:
    """Renumber citations 1..m in order of first use, and render the answer text."""
    by_n = {s.n: s for s in sources}
    order: dict[int, int] = {}
    for _, cites, _ in sentences:
        for n in cites:
            order.setdefault(n, len(order) + 1)
    rendered = []
    final: list[Sentence] = []
    for text, cites, sup in sentences:
        rendered.append(rendered_sentence((text, cites, sup), {**order}))
        final.append((text.rstrip(), [order[n] for n in cites], sup))
    citations = [
        Citation(
            n=m,
            url=by_n[n].hit.chunk.url,
            title=by_n[n].hit.chunk.title,
            chunk_id=by_n[n].hit.chunk.chunk_id,
            text=by_n[n].hit.chunk.text,
            published=by_n[n].hit.chunk.published,
        )
        for n, m in order.items()
    ]
    return Answer(question, " ".join(rendered), False, mode, citations, sentences=final)
