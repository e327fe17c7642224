"""Which parameters each saliency method ships with: `python -m explain_core.evaluation.tuning`.

Three measurements, each over questions with a 95% bootstrap interval, so that a choice is
not made on noise (docs/evaluation.md shows the tables and the choices):
- `rationale`: on the known-rationale model, the share of questions with the cue among the
  top 3 evidence words (answer span left out), and comprehensiveness / sufficiency with the
  span's own tokens never masked, next to a random ranking;
- `squad DATA.json --model M`: comprehensiveness / sufficiency of span answers on a real
  model and SQuAD-format file (bounded by --limit), each method paired with the random
  ranking on the same questions;
- `sanity`: the model-randomization check (Adebayo et al. 2018) for each candidate.
A candidate is a method name with its defaults, or `ig:BASELINE:STEPS` (integrated gradients)
or `sg:SIGMA:SAMPLES` (SmoothGrad). Cost is counted in gradient rows (forward+backward passes
of one window) per question, not seconds: it is what a method asks of any machine, and it
can be measured on a shared one.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from explain_core.engine import QAModel, explain_batch, load_model
from explain_core.engine.locate import locate
from explain_core.engine.saliency import METHODS, AttributionContext, SaliencyMethod, resolve_method
from explain_core.engine.saliency.integrated_gradients import IntegratedGradients
from explain_core.engine.saliency.smoothgrad import SmoothGrad
from explain_core.errors import InputError
from explain_core.evaluation.rationale.sanity import HELD_OUT_SEED, TOP, cue_hits, random_cue_rate, randomization
from explain_core.evaluation.rationale.task import generate
from explain_core.evaluation.rationale.train import DEFAULT_OUT
from explain_core.evaluation.squad import evaluate, load_squad, random_baseline
from explain_core.evaluation.stats import mean_interval
from explain_core.settings import DecodeSettings

IG_CANDIDATES = tuple(f"ig:{b}:{s}" for b in IntegratedGradients.BASELINES for s in (8, 16, 32, 64))
SG_CANDIDATES = tuple(f"sg:{sigma}:{n}" for sigma in (0.05, 0.1, 0.15, 0.25) for n in (8, 16, 32))


def candidate(label: str) -> SaliencyMethod:
    """The method a candidate label names (see the module docstring)."""
    kind, *params = label.split(":")
    try:
        if kind == "ig" and len(params) == 2:
            return IntegratedGradients(steps=int(params[1]), baseline=params[0])
        if kind == "sg" and len(params) == 2:
            return SmoothGrad(sigma=float(params[0]), samples=int(params[1]))
    except ValueError as exc:
        raise InputError("unknown_method", f"bad candidate {label!r}: {exc}") from None
    if params:
        raise InputError("unknown_method", f"bad candidate {label!r}: use ig:BASELINE:STEPS or sg:SIGMA:SAMPLES")
    return resolve_method(kind)


def gradient_rows(qa: QAModel, question: str, passage: str, method: SaliencyMethod) -> int:
    """Forward+backward rows one explanation costs (the vanilla gradient counted, though the
    answer pass often computes it for free)."""
    located = locate(qa, question, passage, DecodeSettings())
    best = located.best
    ctx = AttributionContext.for_window(qa, located.windows, best.window, best.token_start, best.token_end)
    method.attribute(ctx)
    return ctx.gradient_rows


def _interval(values: np.ndarray, percent: bool = False) -> str:
    mean, low, high = mean_interval(values)
    return f"{mean:.1%} [{low:.1%}, {high:.1%}]" if percent else f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def rationale(labels: list[str], questions: int, model_dir: Path = DEFAULT_OUT) -> dict[str, dict[str, Any]]:
    """Per candidate: per-question cue hits, faithfulness and delta on the known-rationale task,
    with the random ranking's faithfulness ("random") on the same questions."""
    qa = load_model(str(model_dir))
    examples = generate(questions, HELD_OUT_SEED)
    items = [(e.question, e.passage) for e in examples]
    settings = DecodeSettings()
    rows: dict[str, dict[str, Any]] = {}
    for label in labels:
        method = candidate(label)
        explanations = explain_batch(items, model=qa, method=method, faithfulness=True)
        hits = cue_hits(examples, explanations)
        done = [e for e in explanations if not isinstance(e, InputError)]
        rows[label] = {
            "cue": hits["cue"].tolist(), "cue_all": hits["cue_all"].tolist(), "correct": hits["correct"].tolist(),
            "comprehensiveness": [e.faithfulness.comprehensiveness for e in done if e.faithfulness],
            "sufficiency": [e.faithfulness.sufficiency for e in done if e.faithfulness],
            "ig_delta": [e.diagnostics["ig_delta"] for e in done if "ig_delta" in e.diagnostics],
            "rows": gradient_rows(qa, *items[0], method),
        }
        print(f"{label}: cue {hits['cue'].mean():.1%}", file=sys.stderr)
    random = [random_baseline(qa, q, p, settings, i) for i, (q, p) in enumerate(items)]
    rows["random"] = {"comprehensiveness": [r["comprehensiveness"] for r in random],
                      "sufficiency": [r["sufficiency"] for r in random],
                      "cue_rate": random_cue_rate(qa, examples)}
    return rows


def rationale_table(rows: dict[str, dict[str, Any]]) -> str:
    random = rows["random"]
    lines = [f"| candidate | rows | cue in top {TOP} evidence [95% CI] | cue in top {TOP}, answer included "
             "| comprehensiveness | sufficiency | sufficiency - random [95% CI] | completeness delta (median) |",
             "|---|---|---|---|---|---|---|---|"]
    for label, row in rows.items():
        if label == "random":
            continue
        gap = np.array(row["sufficiency"]) - np.array(random["sufficiency"])
        delta = f"{np.median(row['ig_delta']):.4f}" if row["ig_delta"] else ""
        lines.append(f"| {label} | {row['rows']} | {_interval(np.array(row['cue'], float), True)} "
                     f"| {np.mean(row['cue_all']):.1%} | {np.mean(row['comprehensiveness']):.3f} "
                     f"| {np.mean(row['sufficiency']):.3f} | {_interval(gap)} | {delta} |")
    lines.append(f"| random ranking | | {random['cue_rate']:.1%} | | {np.mean(random['comprehensiveness']):.3f} "
                 f"| {np.mean(random['sufficiency']):.3f} | | |")
    return "\n".join(lines)


def squad(labels: list[str], data: Path, model: str, limit: int) -> dict[str, dict[str, Any]]:
    """Per candidate: per-question faithfulness and delta of span answers on the first `limit`
    answerable questions of a SQuAD-format file, with the random ranking's on the same questions.
    Answerable only: the metrics measure "hide the evidence, lose the answer", which a no-answer
    result does not have (docs/evaluation.md), so unanswerable questions would cost compute for
    nothing; the few answerable ones the model declines are left out as well."""
    questions = [q for q in load_squad(data) if not q.impossible][:limit]
    records, _ = evaluate(questions, model, {label: candidate(label) for label in labels}, DecodeSettings())
    spans = [r for r in records if not r.no_answer]
    qa = load_model(model)
    rows: dict[str, dict[str, Any]] = {
        label: {key: [r.methods[label][key] for r in spans] for key in ("comprehensiveness", "sufficiency")}
        | {"ig_delta": [r.methods[label]["ig_delta"] for r in spans if "ig_delta" in r.methods[label]],
           "rows": gradient_rows(qa, questions[0].question, questions[0].context, candidate(label))}
        for label in labels
    }
    rows["random"] = {key: [r.random[key] for r in spans] for key in ("comprehensiveness", "sufficiency")}
    rows["random"]["questions"] = len(records)
    return rows


def squad_table(rows: dict[str, dict[str, Any]]) -> str:
    random = rows["random"]
    lines = [f"span answers: {len(random['sufficiency'])} of {random['questions']} questions",
             "| candidate | rows | comprehensiveness [95% CI] | comp. - random [95% CI] | sufficiency [95% CI] "
             "| suff. - random [95% CI] | completeness delta (median) |",
             "|---|---|---|---|---|---|---|"]
    for label, row in rows.items():
        if label == "random":
            continue
        comp, suff = np.array(row["comprehensiveness"]), np.array(row["sufficiency"])
        delta = f"{np.median(row['ig_delta']):.4f}" if row["ig_delta"] else ""
        lines.append(f"| {label} | {row['rows']} | {_interval(comp)} "
                     f"| {_interval(comp - np.array(random['comprehensiveness']))} | {_interval(suff)} "
                     f"| {_interval(suff - np.array(random['sufficiency']))} | {delta} |")
    lines.append(f"| random tokens | | {_interval(np.array(random['comprehensiveness']))} | "
                 f"| {_interval(np.array(random['sufficiency']))} | | |")
    return "\n".join(lines)


def sanity_table(labels: list[str], questions: int) -> str:
    stages = randomization(DEFAULT_OUT, generate(questions, HELD_OUT_SEED), {label: candidate(label)
                                                                           for label in labels})
    lines = ["| randomized (cascading) | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {stage} | " + " | ".join(f"{row[label]:.3f}" for label in labels) + " |"
              for stage, row in stages.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=("rationale", "squad", "sanity"))
    parser.add_argument("data", type=Path, nargs="?", help="squad: a SQuAD-format JSON file")
    parser.add_argument("--candidates", default=None,
                        help="comma-separated; default: the shipped methods, every IG and every SmoothGrad candidate")
    parser.add_argument("--model", default=None, help="squad: hub name or local folder")
    parser.add_argument("--questions", type=int, default=200, help="rationale/sanity: generated questions")
    parser.add_argument("--limit", type=int, default=100, help="squad: the first N answerable questions")
    parser.add_argument("--json", type=Path, default=None, help="also write the per-question values here")
    args = parser.parse_args(argv)
    labels = (args.candidates.split(",") if args.candidates else [*METHODS, *IG_CANDIDATES, *SG_CANDIDATES])
    if args.study == "sanity":
        print(sanity_table(labels, args.questions))
        return
    if args.study == "squad":
        if args.data is None or args.model is None:
            parser.error("squad needs DATA and --model")
        rows = squad(labels, args.data, args.model, args.limit)
        print(squad_table(rows))
    else:
        rows = rationale(labels, args.questions)
        print(rationale_table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
