"""`qa-eval DATA.json`: answer quality (EM/F1) and explanation faithfulness on a SQuAD-format file.

Answers are scored with the official SQuAD 2.0 rules; every saliency method is then scored
by comprehensiveness and sufficiency (explain_core.engine.faithfulness) next to a random-token
baseline that masks random passage tokens instead of the top-ranked ones. A method whose
comprehensiveness does not beat the random baseline points at words the model did not use.
The model is loaded once and the questions go through `explain_batch` in small batches.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import string
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from explain_core.errors import InputError
from explain_core.evaluation.stats import auroc
from explain_core.settings import DecodeSettings, default_model

if TYPE_CHECKING:
    from explain_core.engine import QAModel
    from explain_core.engine.saliency import SaliencyMethod

BATCH = 8
RANDOM_SEED = 0
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


@dataclass(frozen=True)
class Question:
    """One SQuAD question; `answers` is [""] for a question without an answer (official rule)."""

    id: str
    title: str
    paragraph: int  # index of the paragraph in the file: questions about one passage share it
    question: str
    context: str
    answers: list[str]
    impossible: bool


@dataclass
class Record:
    """What was measured for one question: the answer's scores and each method's faithfulness."""

    id: str
    title: str
    paragraph: int
    prediction: str
    no_answer: bool
    score: float
    impossible: bool
    exact: float
    f1: float
    methods: dict[str, dict[str, float]] = field(default_factory=dict)
    random: dict[str, float] = field(default_factory=dict)


# -- official SQuAD 2.0 scoring -----------------------------------------------------------
def normalize_answer(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (evaluate-v2.0.py)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-overlap F1; when either side is empty (no answer), 1 only if both are."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def load_squad(path: Path) -> list[Question]:
    """The questions of a SQuAD 1.1/2.0 JSON file, in file order."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        questions = []
        paragraphs = [(article.get("title", ""), paragraph) for article in data["data"]
                      for paragraph in article["paragraphs"]]
        for number, (title, paragraph) in enumerate(paragraphs):
            for qa in paragraph["qas"]:
                gold = [a["text"] for a in qa.get("answers", []) if normalize_answer(a["text"])]
                questions.append(Question(str(qa["id"]), title, number, qa["question"],
                                          paragraph["context"], gold or [""],
                                          bool(qa.get("is_impossible", False)) or not gold))
    except OSError as exc:
        raise InputError("bad_file", f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError("bad_file", f"{path} is not a JSON file") from None
    except (KeyError, TypeError):
        raise InputError("bad_file", f"{path} is not in SQuAD format (data > paragraphs > qas)") from None
    if not questions:
        raise InputError("bad_file", f"{path} holds no questions")
    return questions


# -- explanation statistics ---------------------------------------------------------------
def saliency_stats(tokens: list[Any]) -> dict[str, float]:
    """Entropy of the passage tokens' |weights| (0 = one token holds all, 1 = uniform) and
    the share of |weight| on question tokens: how focused the explanation is, and where."""
    passage = np.array([abs(t.weight) for t in tokens if t.segment == "passage"], dtype=np.float64)
    question = sum(abs(t.weight) for t in tokens if t.segment == "question")
    total = question + passage.sum()
    entropy = 0.0
    if passage.size > 1 and passage.sum() > 0:
        p = passage / passage.sum()
        entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum() / np.log(passage.size))
    return {"passage_entropy": entropy, "question_share": float(question / total) if total > 0 else 0.0}


def random_baseline(qa: QAModel, question: str, passage: str, settings: DecodeSettings,
                    seed: int) -> dict[str, float]:
    """Faithfulness of a random ranking of the passage tokens, on the span the engine explains
    (found by the engine's own `locate`), so that it masks the same window and scores the same
    P(start)*P(end) as the methods."""
    from explain_core.engine.faithfulness import measure
    from explain_core.engine.locate import locate

    ctx = locate(qa, question, passage, settings).context(qa)
    scores = np.random.default_rng([RANDOM_SEED, seed]).random(size=(int(ctx.input_ids.shape[1]),))
    faithful = measure(ctx, scores)
    return {"comprehensiveness": faithful.comprehensiveness, "sufficiency": faithful.sufficiency}


def evaluate(questions: list[Question], model_name: str, methods: Mapping[str, str | SaliencyMethod],
             settings: DecodeSettings) -> tuple[list[Record], dict[str, float]]:
    """Answer and explain every question with every method (label -> name or configured
    instance); returns per-question records and the seconds each method (and the random
    baseline) took. Progress goes to stderr (a full run takes an hour on two cores), so
    stdout stays one table or one JSON object."""
    from explain_core.engine import explain_batch, load_model

    qa = load_model(model_name)
    records: list[Record] = []
    seconds: dict[str, float] = {}
    for m, (label, method) in enumerate(methods.items()):
        started = time.perf_counter()
        for first in range(0, len(questions), BATCH):
            chunk = questions[first:first + BATCH]
            results = explain_batch([(q.question, q.context) for q in chunk], model=qa, method=method,
                                    settings=settings, faithfulness=True)
            for offset, (item, exp) in enumerate(zip(chunk, results)):
                if isinstance(exp, InputError):
                    raise InputError(exp.code, f"question {item.id}: {exp.message}")
                if m == 0:
                    records.append(Record(
                        item.id, item.title, item.paragraph, exp.answer, exp.no_answer, exp.score, item.impossible,
                        max(exact_match(exp.answer, g) for g in item.answers),
                        max(f1_score(exp.answer, g) for g in item.answers)))
                record = records[first + offset]
                assert exp.faithfulness is not None  # asked for above
                record.methods[label] = {"comprehensiveness": exp.faithfulness.comprehensiveness,
                                         "sufficiency": exp.faithfulness.sufficiency,
                                         **exp.diagnostics, **saliency_stats(exp.tokens)}
            print(f"\r{label}: {min(first + BATCH, len(questions))}/{len(questions)}", end="", file=sys.stderr)
        seconds[label] = time.perf_counter() - started
        print(f"  ({seconds[label]:.0f} s)", file=sys.stderr)
    started = time.perf_counter()
    for index, (item, record) in enumerate(zip(questions, records)):
        record.random = random_baseline(qa, item.question, item.context, settings, index)
    seconds["random"] = time.perf_counter() - started
    return records, seconds


def correct(record: Record) -> bool:
    """The answer counts as right when it matches exactly or overlaps well (F1 > 0.5)."""
    return record.exact == 1.0 or record.f1 > 0.5


def aggregate(records: list[Record], methods: list[str]) -> dict[str, Any]:
    """EM/F1 overall and split as the official script does, and faithfulness means per method."""
    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    has = [r for r in records if not r.impossible]
    no = [r for r in records if r.impossible]
    summary: dict[str, Any] = {
        "questions": len(records),
        "exact": 100 * mean([r.exact for r in records]),
        "f1": 100 * mean([r.f1 for r in records]),
        "has_answer": {"questions": len(has), "exact": 100 * mean([r.exact for r in has]),
                       "f1": 100 * mean([r.f1 for r in has])},
        "no_answer": {"questions": len(no), "exact": 100 * mean([r.exact for r in no])},
        "confidence_auroc": auroc(np.array([r.score for r in records]), np.array([correct(r) for r in records])),
        "faithfulness": {},
    }
    for name in [*methods, "random"]:
        rows = {"all": records, "span": [r for r in records if not r.no_answer],
                "null": [r for r in records if r.no_answer]}
        summary["faithfulness"][name] = {
            f"{key}_{group}": mean([(r.random if name == "random" else r.methods[name])[key] for r in subset])
            for group, subset in rows.items() for key in ("comprehensiveness", "sufficiency")
        } | {"explained_span": len(rows["span"]), "explained_null": len(rows["null"])}
    return summary


def table(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table (what docs/evaluation.md shows)."""
    first = next(iter(summary["faithfulness"].values()))
    lines = [
        f"questions: {summary['questions']} (with answer {summary['has_answer']['questions']}, "
        f"without {summary['no_answer']['questions']})",
        f"EM {summary['exact']:.1f}  F1 {summary['f1']:.1f}  (with answer: EM {summary['has_answer']['exact']:.1f} "
        f"F1 {summary['has_answer']['f1']:.1f}; without: EM {summary['no_answer']['exact']:.1f})",
        f"AUROC of P(start)*P(end) for 'answer is right': {summary['confidence_auroc']:.3f}",
        f"explained: {first['explained_span']} span answers, {first['explained_null']} no-answers"
        + (" (hiding passage words mostly raises a no-answer score: negative values there)"
           if first["explained_null"] else ""),
        "",
        "| method | comprehensiveness | sufficiency | comp. (span answers) | suff. (span answers) "
        "| comp. (no-answer) | suff. (no-answer) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["faithfulness"].items():
        label = "random tokens (baseline)" if name == "random" else name
        lines.append(f"| {label} | {row['comprehensiveness_all']:.3f} | {row['sufficiency_all']:.3f} "
                     f"| {row['comprehensiveness_span']:.3f} | {row['sufficiency_span']:.3f} "
                     f"| {row['comprehensiveness_null']:.3f} | {row['sufficiency_null']:.3f} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    from explain_core.engine.saliency import METHODS

    parser = argparse.ArgumentParser(prog="qa-eval", description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a SQuAD-format JSON file (v1.1 or v2.0)")
    parser.add_argument("--model", default=None,
                        help=f"hub name or local folder (default: $QA_MODEL or {default_model()})")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated saliency methods (default: all of {', '.join(METHODS)})")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (summary, and per-question records under 'records')")
    parser.add_argument("--no-null", action="store_true",
                        help="never answer 'no answer' (for SQuAD1-style models without a null answer)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        from explain_core.engine.saliency import METHODS

        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise InputError("unknown_method", f"unknown method(s) {', '.join(unknown) or '(none)'}; "
                                               f"choose from: {', '.join(METHODS)}")
        if args.limit is not None and args.limit < 1:
            raise InputError("bad_limit", "--limit must be a positive number of questions")
        questions = load_squad(args.data)[:args.limit]
        settings = DecodeSettings(handle_impossible_answer=not args.no_null)
        records, seconds = evaluate(questions, args.model or default_model(), {m: m for m in methods}, settings)
    except InputError as exc:
        print(f"qa-eval: error: {exc.message}", file=sys.stderr)
        sys.exit(2)
    summary = aggregate(records, methods) | {"model": args.model or default_model(), "data": str(args.data),
                                              "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    if args.json:
        print(json.dumps(summary | {"records": [r.__dict__ for r in records]}))
    else:
        print(table(summary))
        print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in summary["seconds"].items()))


if __name__ == "__main__":
    main()
