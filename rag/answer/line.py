"""The answer line: one short sentence the local LLM (with our LoRA adapter) writes above the
quoted evidence, with its citation, checked against the source it cites.

How the answer path calls it (LLM mode, after the extractive answer chose its evidence):

    from rag.answer import line as answer_line

    evidence = answer_line.evidence_from(extractive_sentences, sources)   # [(n, label, text)]
    result = answer_line.write_line(llm, question, evidence)              # a Line, never None
    if result.kept:
        print(result.text, "[%d]" % result.cite)   # above the quoted evidence; the --json answer too
    # result.declined: the model said the sources do not answer (a signal for the decision);
    # result.p_decline: its probability of starting the refusal line (for a continuous signal).
    # write_line(..., allow_decline=False): the model never starts the refusal line (p_decline
    # is still reported); use it when the decision alone should say whether to answer.
    # Not kept (declined, no citation, cited a source it was not shown, a word not in that
    # source): the quoted evidence alone is shown, as today.

`llm` is a `llama_cpp.Llama` loaded with the adapter: `rag.llm.load_llm(model_file(s), s,
lora_path=adapter_for(model_file(s)))` (None when the base file is not the one the adapter was
trained on: then the base model writes the line, or the caller skips the line). `extractive_sentences`
are the Sentence tuples (text, [n], support) the extractive answer selected, `sources` the numbered
sources they cite. The prompt here is the one the adapter was trained on (training/llm/data.py
builds its examples with `user_message` and `chat_prompt`), so change it only with a retrained adapter.

The check never trusts the model: every content word, name and number of the line must stand in
one source it was shown (Porter stems, so "located" stands for "location" and "Normans" for
"Norman"; numbers as written), and the line is printed citing that source: the one the model cited
when it holds the line, else the first that does (the small model often cites [1] for what [2]
says). A line must carry a citation, and must say more than the question's own words.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.text import content_words, stem

REFUSAL = "No answer."
SYSTEM = (
    "Answer the question in a few words from the numbered sources, then cite the source like [2]. "
    f"If the sources do not answer it, write: {REFUSAL}"
)
MAX_TOKENS = 24  # "France. [2]" is 6 tokens; a line that runs on is cut and fails the check
ADAPTER_DIR = Path(__file__).resolve().parents[2] / "models" / "llm"
ADAPTER_FILE = "adapter.gguf"

# (n, label, text): a source's number, its "Title > Heading" line as rag shows it, and the text
Evidence = tuple[int, str, str]

_CITE_RE = re.compile(r"\[(\d{1,2})\]")
_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Line:
    """What the model wrote and what the check made of it."""

    raw: str  # the model's text as written
    text: str  # the line without its citation ("France.")
    cite: int | None  # the source number it cites
    declined: bool  # the model wrote the refusal line
    p_decline: float  # probability of the refusal's first token at the first step
    kept: bool  # every word stands in one shown source (`cite`)
    # "" when kept; else why not ("declined", "no citation", "unshown source", "not in source: w")
    reason: str
    # the model's own confidence in its answer: the geometric mean of the probabilities of the
    # tokens before the citation (the first one renormalised when the refusal was not allowed)
    confidence: float = 0.0


def chat_prompt(system: str, user: str) -> str:
    """SmolLM2's chat template (ChatML), up to the assistant's turn."""
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )


def user_message(question: str, evidence: Sequence[Evidence]) -> str:
    """The sources, numbered, each as '[n] label' over its text, then the question."""
    blocks = [f"[{n}] {label}\n{text}" if label else f"[{n}] {text}" for n, label, text in evidence]
    return "Sources:\n" + "\n".join(blocks) + f"\n\nQuestion: {question}"


def prompt(question: str, evidence: Sequence[Evidence]) -> str:
    return chat_prompt(SYSTEM, user_message(question, evidence))


def evidence_from(
    sentences: Sequence[tuple[str, list[int], float]], sources: Sequence[Any]
) -> list[Evidence]:
    """The extractive answer's sentences grouped by the source they quote, in the order first
    quoted, each with its source's "Title > Heading" line (rag.records.prefix)."""
    from rag.records import prefix

    by_n = {s.n: s for s in sources}
    texts: dict[int, list[str]] = {}
    for text, cites, _ in sentences:
        if cites:
            texts.setdefault(cites[0], []).append(text)
    out: list[Evidence] = []
    for n, parts in texts.items():
        ch = by_n[n].hit.chunk if n in by_n else None
        label = prefix(ch.title, ch.heading, getattr(ch, "author", None)) if ch is not None else ""
        out.append((n, label, " ".join(parts)))
    return out


def _stems(text: str) -> set[str]:
    return set(stem(sorted(content_words(text))))


def check(raw: str, evidence: Sequence[Evidence], question: str = "") -> Line:
    """Parse the model's text into a line and its citation, and check the line against a source:
    the one it cites when every word stands there, else the first other shown source where every
    word stands (the model often cites [1] for what [2] says; the line is printed with the source
    that holds it, never with one that does not). A line made only of the question's own words
    (its topic given back as its answer; "A or B?" may be answered with A) is not kept.
    `p_decline` is left at 0."""
    raw = raw.strip()
    first = raw.splitlines()[0].strip() if raw else ""
    if not first or first.lower().startswith(REFUSAL.lower()[:-1].lower()):
        return Line(raw, "", None, True, 0.0, False, "declined")
    cites = [int(c) for c in _CITE_RE.findall(first)]
    text = _CITE_RE.sub("", first).strip()
    by_n = {n: (label, body) for n, label, body in evidence}
    cite = cites[0] if cites else None
    if cite is None:
        return Line(raw, text, None, False, 0.0, False, "no citation")
    words = _stems(text)
    if not words:
        return Line(raw, text, cite, False, 0.0, False, "no content words")
    if question and " or " not in f" {question.lower()} " and words <= _stems(question):
        return Line(raw, text, cite, False, 0.0, False, "repeats the question")
    reason = "unshown source"
    for n in sorted(by_n, key=lambda n: n != cite):  # its own citation first
        missing = _not_in(text, words, *by_n[n])
        if not missing:
            return Line(raw, text, n, False, 0.0, True, "")
        if n == cite:
            reason = "not in source: " + missing
    return Line(raw, text, cite, False, 0.0, False, reason)


def _not_in(text: str, words: set[str], label: str, body: str) -> str:
    """The line's words that do not stand in one source ("" when all do): content words by their
    stems; numbers as written (1066 must not pass for 1067 through stemming)."""
    missing = sorted(words - (_stems(body) | _stems(label)))
    if missing:
        return " ".join(missing)
    exact = set(_WORD_RE.findall(body + " " + label))
    return " ".join(w for w in _WORD_RE.findall(text) if any(c.isdigit() for c in w) and w not in exact)


def write_line(
    llm: Any,
    question: str,
    evidence: Sequence[Evidence],
    max_tokens: int = MAX_TOKENS,
    allow_decline: bool = True,
) -> Line:
    """Greedy-decode one line for `question` from `evidence` with a loaded llama_cpp.Llama, and
    check it. Also records the probability the model gave the refusal's first token.
    `allow_decline=False` never lets the line start with the refusal: its first token is then the
    model's best other one (the decision, not the model, says whether to answer)."""
    if not evidence:
        return Line("", "", None, True, 1.0, False, "no evidence")
    # Shown as [1]..[k], as the adapter was trained (it cites [1] far more than [5]); the line's
    # citation is mapped back to the evidence's own numbers.
    numbers = {i: n for i, (n, _, _) in enumerate(evidence, 1)}
    evidence = [(i, label, text) for i, (_, label, text) in enumerate(evidence, 1)]
    tokens = llm.tokenize(prompt(question, evidence).encode("utf-8"), add_bos=False, special=True)
    refusal_tok = llm.tokenize(REFUSAL.encode("utf-8"), add_bos=False, special=False)[0]
    stop = {llm.token_eos()} | set(llm.tokenize(b"<|im_end|>", add_bos=False, special=True))
    _evaluate(llm, tokens)
    # The prompt's last logits, read from the context (llama-cpp-python keeps them only with
    # logits_all); greedy, as generate with top_k=1 would pick.
    logits = _logits(llm)
    p_decline = _softmax_at(logits, refusal_tok)
    first = int(logits.argmax())
    if first == refusal_tok and not allow_decline:
        logits[refusal_tok] = -np.inf
        first = int(logits.argmax())
    out: list[int] = []
    logp: list[float] = []  # of each token before the citation
    if first not in stop and b"\n" not in llm.detokenize([first]):
        out = [first]
        logp = [float(np.log(max(_softmax_at(logits, first), 1e-12)))]
        cited = b"[" in llm.detokenize([first])
        # generate reuses the evaluated prompt: only the first token is evaluated anew
        for tok in llm.generate([*tokens, first], top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            if tok in stop or len(out) >= max_tokens:
                break
            piece = llm.detokenize([tok])
            cited = cited or b"[" in piece
            if not cited:  # the logits it was picked from are still the context's last ones
                logp.append(float(np.log(max(_softmax_at(_logits(llm), tok), 1e-12))))
            out.append(tok)
            if b"\n" in piece:
                break
    raw = llm.detokenize(out).decode("utf-8", errors="ignore")
    line = check(raw, evidence, question)
    confidence = float(np.exp(np.mean(logp))) if logp else 0.0
    cite = numbers.get(line.cite) if line.cite is not None else None
    return replace(line, cite=cite, p_decline=p_decline, confidence=confidence)


# The head every prompt starts with: the system turn and the start of the user's.
HEAD = chat_prompt(SYSTEM, "Sources:\n").rsplit("<|im_end|>", 1)[0]


def _evaluate(llm: Any, tokens: list[int]) -> None:
    """Evaluate the prompt, always split the same way: the fixed head on its own (kept from the
    previous line when the context still holds it), then the rest as one batch. Reusing whatever
    prefix the previous prompt shared would change the split, and with it the last digits of the
    logits and sometimes the greedy line; the head saves about a quarter of each prompt."""
    head = llm.tokenize(HEAD.encode("utf-8"), add_bos=False, special=True)
    k = len(head)
    if list(tokens[:k]) != head:  # tokenised otherwise at the seam: no head to keep
        llm.reset()
        llm.eval(tokens)
        return
    if llm.n_tokens >= k and list(llm.input_ids[:k]) == head and llm._ctx.kv_cache_seq_rm(-1, k, -1):
        llm.n_tokens = k
    else:
        llm.reset()
        llm.eval(head)
    llm.eval(tokens[k:])


def _logits(llm: Any) -> np.ndarray:
    import llama_cpp

    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)


def _softmax_at(logits: np.ndarray, token: int) -> float:
    z = np.exp(logits - logits.max())
    return float(z[token] / z.sum())


def adapter_for(base: Path, adapter_dir: Path = ADAPTER_DIR) -> Path | None:
    """The shipped LoRA adapter when `base` is the file it was trained on (by sha256), else None."""
    prov = adapter_dir / "provenance.json"
    adapter = adapter_dir / ADAPTER_FILE
    if not (prov.is_file() and adapter.is_file() and base.is_file()):
        return None
    want = json.loads(prov.read_text(encoding="utf-8")).get("base", {}).get("sha256")
    return adapter if want and file_sha256(base) == want else None


_SHA_CACHE: dict[str, str] = {}


def file_sha256(path: Path) -> str:
    """The file's sha256, remembered per (path, size, modification time) within the process and in
    the user cache (hashing the 100 MB base model costs about a second of every cold start)."""
    from rag.user_cache import cache_dir, write_atomic

    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]
    if key in _SHA_CACHE:
        return _SHA_CACHE[key]
    saved = cache_dir("sha256") / key
    try:
        digest = saved.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        digest = ""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        with contextlib.suppress(OSError):  # a read-only cache only costs the hash next time
            write_atomic(saved, digest.encode("ascii"))
    _SHA_CACHE[key] = digest
    return digest
