"""`qa-explain`: answer and explain in-process, without Redis or Slack.

One question (`--question` with `--passage`, `--passage-file` or stdin), printed for a person
or as one JSON object (`--json`); or many (`--jsonl FILE`), one JSON object per line in and
out, with the model loaded once. Input the user got wrong exits 2 with a one-line message.
"""
from __future__ import annotations

import argparse
import atexit
import gc
import itertools
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
from explain_core.settings import DecodeSettings, compare_models, default_model, max_passage_chars
from explain_core.wording import count

TOP_WORDS = 8
JSON_CHARS_PER_CHAR = 12  # the longest JSON spelling of one character: a surrogate pair, \ud83d\ude00
JSONL_LINE_SLACK = 64 * 1024  # the question, the id and the JSON around the passage


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


def _jsonl_lines(handle: TextIO, limit: int) -> Iterator[tuple[int, str | None]]:
    """Each line with its number, or None for a line over `limit` characters, which is
    skipped without ever being held whole (a file of one endless line costs `limit`)."""
    number = 0
    while True:
        try:
            line = handle.readline(limit + 1)
        except UnicodeDecodeError:
            raise InputError("bad_file", f"line {number + 1} of the --jsonl input is not UTF-8 text") from None
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith("\n"):
            while line and not line.endswith("\n"):
                line = handle.readline(limit + 1)
            yield number, None
        else:
            yield number, line


def _jsonl_records(handle: TextIO) -> Iterator[tuple[int, Any, str, str] | dict[str, Any]]:
    """One item per non-blank line: (line, id, question, passage), or the error record
    that stands in its place in the output."""
    limit = JSON_CHARS_PER_CHAR * max_passage_chars() + JSONL_LINE_SLACK
    for number, line in _jsonl_lines(handle, limit):
        if line is None:
            yield _error_record(None, InputError("bad_jsonl", f"line {number} is over {count(limit, 'character')}"))
            continue
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, too deep, an integer too long
            item = None
        if isinstance(item, dict) and "question" in item and "passage" in item:
            yield number, item.get("id"), item["question"], item["passage"]
        else:
            yield _error_record(item.get("id") if isinstance(item, dict) else None, InputError(
                "bad_jsonl", f"line {number}: expected a JSON object with 'question' and 'passage'"))


def _error_record(item_id: Any, error: InputError) -> dict[str, Any]:
    record: dict[str, Any] = {"id": item_id} if item_id is not None else {}
    record["error"] = {"code": error.code, "message": error.message}
    return record


def _run_jsonl(handle: TextIO, stdout: TextIO, qa: Any, method: str, settings: DecodeSettings) -> None:
    """Answer `--jsonl` input in chunks of `defaults.JSONL_CHUNK` lines, writing each chunk's results
    as soon as they are ready: memory is bounded by the chunk, not by the input's length.

    A run of more than one question runs the model's graphs traced from their first call: eager calls
    cost a 12-layer model about 1 GB more RSS than the graph and are slower, so only a single
    question, which would not earn the trace back, runs eagerly. Tracing only when a second chunk
    comes was measured and dropped: a first chunk of 16 questions run eagerly peaked at 3.5 GB with
    a RoBERTa-base-size model, against 2.3 GB traced (docs/benchmarks.md, "Memory").
    """
    from explain_core.engine import explain_batch

    records = _jsonl_records(handle)
    traced = False
    while chunk := list(itertools.islice(records, defaults.JSONL_CHUNK)):
        items = [r for r in chunk if isinstance(r, tuple)]
        if not traced and len(items) > 1:
            qa.trace(on_first_use=True)
            traced = True
        outcomes = iter(explain_batch([(q, p) for _, _, q, p in items], model=qa, method=method, settings=settings)
                        if items else [])
        for record in chunk:
            if isinstance(record, tuple):
                result = next(outcomes)
                item_id = record[1]
                if isinstance(result, InputError):
                    record = _error_record(item_id, result)
                else:
                    record = {"id": item_id, **result.to_dict()} if item_id is not None else result.to_dict()
            stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        stdout.flush()


def _human(exp: Explanation) -> str:
    head = "no answer found" if exp.no_answer else f"answer: {exp.answer}"
    lines = [head, f"confidence: {exp.score:.1%}  (model {exp.model}, method {exp.method}, "
                   f"{count(exp.windows, 'window')}, {exp.timings_ms.get('total', 0):.0f} ms)"]
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
    from explain_core.engine import explain, load_model

    if args.jsonl is not None:
        qa = load_model(args.model or default_model())
        handle = stdin if args.jsonl == "-" else open(args.jsonl, encoding="utf-8")
        with handle:
            _run_jsonl(handle, stdout, qa, args.method, settings)
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
    # When the process exits, Python collects garbage over every object still alive, and TensorFlow
    # and the model leave millions: 0.7 s after the answer is out, a sixth of a one-question run.
    # Frozen objects are left out of those collections. Nothing of ours needs one to release
    # anything (files are closed where they are used; atexit callbacks still run).
    atexit.register(gc.freeze)
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
