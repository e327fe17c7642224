"""`qa-explain`: answer and explain in-process, without Redis or Slack.

One question (`--question` with `--passage`, `--passage-file` or stdin), printed for a person
or as one JSON object (`--json`); or many (`--jsonl FILE`), one JSON object per line in and
out, with the model loaded once. Input the user got wrong exits 2 with a one-line message.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from explain_core import defaults
from explain_core.errors import ConfigError, InputError
from explain_core.explanation import Explanation
from explain_core.present.summary import summarize
from explain_core.settings import DecodeSettings, compare_models, default_model

TOP_WORDS = 8


def _parser() -> argparse.ArgumentParser:
    from explain_core.engine.saliency import METHODS

    parser = argparse.ArgumentParser(prog="qa-explain", description=__doc__.splitlines()[0])
    parser.add_argument("--question", "-q", help="the question to answer")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--passage", "-p", help="the passage text (default: read it from stdin)")
    source.add_argument("--passage-file", type=Path, help="a UTF-8 text file holding the passage")
    source.add_argument("--jsonl", metavar="FILE",
                        help='batch: one {"id"?, "question", "passage"} per line ("-" = stdin)')
    parser.add_argument("--model", default=None,
                        help=f"hub name or local folder (default: $QA_MODEL or {default_model()})")
    parser.add_argument("--method", default=defaults.METHOD, choices=METHODS, help="saliency method")
    parser.add_argument("--png", type=Path, help="write the saliency picture to this PNG file")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--faithfulness", action="store_true",
                        help="also measure how much the answer depends on the most salient words")
    parser.add_argument("--compare", action="store_true",
                        help="answer with every model in $QA_MODELS (comma-separated) and show them side by side")
    parser.add_argument("--no-null", action="store_true",
                        help="never answer 'no answer' (for SQuAD1-style models without a null answer)")
    return parser


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("bad_file", f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise InputError("bad_file", f"cannot read {path}: {exc.strerror or exc}") from None


def _passage(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.passage is not None:
        return args.passage
    if args.passage_file is not None:
        return _read_text(args.passage_file)
    try:
        return stdin.read()
    except UnicodeDecodeError:
        raise InputError("bad_file", "standard input is not UTF-8 text") from None


def _jsonl_items(handle: TextIO) -> Iterator[tuple[Any, str, str]]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            yield item.get("id"), item["question"], item["passage"]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise InputError("bad_jsonl",
                             f"line {number}: expected a JSON object with 'question' and 'passage'") from None


def _human(exp: Explanation) -> str:
    head = "no answer found" if exp.no_answer else f"answer: {exp.answer}"
    lines = [head, f"confidence: {exp.score:.1%}  (model {exp.model}, method {exp.method}, "
                   f"{exp.windows} window{'s' if exp.windows != 1 else ''}, {exp.timings_ms.get('total', 0):.0f} ms)"]
    if exp.faithfulness is not None:
        lines.append(f"faithfulness: {exp.faithfulness.sentence}")
    if exp.no_answer and exp.best_rejected:
        lines.append(f"best rejected span: {exp.best_rejected.answer!r} ({exp.best_rejected.score:.1%})")
    lines.append("top words: " + ", ".join(f"{w.text} ({w.weight:+.2f})" if exp.signed else f"{w.text} ({w.weight:.2f})"
                                          for w in summarize(exp, k=TOP_WORDS).top_words))
    return "\n".join(lines)


def _write_png(results: list[Explanation], path: Path) -> None:
    from explain_core.render import render_comparison, render_png

    image = render_png(results[0]) if len(results) == 1 else render_comparison(results)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image.png)
    except OSError as exc:
        raise InputError("bad_file", f"cannot write {path}: {exc.strerror or exc}") from None


def run(argv: list[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """The CLI without `sys.exit`, so tests can call it in-process."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    args = _parser().parse_args(argv)
    settings = DecodeSettings(handle_impossible_answer=not args.no_null)
    from explain_core.engine import explain, explain_batch, load_model

    if args.jsonl is not None:
        handle = stdin if args.jsonl == "-" else open(args.jsonl, encoding="utf-8")
        with handle:
            items = list(_jsonl_items(handle))
        qa = load_model(args.model or default_model())
        outcomes = explain_batch([(q, p) for _, q, p in items], model=qa, method=args.method, settings=settings)
        for (item_id, _, _), result in zip(items, outcomes):
            record: dict[str, Any] = {"id": item_id} if item_id is not None else {}
            if isinstance(result, InputError):
                record["error"] = {"code": result.code, "message": result.message}
            else:
                record.update(result.to_dict())
            stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return 0

    if not args.question:
        raise InputError("empty_question", "--question is required (or use --jsonl)")
    passage = _passage(args, stdin)
    models = compare_models() if args.compare else [args.model]
    results = [explain(args.question, passage, model=name, method=args.method, settings=settings,
                       faithfulness=args.faithfulness) for name in models]
    if args.png:
        _write_png(results, args.png)
    if args.json:
        payload = {"compare": [r.to_dict() for r in results]} if args.compare else results[0].to_dict()
        stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    else:
        stdout.write("\n\n".join(_human(r) for r in results) + "\n")
        if args.png:
            stdout.write(f"picture: {args.png}\n")
    return 0


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # keep loading chatter off the user's screen
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = run(argv)
    except (InputError, ConfigError) as exc:
        print(f"qa-explain: error: {exc}", file=sys.stderr)
        code = 2
    except OSError as exc:  # e.g. the --jsonl file cannot be opened
        print(f"qa-explain: error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
