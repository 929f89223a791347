"""Tables of differences between retrievers and between runs, marked where a paired test says
they are significant (p < 0.05 after Holm-Bonferroni), with Cohen's d_z as the effect size.

Conventions follow ranx: within a run, a retriever's score carries the letters of the retrievers
it beats significantly (a = the first retriever, b = the second, ...), the family for Holm being
the pairs of retrievers; between runs, each run is compared with the reference per retriever,
level and metric, the family being the runs compared with the reference.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from rag.errors import RagError
from rag.evaluation import stats
from rag.evaluation.tables import markdown_table

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def paired(
    a: dict[str, Any], b: dict[str, Any], level: str, metric: str
) -> tuple[list[str], list[float], list[float]]:
    """Question ids scored in both per-question tables, and the two score lists in that order."""
    qids = sorted(set(a[level]) & set(b[level]))
    return qids, [a[level][q][metric] for q in qids], [b[level][q][metric] for q in qids]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def retriever_comparison(record: dict[str, Any], test: str = "randomization") -> dict[str, Any]:
    """Every pair of retrievers in one run, per level and metric, Holm-adjusted across the pairs."""
    names = list(record["retrievers"])
    out: dict[str, Any] = {"test": test, "retrievers": names, "levels": {}}
    for level in record["levels"]:
        out["levels"][level] = {}
        for metric in record["metrics"]:
            pairs = []
            for x, y in combinations(names, 2):
                qids, a, b = paired(
                    record["retrievers"][x]["per_query"], record["retrievers"][y]["per_query"], level, metric
                )
                pairs.append(
                    {
                        "a": x,
                        "b": y,
                        "n": len(qids),
                        "delta": _mean(a) - _mean(b),
                        "effect": stats.effect_size(a, b) if qids else None,
                        "p": stats.paired_p(a, b, test) if qids else 1.0,
                    }
                )
            for pr, adj in zip(pairs, stats.holm([p["p"] for p in pairs]), strict=True):
                pr["p_holm"] = adj
            beats: dict[str, list[str]] = {n: [] for n in names}
            for pr in pairs:
                if pr["p_holm"] < stats.ALPHA and pr["delta"] != 0:
                    winner, loser = (pr["a"], pr["b"]) if pr["delta"] > 0 else (pr["b"], pr["a"])
                    beats[winner].append(LETTERS[names.index(loser)])
            out["levels"][level][metric] = {
                "mean": {n: record["retrievers"][n]["mean"][level][metric] for n in names},
                "beats": {n: "".join(sorted(v)) for n, v in beats.items()},
                "pairs": pairs,
            }
    return out


def retriever_table(cmp: dict[str, Any]) -> str:
    """Markdown: means per retriever, with the letters of the retrievers each beats significantly."""
    names = cmp["retrievers"]
    metrics = list(next(iter(cmp["levels"].values())))
    rows = []
    for level, by_metric in cmp["levels"].items():
        for metric in metrics:
            c = by_metric[metric]
            cells = [f"{c['mean'][n]:.3f}" + (f" {c['beats'][n]}" if c["beats"][n] else "") for n in names]
            rows.append([level, metric, *cells])
    head = ["level", "metric", *(f"{n} ({LETTERS[i]})" for i, n in enumerate(names))]
    label = "randomization test, 10,000 permutations" if cmp["test"] == "randomization" else "paired t-test"
    return (
        markdown_table(head, rows, "ll" + "r" * len(names))
        + f"\n\nLetters: significantly better (p < {stats.ALPHA}, {label}, Holm-Bonferroni "
        f"across the {len(names) * (len(names) - 1) // 2} pairs) than the retriever with that letter."
    )


def fmt_effect(e: float | None) -> str:
    """Cohen's d_z with its sign, or n/a when it is undefined."""
    return "n/a" if e is None else f"{e:+.2f}"


def mark(delta: float, p: float) -> str:
    """▲ better or ▼ worse when the difference is significant at ALPHA, else nothing."""
    if p >= stats.ALPHA or delta == 0:
        return ""
    return "▲ better" if delta > 0 else "▼ worse"


def compare_runs(
    reference: dict[str, Any], others: list[dict[str, Any]], test: str = "randomization"
) -> dict[str, Any]:
    """Each run against the reference, per retriever, level and metric they share.

    p-values are Holm-adjusted across the runs compared with the reference (one family per
    retriever, level and metric). Runs of different kinds, or of different BEIR datasets, are
    refused: their questions do not pair.
    """
    notes = _pairing_notes(reference, others)
    rows: list[dict[str, Any]] = []
    for rname, ref_r in reference["retrievers"].items():
        for level in reference["levels"]:
            for metric in reference["metrics"]:
                family = []
                for o in others:
                    if rname not in o["retrievers"] or level not in o["retrievers"][rname]["per_query"]:
                        continue
                    qids, a, b = paired(
                        o["retrievers"][rname]["per_query"], ref_r["per_query"], level, metric
                    )
                    family.append(
                        {
                            "retriever": rname,
                            "level": level,
                            "metric": metric,
                            "run": o["name"],
                            "n": len(qids),
                            "reference_mean": _mean(b),
                            "run_mean": _mean(a),
                            "delta": _mean(a) - _mean(b),
                            "effect": stats.effect_size(a, b) if qids else None,
                            "p": stats.paired_p(a, b, test) if qids else 1.0,
                            "worse": _moved(qids, a, b, worse=True),
                        }
                    )
                for row, adj in zip(family, stats.holm([r["p"] for r in family]), strict=True):
                    row["p_holm"] = adj
                    row["significant"] = adj < stats.ALPHA and row["delta"] != 0
                rows.extend(family)
    return {
        "reference": reference["name"],
        "runs": [o["name"] for o in others],
        "test": test,
        "rows": rows,
        "notes": notes,
    }


def _pairing_notes(reference: dict[str, Any], others: list[dict[str, Any]]) -> list[str]:
    """Refuse runs whose questions do not pair with the reference's; note the ones that pair
    only in part (another questions file) or ran on another corpus."""
    notes = []
    for o in others:
        if o["kind"] != reference["kind"]:
            raise RagError(
                f"run '{o['name']}' is a {o['kind']} run, '{reference['name']}' a {reference['kind']} one"
            )
        if o["dataset"].get("hash") != reference["dataset"].get("hash"):
            if reference["kind"] == "beir":
                raise RagError(f"runs '{o['name']}' and '{reference['name']}' are on different BEIR datasets")
            notes.append(
                f"'{o['name']}' used another questions file than '{reference['name']}': "
                "only the question ids in both are paired"
            )
        if o.get("corpus_hash") != reference.get("corpus_hash"):
            notes.append(f"'{o['name']}' was run on another corpus than '{reference['name']}'")
    return notes


def _moved(qids: list[str], a: list[float], b: list[float], worse: bool, n: int = 5) -> list[list[Any]]:
    """The questions that moved most in one direction: [[qid, from, to], ...]."""
    moved = [
        (y - x if worse else x - y, q, y, x)
        for q, x, y in zip(qids, a, b, strict=True)
        if (x < y if worse else x > y)
    ]
    moved.sort(key=lambda m: (-m[0], m[1]))
    return [[q, round(frm, 4), round(to, 4)] for _, q, frm, to in moved[:n]]


def runs_table(cmp: dict[str, Any], metrics: list[str] | None = None) -> str:
    """Markdown: reference vs each run, with delta, d_z, Holm-adjusted p and a mark."""
    head = ["retriever", "level", "metric", cmp["reference"], "run", "mean", "delta", "d_z", "p (Holm)", ""]
    rows = [
        [
            r["retriever"],
            r["level"],
            r["metric"],
            f"{r['reference_mean']:.3f}",
            r["run"],
            f"{r['run_mean']:.3f}",
            f"{r['delta']:+.3f}",
            fmt_effect(r["effect"]),
            f"{r['p_holm']:.4f}",
            mark(r["delta"], r["p_holm"]),
        ]
        for r in cmp["rows"]
        if not metrics or r["metric"] in metrics
    ]
    label = "randomization test, 10,000 permutations" if cmp["test"] == "randomization" else "paired t-test"
    lines = [
        markdown_table(head, rows, "lllrlrrrrl"),
        "",
        f"▲/▼: significant at p < {stats.ALPHA} ({label}, Holm-Bonferroni across the runs compared).",
    ]
    return "\n".join(lines + [f"note: {n}" for n in cmp["notes"]])


def significant_drops(
    current: dict[str, Any],
    baseline: dict[str, Any],
    tolerance: float,
    metric: str,
    test: str = "randomization",
) -> list[str]:
    """Guarded comparisons where the current run is significantly AND materially worse.

    A retriever's `metric` at a level fails when its paired mean fell by more than `tolerance`
    and the paired test gives p < 0.05. As in `compare_runs`, Holm's family is the runs compared
    with the reference, here one, so the p-value is used as it is: a drop that `--compare` marks
    as significantly worse is one that `--check` fails on, once it exceeds the tolerance.
    """
    problems = []
    for rname, base_r in baseline["retrievers"].items():
        cur_r = current["retrievers"].get(rname)
        if cur_r is None:
            continue
        for level in baseline["levels"]:
            if level not in cur_r["per_query"]:
                continue
            qids, a, b = paired(cur_r["per_query"], base_r["per_query"], level, metric)
            if not qids:
                continue
            have, want = _mean(a), _mean(b)
            if have < want - tolerance:
                p = stats.paired_p(a, b, test)
                if p < stats.ALPHA:
                    problems.append(
                        f"{rname} {level} {metric} fell to {have:.3f} from baseline {want:.3f} on "
                        f"{len(qids)} questions: significant (p = {p:.4f}) and beyond "
                        f"the tolerance {tolerance}"
                    )
    return problems
