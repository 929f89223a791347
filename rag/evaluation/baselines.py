"""Baselines: the committed figures a run must not fall below (eval/baseline*.json, and the
baseline run of per-question scores), how to write them, and the check against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.evaluation import compare, runs
from rag.evaluation.metrics import HEADLINE


def load_baseline(path: Path, write_cmd: str) -> tuple[dict[str, Any], float]:
    """A baseline file and its tolerance; a missing one says how to write it."""
    if not path.exists():
        raise RagError(f"{path}: no baseline; write one with `{write_cmd}`")
    base = json.loads(path.read_text(encoding="utf-8"))
    return base, float(base.get("tolerance", 0.02))


def paths(eval_dir: Path, runs_dir: Path, beir: bool) -> tuple[Path, Path]:
    """(the baseline file, the baseline run) of the development set or of BEIR."""
    baseline = eval_dir / ("baseline-beir.json" if beir else "baseline.json")
    return baseline, runs_dir / baseline.name


def write(
    result: dict[str, Any], record: dict[str, Any], eval_dir: Path, runs_dir: Path
) -> tuple[Path, Path]:
    """Save a retrieval run as the baseline: the means file, and the run of per-question scores
    (committed, so without the retrieved snippets). Returns the two paths."""
    beir = result["kind"] == "beir"
    baseline, baseline_run = paths(eval_dir, runs_dir, beir)
    figures = runs.slim(result) if beir else baseline_from(result)
    baseline.write_text(json.dumps(figures, indent=1) + "\n")
    runs.save_run({**record, "name": baseline.stem, "details": {}}, runs_dir, baseline.stem)
    return baseline, baseline_run


def check(
    result: dict[str, Any], record: dict[str, Any], baseline: Path, baseline_run: Path, test: str
) -> tuple[list[str], str, str | None]:
    """(problems, the line to print when there are none, a warning or None).

    With a baseline run (per-question scores) a guarded metric fails only when it is both
    significantly worse and lower by more than the tolerance of baseline.json; without one, the
    tolerance alone decides, as before.
    """
    tolerance = 0.02
    if baseline.exists():
        tolerance = float(json.loads(baseline.read_text(encoding="utf-8")).get("tolerance", tolerance))
    if baseline_run.exists():
        base = runs.load_run(str(baseline_run), baseline_run.parent)
        problems = compare.significant_drops(record, base, tolerance, HEADLINE, test)
        passed = (
            f"check passed: no {HEADLINE} significantly worse than {baseline_run.name} "
            f"by more than {tolerance}"
        )
        return problems, passed, None
    warning = f"no {baseline_run}: checking means against the tolerance only"
    return (
        check_baseline(result, baseline),
        "check passed: no headline metric fell beyond the tolerance",
        warning,
    )


def check_baseline(report: dict[str, Any], baseline_path: Path) -> list[str]:
    """Headline drops beyond the baseline's tolerance, as messages; empty when all is well."""
    base, tol = load_baseline(baseline_path, "rag eval --write-baseline")
    problems = []
    for name, levels in base["retrievers"].items():
        got = report["retrievers"].get(name)
        if got is None:
            continue
        for level, want in levels.items():
            have = got[level][HEADLINE]
            if have < want - tol:
                problems.append(
                    f"{name} {level} {HEADLINE} fell to {have:.3f} from baseline {want:.3f} (tolerance {tol})"
                )
    return problems


def baseline_from(report: dict[str, Any], tolerance: float = 0.02) -> dict[str, Any]:
    """The baseline.json of a development-set report: each retriever's headline per level."""
    return {
        "tolerance": tolerance,
        "metric": HEADLINE,
        "index_fingerprint": report.get("index_fingerprint"),
        "corpus_hash": report.get("corpus_hash"),
        "git_commit": report.get("git_commit"),
        "retrievers": {
            name: {lv: r[lv][HEADLINE] for lv in ("evidence", "article")}
            for name, r in report["retrievers"].items()
        },
    }


ANSWER_GUARDS = ("answer_rate", "abstain_rate", "citation_precision", "supported_share", "gold_word_recall")


def answer_baseline_from(result: dict[str, Any], tolerance: float = 0.02) -> dict[str, Any]:
    """The baseline-answers.json of an answer evaluation: the guarded figures per mode."""
    return {
        "tolerance": tolerance,
        "git_commit": result.get("git_commit"),
        "questions": result.get("questions"),
        "modes": {m: {k: d[k] for k in ANSWER_GUARDS} for m, d in result["modes"].items()},
        "cross_validated": {k: result["cross_validated"]["all"][k] for k in ("answer_rate", "abstain_rate")}
        if result.get("cross_validated")
        else {},
    }


def check_answer_baseline(result: dict[str, Any], baseline_path: Path) -> list[str]:
    """Answer figures that fell beyond the baseline's tolerance, as messages."""
    base, tol = load_baseline(baseline_path, "rag eval --answers --write-baseline")
    problems = []
    checks = [
        (f"{m} {k}", result["modes"].get(m, {}).get(k), v)
        for m, d in base["modes"].items()
        for k, v in d.items()
    ]
    checks += [
        (f"cross-validated {k}", result.get("cross_validated", {}).get("all", {}).get(k), v)
        for k, v in base.get("cross_validated", {}).items()
    ]
    for name, have, want in checks:
        if have is None or want is None or want != want:
            continue
        if have < want - tol:
            problems.append(f"{name} fell to {have:.3f} from baseline {want:.3f} (tolerance {tol})")
    return problems


ANSWERS_FILE = "baseline-answers.json"
ANSWERS_PASSED = "check passed: no answer figure fell beyond the tolerance"


def write_answers(result: dict[str, Any], eval_dir: Path) -> Path:
    """Save an answer evaluation as eval/baseline-answers.json; returns its path."""
    path = eval_dir / ANSWERS_FILE
    path.write_text(json.dumps(answer_baseline_from(result), indent=1) + "\n")
    return path
