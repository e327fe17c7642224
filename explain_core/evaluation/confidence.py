"""Does the explanation make a better confidence? `python -m explain_core.evaluation.confidence EVAL.json`.

EVAL.json is the output of `qa-eval DATA.json --json` (per-question records). The question
is the seed's open idea: predict "the shown answer is right" (exact match or F1 > 0.5) from
P(start)*P(end) alone, or from a logistic regression on that score plus statistics of the
explanation (entropy of the passage weights, share of weight on the question,
comprehensiveness). Every number is on questions the regression was not fitted on:
article-wise splits, and 50/50 splits that keep each paragraph's questions together (the
questions about one passage are too alike to sit on both sides). A small control model
(score + the no-answer flag) tells whether a gain comes from the explanation or merely
from calibrating span and no-answer scores separately.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from explain_core import defaults
from explain_core.evaluation.squad import Record, correct
from explain_core.evaluation.stats import auroc

SALIENCY = ("passage_entropy", "question_share", "comprehensiveness")
BOOTSTRAP = 1000
SPLIT_SEEDS = 20


def features(records: list[dict], method: str, names: tuple[str, ...]) -> np.ndarray:
    """Columns: the score, then each named statistic ("no_answer" is the flag; the rest come
    from the method's record)."""
    columns = [[r["score"] for r in records]]
    for name in names:
        columns.append([float(r["no_answer"]) if name == "no_answer" else r["methods"][method][name]
                        for r in records])
    return np.array(columns, np.float64).T


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50) -> tuple[np.ndarray, ...]:
    """Logistic regression by Newton's method on standardised features, with an L2 penalty
    (not on the intercept) so a few hundred questions cannot push weights to infinity.
    Returns (mean, std, weights) for `predict`."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-12
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / std])
    w = np.zeros(z.shape[1])
    penalty = l2 * np.eye(z.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-z @ w))
        gradient = z.T @ (p - y) + penalty @ w
        hessian = z.T @ (z * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return mean, std, w


def predict(model: tuple[np.ndarray, ...], x: np.ndarray) -> np.ndarray:
    mean, std, w = model
    return 1 / (1 + np.exp(-(w[0] + ((x - mean) / std) @ w[1:])))


def compare(records: list[dict], train: np.ndarray, test: np.ndarray, method: str,
            rng: np.random.Generator) -> dict[str, float]:
    """Held-out AUROC of the score, of the control model and of score + saliency statistics,
    and a paired bootstrap 95% interval of the saliency model's gain over the score."""
    y = np.array([correct(Record(**r)) for r in records], np.float64)
    result = {"train": int(train.sum()), "test": int(test.sum()), "right_share_test": float(y[test].mean())}
    scores = {"score": features(records, method, ())[:, 0]}
    models = (("control", ("no_answer",)), ("saliency", SALIENCY), ("saliency+flag", SALIENCY + ("no_answer",)))
    for label, names in models:
        x = features(records, method, names)
        scores[label] = predict(fit_logistic(x[train], y[train]), x)
    for label, s in scores.items():
        result[label] = auroc(s[test], y[test])
    index = np.flatnonzero(test)
    gains = []
    for _ in range(BOOTSTRAP):
        sample = rng.choice(index, len(index))
        gains.append(auroc(scores["saliency"][sample], y[sample]) - auroc(scores["score"][sample], y[sample]))
    result["gain_low"], result["gain_high"] = (float(v) for v in np.nanpercentile(gains, [2.5, 97.5]))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_json", type=Path, help="output of qa-eval --json")
    parser.add_argument("--method", default=defaults.METHOD, help="whose saliency statistics to use")
    args = parser.parse_args(argv)
    data = json.loads(args.eval_json.read_text(encoding="utf-8"))
    records = data["records"]
    if args.method not in records[0]["methods"]:
        sys.exit(f"the file has no {args.method!r} results; it has {', '.join(records[0]['methods'])}")
    rng = np.random.default_rng(0)
    titles = np.array([r["title"] for r in records])
    paragraphs = np.array([r["paragraph"] for r in records])
    splits = [(f"train {a}, test {b}", titles == a, titles == b)
              for a in sorted(set(titles)) for b in sorted(set(titles)) if a != b]
    for seed in range(SPLIT_SEEDS):
        unique = np.unique(paragraphs)
        chosen = np.random.default_rng(seed).permutation(unique)[: len(unique) // 2]
        train = np.isin(paragraphs, chosen)
        splits.append((f"paragraphs 50/50, seed {seed}", train, ~train))
    rows = [(name, compare(records, train, test, args.method, rng)) for name, train, test in splits]
    print(f"model {data['model']}, {len(records)} questions, saliency of {args.method}\n")
    header = "| held-out split | train / test | score alone | score + no-answer flag | score + saliency " \
             "| score + saliency + flag | gain of saliency, 95% CI |"
    print(header + "\n" + "|---" * 7 + "|")
    for name, r in rows[: len(rows) - SPLIT_SEEDS + 1]:
        print(f"| {name} | {r['train']} / {r['test']} | {r['score']:.3f} | {r['control']:.3f} | {r['saliency']:.3f} "
              f"| {r['saliency+flag']:.3f} | {r['saliency'] - r['score']:+.3f} "
              f"[{r['gain_low']:+.3f}, {r['gain_high']:+.3f}] |")
    seeded = rows[len(rows) - SPLIT_SEEDS:]
    for label in ("score", "control", "saliency", "saliency+flag"):
        values = np.array([r[label] for _, r in seeded])
        print(f"{SPLIT_SEEDS} paragraph splits, {label}: mean AUROC {values.mean():.3f} (sd {values.std():.3f})")
    gains = np.array([r["saliency"] - r["score"] for _, r in seeded])
    print(f"gain of saliency over the score: mean {gains.mean():+.3f}, "
          f"positive in {int((gains > 0).sum())} of {SPLIT_SEEDS}")


if __name__ == "__main__":
    main()
