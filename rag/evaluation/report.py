"""One self-contained HTML page about a run: tables, and figures inlined as SVG.

matplotlib is imported inside `write_html` only, so neither the query path nor a plain `rag eval`
pays for it. The page loads nothing: no scripts, no fonts, no style sheets, no images by URL;
the SVG is stripped of its XML prologue, metadata and namespace URIs (inline SVG in HTML needs
none of them), so the only web addresses on the page are the articles' own.
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.evaluation import abstention, compare, runs, stats

SECTIONS = {
    "retrievers": "Retrievers compared",
    "recall": "Recall@k, k = 1..20",
    "types": "nDCG@10 per question type",
    "scatter": "Per question: who wins where",
    "abstention": "Abstention: precision and coverage",
    "worst": "The ten worst questions",
    "compare": "Compared with saved runs",
    "metadata": "Run metadata",
}
COLOURS = {"dense": "#1f77b4", "bm25": "#d62728", "hybrid": "#2ca02c"}
_OTHER_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} th,td{border:1px solid #ccc;padding:.25em .5em}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.sig{color:#0a6b1f;font-weight:bold} .worse{color:#a40000;font-weight:bold} .note{color:#555;font-size:.9em}
figure{margin:.5em 0} figure svg{max-width:100%;height:auto} sup{color:#0a6b1f;font-weight:bold}
.q{font-weight:bold} .snip{color:#444;font-size:.85em} nav a{margin-right:1em}
"""


def _colour(name: str, names: list[str]) -> str:
    return COLOURS.get(name) or _OTHER_COLOURS[names.index(name) % len(_OTHER_COLOURS)]


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _svg(fig: Any, salt: str) -> str:
    """The figure as inline SVG without prologue, metadata or namespace URIs."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    s = buf.getvalue()
    s = s[s.index("<svg") :]
    s = re.sub(r"<metadata>.*?</metadata>", "", s, flags=re.S)
    s = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", s)
    s = s.replace("xlink:href=", "href=")
    s = re.sub(r"<!--.*?-->", "", s, flags=re.S)
    if "http" in s:
        raise RuntimeError(
            "matplotlib's SVG still names a web address; the report would not be self-contained"
        )
    return s.strip()


def _figure(fig: Any, salt: str, caption: str) -> str:
    cap = f'<figcaption class="note">{_e(caption)}</figcaption>'
    return f'<figure id="fig-{salt}">{_svg(fig, salt)}{cap}</figure>'


def _table(head: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i >= numeric_from else f"<td>{c}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------------------------------------
# Sections


def _retrievers_section(record: dict[str, Any], cmp: dict[str, Any], headline: str) -> str:
    names = cmp["retrievers"]
    head = ["level", "metric"] + [f"{_e(n)} ({compare.LETTERS[i]})" for i, n in enumerate(names)]
    rows = []
    for level, by_metric in cmp["levels"].items():
        for metric, c in by_metric.items():
            best = max(c["mean"].values())
            cells = []
            for n in names:
                v = f"{c['mean'][n]:.3f}"
                if c["mean"][n] == best:
                    v = f"<b>{v}</b>"
                cells.append(v + (f"<sup>{c['beats'][n]}</sup>" if c["beats"][n] else ""))
            rows.append([_e(level), _e(metric), *cells])
    label = f"Fisher's randomization test, {stats.N_PERMUTATIONS:,} permutations, seed {stats.SEED}"
    if cmp["test"] == "ttest":
        label = "paired t-test"
    pair_rows = []
    for level, by_metric in cmp["levels"].items():
        for pr in by_metric[headline]["pairs"]:
            mark = compare.mark(pr["delta"], pr["p_holm"])
            cls = "sig" if mark.startswith("▲") else "worse"
            pair_rows.append(
                [
                    _e(level),
                    f"{_e(pr['a'])} − {_e(pr['b'])}",
                    f"{pr['delta']:+.3f}",
                    compare.fmt_effect(pr["effect"]),
                    f"{pr['p']:.4f}",
                    f"{pr['p_holm']:.4f}",
                    f'<span class="{cls}">{mark}</span>' if mark else "",
                ]
            )
    return (
        _table(head, rows, numeric_from=2)
        + f'<p class="note">A superscript letter: significantly better than that retriever (p &lt; '
        f"{stats.ALPHA}, {_e(label)}, Holm–Bonferroni across the pairs of retrievers, per level and "
        "metric). Bold: the highest mean.</p>"
        + f"<h3>Pairs on {_e(headline)}</h3>"
        + _table(["level", "pair", "Δ mean", "d<sub>z</sub>", "p", "p (Holm)", ""], pair_rows, numeric_from=2)
    )


def _recall_section(record: dict[str, Any], figure_cls: Any) -> str:
    depth = min(20, runs.ranking_depth(record))
    if depth == 0:
        return '<p class="note">No rankings in this run.</p>'
    names = list(record["retrievers"])
    levels = record["levels"]
    fig = figure_cls(figsize=(4.6 * len(levels), 3.4))
    axes = fig.subplots(1, len(levels), squeeze=False)[0]
    ks = list(range(1, depth + 1))
    cols = [k for k in dict.fromkeys((1, 3, 5, 10, depth)) if k <= depth]
    table_rows = []
    for ax, level in zip(axes, levels, strict=True):
        for n in names:
            curve = runs.recall_curve(record, n, level, depth)
            ax.plot(ks, curve, marker="o", markersize=3, label=n, color=_colour(n, names))
            table_rows.append([_e(n), _e(level), *(f"{curve[k - 1]:.3f}" for k in cols)])
        ax.set_title(f"{level} level")
        ax.set_xlabel("k (ranked items)")
        ax.set_ylabel("mean recall@k")
        ax.set_xticks([1, 5, 10, 15, 20][: 1 + depth // 5])
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    note = ""
    if record["kind"] == "dev":
        note = (
            '<p class="note">Evidence is only earned within the first '
            f"{_e(record.get('word_budget'))} words retrieved, so evidence recall stops growing once "
            "the budget is spent; article recall has no budget.</p>"
        )
    if depth < 20:
        note += (
            f'<p class="note">This run ranked {depth} items per question, so the curve stops at {depth}.</p>'
        )
    return (
        _figure(fig, "recall", "Mean recall@k over the judged questions, per retriever.")
        + note
        + _table(["retriever", "level", *(f"recall@{k}" for k in cols)], table_rows, numeric_from=2)
    )


def _types_section(record: dict[str, Any], figure_cls: Any, headline: str) -> str:
    types = {q: v.get("type") for q, v in record["questions"].items()}
    if not any(types.values()):
        return '<p class="note">This dataset has no question types.</p>'
    names = list(record["retrievers"])
    level = record["levels"][0]
    order = [t for t in dict.fromkeys(sorted(t for t in types.values() if t))]
    data: dict[str, dict[str, tuple[float, int]]] = {}
    for n in names:
        pq = record["retrievers"][n]["per_query"][level]
        data[n] = {}
        for t in order:
            vals = [m[headline] for q, m in pq.items() if types.get(q) == t]
            data[n][t] = (sum(vals) / len(vals) if vals else float("nan"), len(vals))
    order = [t for t in order if any(data[n][t][1] for n in names)]
    fig = figure_cls(figsize=(8.5, 3.4))
    ax = fig.subplots()
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(order))]
        ax.bar(xs, [data[n][t][0] for t in order], width, label=n, color=_colour(n, names))
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([f"{t}\n(n={data[names[0]][t][1]})" for t in order])
    ax.set_ylabel(f"{level} {headline}")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    rows = [[_e(t), str(data[names[0]][t][1]), *(f"{data[n][t][0]:.3f}" for n in names)] for t in order]
    return _figure(fig, "types", f"Mean {level}-level {headline} per question type.") + _table(
        ["type", "questions", *map(_e, names)], rows, numeric_from=1
    )


def _scatter_section(
    record: dict[str, Any], figure_cls: Any, headline: str, pair: tuple[str, str] | None
) -> str:
    names = list(record["retrievers"])
    if len(names) < 2:
        return '<p class="note">Only one retriever in this run: nothing to set against it.</p>'
    x, y = pair if pair else (names[0], names[1])
    level = record["levels"][0]
    qids, a, b = compare.paired(
        record["retrievers"][x]["per_query"], record["retrievers"][y]["per_query"], level, headline
    )
    types = {q: v.get("type") or "query" for q, v in record["questions"].items()}
    kinds = list(dict.fromkeys(sorted(types.get(q, "query") for q in qids)))
    markers = "osD^v<>Ph*"
    fig = figure_cls(figsize=(5.2, 5.0))
    ax = fig.subplots()
    for i, kind in enumerate(kinds):
        pts = [(u, v) for q, u, v in zip(qids, a, b, strict=True) if types.get(q, "query") == kind]
        ax.scatter(
            [p[0] for p in pts],
            [p[1] for p in pts],
            s=22,
            alpha=0.7,
            marker=markers[i % len(markers)],
            label=kind,
        )
    ax.plot([0, 1], [0, 1], color="#888", linewidth=1)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(f"{x}: {level} {headline}")
    ax.set_ylabel(f"{y}: {level} {headline}")
    ax.grid(alpha=0.3)
    if len(kinds) > 1:
        ax.legend(loc="lower right", fontsize=8)
    wins_x = sum(u > v for u, v in zip(a, b, strict=True))
    wins_y = sum(v > u for u, v in zip(a, b, strict=True))
    ties = len(qids) - wins_x - wins_y
    moved = sorted(zip(qids, a, b, strict=True), key=lambda t: -abs(t[1] - t[2]))[:6]
    rows = [
        [_e(q), _e(record["questions"].get(q, {}).get("question", ""))[:120], f"{u:.3f}", f"{v:.3f}"]
        for q, u, v in moved
    ]
    return (
        _figure(fig, "scatter", f"Each point is a question: {x} across, {y} up; above the line {y} wins.")
        + f"<p>{_e(x)} better on {wins_x} questions, {_e(y)} better on {wins_y}, tied on {ties} "
        f"(of {len(qids)}).</p><h3>Largest differences</h3>"
        + _table(["question", "text", _e(x), _e(y)], rows, numeric_from=2)
    )


def _abstention_section(
    figure_cls: Any, pairs: abstention.ScorePairs | None, threshold: float | None, source: str
) -> str:
    if not pairs:
        return (
            '<p class="note">Not computed for this run: the abstention curve needs questions with and '
            "without an answer in the corpus (the development set), and is drawn by "
            "<code>rag eval --report FILE.html</code> on it.</p>"
        )
    pts = abstention.curve(pairs)
    fig = figure_cls(figsize=(5.6, 3.8))
    ax = fig.subplots()
    ax.plot([p["coverage"] for p in pts], [p["precision"] for p in pts], marker=".", color="#1f77b4")
    rows = []
    if threshold is not None:
        at = abstention.point(pairs, threshold)
        ax.scatter(
            [at["coverage"]],
            [at["precision"]],
            s=90,
            color="#d62728",
            zorder=3,
            label=f"configured threshold {threshold:.2f}",
        )
        rows.append(
            [
                f"configured {threshold:.2f}",
                f"{at['coverage']:.3f}",
                f"{at['precision']:.3f}",
                f"{at['answer_rate']:.3f}",
                f"{at['abstain_rate']:.3f}",
            ]
        )
    n_ok = sum(ok for _, ok in pairs.values())
    base = n_ok / len(pairs)  # the precision of answering every question
    ax.axhline(base, color="#888", linestyle="--", linewidth=1, label=f"answerable share {base:.2f}")
    ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("coverage (share of questions answered)")
    ax.set_ylabel("precision (answered that are answerable)")
    ax.set_xlim(0, 1.02)
    low = min([base, *(p["precision"] for p in pts)])
    ax.set_ylim(max(0.0, low - 0.05), 1.01)  # precision moves in a narrow band: zoom on it
    ax.grid(alpha=0.3)
    never = sum(s is None for s, _ in pairs.values())
    return (
        _figure(
            fig,
            "abstention",
            "Each point is one threshold on the abstention score, from strict (left) to lenient.",
        )
        + f"<p>Score: {_e(source)}. {len(pairs)} questions, {n_ok} answerable and {len(pairs) - n_ok} not; "
        f"{never} abstain whatever the threshold (they name something no retrieved source mentions).</p>"
        + _table(["threshold", "coverage", "precision", "answer rate", "abstention rate"], rows)
    )


def _worst_section(record: dict[str, Any], retriever: str, headline: str, n: int = 10) -> str:
    level = record["levels"][0]
    pq = record["retrievers"][retriever]["per_query"][level]
    worst = sorted(pq, key=lambda q: (pq[q][headline], q))[:n]
    ranking = record["rankings"][retriever]
    out = [f"<p>By {_e(level)}-level {_e(headline)} of <b>{_e(retriever)}</b>, lowest first.</p><ol>"]
    for qid in worst:
        q = record["questions"].get(qid, {})
        scores = ", ".join(
            f"{lv} {record['retrievers'][retriever]['per_query'][lv].get(qid, {}).get(headline, 0.0):.3f}"
            for lv in record["levels"]
        )
        out.append(
            f'<li><p><span class="q">{_e(qid)}</span> ({_e(q.get("type") or "query")}) '
            f"{_e(q.get('question', ''))} "
            f"— {headline}: {scores}</p>"
        )
        if record["kind"] == "dev":
            out.append(_worst_dev(record, retriever, qid, ranking))
        else:
            out.append(_worst_beir(record, qid, ranking))
        out.append("</li>")
    out.append("</ol>")
    return "".join(out)


def _worst_dev(record: dict[str, Any], retriever: str, qid: str, ranking: dict[str, Any]) -> str:
    det = record["details"].get(retriever, {}).get(qid, {})
    got = "".join(
        f"<li>{_e(h.get('title', ''))} — {_e(h.get('heading', ''))} "
        f"<span class='snip'>{_e(h.get('url', ''))}<br>"
        f"{_e(h.get('text', '')[:160])}…</span></li>"
        for h in det.get("retrieved", [])
    )
    ev_rank = {d: i + 1 for i, d in enumerate(ranking["evidence"].get(qid, []))}
    art_rank = {d: i + 1 for i, d in enumerate(ranking["article"].get(qid, []))}
    wants = []
    for j in record["judgments"].get(qid, []):
        r = ev_rank.get(j["id"])
        a = art_rank.get(j["url"])
        where = f"earned at rank {r}" if r else "not earned"
        where += f"; its article first at rank {a}" if a else "; its article not retrieved"
        wants.append(
            f"<li>grade {j['grade']}, {_e(j['url'])}: "
            f"<span class='snip'>“{_e(j['quote'][:160])}”</span> — {where}</li>"
        )
    for quote in det.get("missing_evidence", []):
        wants.append(
            f"<li>quote not found in its article's text: <span class='snip'>“{_e(quote[:160])}”</span></li>"
        )
    return f"<p>Retrieved (top 3):</p><ul>{got}</ul><p>Where the evidence is:</p><ul>{''.join(wants)}</ul>"


def _worst_beir(record: dict[str, Any], qid: str, ranking: dict[str, Any]) -> str:
    docs = ranking["document"].get(qid, [])
    rel = record["qrels"]["document"].get(qid, {})
    pos = {d: i + 1 for i, d in enumerate(docs)}
    got = ", ".join(_e(d) + (" (relevant)" if rel.get(d, 0) > 0 else "") for d in docs[:5])
    wants = ", ".join(
        f"{_e(d)} (grade {g}, " + (f"rank {pos[d]})" if d in pos else f"not in the top {len(docs)})")
        for d, g in sorted(rel.items())
    )
    return f"<p>Retrieved (top 5): {got}</p><p>Relevant: {wants}</p>"


def _compare_section(cmp: dict[str, Any] | None, headline: str) -> str:
    if not cmp:
        return (
            '<p class="note">No saved runs compared (use '
            "<code>rag eval --compare RUN … --report FILE.html</code>).</p>"
        )
    rows = []
    for r in cmp["rows"]:
        if r["metric"] != headline:
            continue
        mark = compare.mark(r["delta"], r["p_holm"])
        cls = "sig" if mark.startswith("▲") else "worse"
        worse = ", ".join(f"{q} {a:.2f}→{b:.2f}" for q, a, b in r["worse"][:3])
        rows.append(
            [
                _e(r["retriever"]),
                _e(r["level"]),
                _e(r["run"]),
                f"{r['reference_mean']:.3f}",
                f"{r['run_mean']:.3f}",
                f"{r['delta']:+.3f}",
                compare.fmt_effect(r["effect"]),
                f"{r['p_holm']:.4f}",
                f'<span class="{cls}">{mark}</span>' if mark else "",
                _e(worse),
            ]
        )
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in cmp["notes"])
    return (
        f"<p>Reference: <b>{_e(cmp['reference'])}</b>; {headline} per retriever and level "
        f"({'randomization test' if cmp['test'] == 'randomization' else 'paired t-test'}, Holm–Bonferroni "
        "across the runs compared). Every metric is in the terminal table.</p>"
        + _table(
            [
                "retriever",
                "level",
                "run",
                "reference",
                "run mean",
                "Δ",
                "d<sub>z</sub>",
                "p (Holm)",
                "",
                "got worse (from→to)",
            ],
            rows,
            numeric_from=3,
        )
        + notes
    )


def _metadata_section(record: dict[str, Any]) -> str:
    rows = [
        ["name", _e(record["name"])],
        ["created (UTC)", _e(record["created"])],
        ["kind", _e(record["kind"])],
        ["dataset", _e(", ".join(f"{k} {v}" for k, v in record["dataset"].items()))],
        ["questions scored", _e(len(next(iter(record["qrels"].values()), {})))],
        ["ranking depth", _e(runs.ranking_depth(record))],
        ["word budget", _e(record.get("word_budget"))],
        ["index fingerprint", _e(record.get("index_fingerprint"))],
        ["corpus hash", _e(record.get("corpus_hash"))],
        ["index generation", _e(record.get("index_generation"))],
        ["git commit", _e(record.get("git_commit"))],
    ]
    for section, values in record.get("settings", {}).items():
        text = ", ".join(f"{k}={v}" for k, v in values.items()) if isinstance(values, dict) else str(values)
        rows.append([f"settings.{_e(section)}", _e(text)])
    for n, r in record["retrievers"].items():
        if r.get("seconds_per_query") is not None:
            rows.append([f"{_e(n)} speed", f"{r['seconds_per_query'] * 1000:.1f} ms/query"])
    return _table(["key", "value"], rows, numeric_from=9)


# ---------------------------------------------------------------------------------------------


def write_html(
    record: dict[str, Any],
    path: Path,
    test: str = "randomization",
    headline: str = "ndcg@10",
    worst_retriever: str | None = None,
    scatter_pair: tuple[str, str] | None = None,
    abstention_pairs: abstention.ScorePairs | None = None,
    threshold: float | None = None,
    abstention_source: str = "",
    comparison: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Write the report; returns the size in bytes of each section."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RagError("--report FILE.html needs matplotlib: pip install -e '.[report]'") from None
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI toolkit

    names = list(record["retrievers"])
    worst = worst_retriever if worst_retriever is not None and worst_retriever in names else names[-1]
    cmp = compare.retriever_comparison(record, test)
    parts = {
        "retrievers": _retrievers_section(record, cmp, headline),
        "recall": _recall_section(record, Figure),
        "types": _types_section(record, Figure, headline),
        "scatter": _scatter_section(record, Figure, headline, scatter_pair),
        "abstention": _abstention_section(Figure, abstention_pairs, threshold, abstention_source),
        "worst": _worst_section(record, worst, headline),
        "compare": _compare_section(comparison, headline),
        "metadata": _metadata_section(record),
    }
    nav = "".join(f'<a href="#{k}">{_e(v)}</a>' for k, v in SECTIONS.items())
    body = "".join(f'<section id="{k}"><h2>{_e(SECTIONS[k])}</h2>{parts[k]}</section>' for k in SECTIONS)
    title = f"rag eval — {record['name']} ({record['kind']})"
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1><nav>{nav}</nav>{body}</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return {k: len(v.encode("utf-8")) for k, v in parts.items()}
