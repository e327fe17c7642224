"""`qa-explain`: the JSON contract of DESIGN.md, the batch form, and one-line errors with exit code 2."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from explain_core.cli import main, run

PASSAGE = "The Bell Rock Lighthouse was built by Robert Stevenson between 1807 and 1810 off the coast of Scotland."


def _json(argv: list[str], stdin: str = "") -> dict:
    out = io.StringIO()
    assert run(argv + ["--json"], stdin=io.StringIO(stdin), stdout=out) == 0
    return json.loads(out.getvalue())


def _error(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str = "") -> str:
    sys.stdin = io.StringIO(stdin)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
    finally:
        sys.stdin = sys.__stdin__
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qa-explain: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_json_output_follows_the_contract(tiny_model_dir):
    result = _json(["--question", "Who built the lighthouse?", "--passage", PASSAGE, "--model", str(tiny_model_dir)])
    for key in ("answer", "score", "start", "end", "no_answer", "model", "method", "tokens", "words", "timings_ms"):
        assert key in result
    assert result["answer"] == PASSAGE[result["start"]:result["end"]]
    assert 0.0 <= result["score"] <= 1.0 and result["method"] == "vanilla"
    texts = {"question": "Who built the lighthouse?", "passage": PASSAGE}
    for item in result["tokens"] + result["words"]:
        assert set(item) == {"text", "start", "end", "weight", "segment"}
        assert texts[item["segment"]][item["start"]:item["end"]] == item["text"]
    # evidence: the words by |weight|, the answer's left out (words keeps them, for the heatmap)
    def in_answer(w: dict) -> bool:
        return w["segment"] == "passage" and w["start"] < result["end"] and w["end"] > result["start"]
    assert result["evidence"] and not any(in_answer(w) for w in result["evidence"])
    assert any(in_answer(w) for w in result["words"]) and all(w in result["words"] for w in result["evidence"])
    assert [abs(w["weight"]) for w in result["evidence"]] == sorted((abs(w["weight"]) for w in result["evidence"]),
                                                                     reverse=True)


def test_passage_from_file_and_stdin_agree(tiny_model_dir, tmp_path):
    path = tmp_path / "passage.txt"
    path.write_text(PASSAGE, encoding="utf-8")
    common = ["--question", "When was it built?", "--model", str(tiny_model_dir), "--method", "grad_x_input"]
    from_file = _json(common + ["--passage-file", str(path)])
    from_stdin = _json(common, stdin=PASSAGE)
    assert (from_file["answer"], from_file["start"], from_file["method"]) == (
        from_stdin["answer"], from_stdin["start"], "grad_x_input")


def test_jsonl_batch_keeps_order_ids_and_per_line_errors(tiny_model_dir, tmp_path):
    lines = [
        {"id": "a", "question": "Who built it?", "passage": PASSAGE},
        {"id": 7, "question": "  ", "passage": PASSAGE},
        {"question": "Where is it?", "passage": PASSAGE + " " + PASSAGE * 40},
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    out = io.StringIO()
    assert run(["--jsonl", str(path), "--model", str(tiny_model_dir)], stdout=out) == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r.get("id") for r in records] == ["a", 7, None]
    assert records[1]["error"]["code"] == "empty_question"
    assert records[0]["answer"] == PASSAGE[records[0]["start"]:records[0]["end"]]
    assert records[2]["windows"] > 1


def test_png_is_written(tiny_model_dir, tmp_path):
    png = tmp_path / "out" / "x.png"
    _json(["-q", "Who built it?", "-p", PASSAGE, "--model", str(tiny_model_dir), "--png", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["--question", " ", "--passage", PASSAGE], "", "question is empty"),
        (["--question", "Who?", "--passage", " \n "], "", "passage has no text"),
        (["--question", "Who?"], "", "passage has no text"),
        (["--question", "Who?", "--passage-file", "/nonexistent/p.txt"], "", "cannot read"),
        (["--question", "Who?", "--passage", PASSAGE, "--model", "/nonexistent/model"], "", "cannot load model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_model_dir, capsys, argv, stdin, message):
    if "--model" not in argv:
        argv = argv + ["--model", str(tiny_model_dir)]
    assert message in _error(argv, capsys, stdin)


def test_too_long_and_non_utf8_passages(tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QA_MAX_PASSAGE_CHARS", "50")
    assert "limit is 50" in _error(["-q", "Who?", "-p", PASSAGE, "--model", str(tiny_model_dir)], capsys)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    assert "not UTF-8" in _error(["-q", "Who?", "--passage-file", str(latin1), "--model", str(tiny_model_dir)], capsys)


def test_unknown_method_exits_2():
    done = subprocess.run([sys.executable, "-m", "explain_core.cli", "-q", "x", "-p", "y", "--method", "magic"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "invalid choice: 'magic'" in done.stderr


def test_long_question_is_truncated_with_a_warning(tiny_model_dir, caplog):
    question = "Who " + "really " * 100 + "built it?"
    result = _json(["-q", question, "-p", PASSAGE, "--model", str(tiny_model_dir)])
    assert result["question_truncated"] is True
    assert "truncated to 64" in caplog.text
    assert max(t["end"] for t in result["tokens"] if t["segment"] == "question") < len(question)


def test_jsonl_streams_results_before_the_input_ends(tiny_model_dir):
    """A reader still writing its input already gets the first chunk's results: nothing waits
    for the end of the input, so memory does not grow with the number of lines."""
    import select
    import threading

    from explain_core import defaults

    read_fd, write_fd = os.pipe()
    out_read_fd, out_write_fd = os.pipe()
    with open(read_fd, encoding="utf-8") as stdin, open(out_write_fd, "w", encoding="utf-8") as stdout, \
            open(write_fd, "w", encoding="utf-8") as feed, open(out_read_fd, encoding="utf-8") as results:
        worker = threading.Thread(target=run, args=(["--jsonl", "-", "--model", str(tiny_model_dir)], stdin, stdout))
        worker.start()
        line = json.dumps({"question": "Who built it?", "passage": PASSAGE}) + "\n"
        feed.write(line * defaults.JSONL_CHUNK)
        feed.flush()
        ready, _, _ = select.select([results], [], [], 120)  # the input is still open
        if not ready:
            feed.close()
            pytest.fail("no result before the end of the input")
        first = [json.loads(results.readline()) for _ in range(defaults.JSONL_CHUNK)]
        assert all(r["answer"] == PASSAGE[r["start"]:r["end"]] for r in first)
        feed.write(line)
        feed.close()
        worker.join(timeout=120)
        stdout.close()
        assert len(results.read().splitlines()) == 1


def test_jsonl_bad_and_endless_lines_become_error_records_in_place(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("QA_MAX_PASSAGE_CHARS", "100")
    good = json.dumps({"id": "ok", "question": "Who built it?", "passage": "Robert Stevenson built it."})
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join([
        good, "{not json", json.dumps({"id": 3, "question": "no passage"}), "x" * 2_000_000, "[" * 100_000,
        '{"id": ' + "9" * 5000 + "}", good]) + "\n",
        encoding="utf-8")
    out = io.StringIO()
    assert run(["--jsonl", str(path), "--model", str(tiny_model_dir)], stdout=out) == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r.get("id") for r in records] == ["ok", None, 3, None, None, None, "ok"]
    assert [r.get("error", {}).get("code") for r in records] == [None] + ["bad_jsonl"] * 5 + [None]
    assert "line 4 is over" in records[3]["error"]["message"]


@pytest.mark.parametrize(("lines", "traced"), [(1, 0), (2, 1)])
def test_jsonl_of_more_than_one_line_traces_before_its_first_pass(tiny_model_dir, tmp_path, monkeypatch, lines,
                                                                  traced):
    """Eager calls cost a 12-layer model ~1 GB more RSS than the graph: a run that will make more
    than one pass traces first; a single question keeps the eager cold start."""
    import explain_core.engine
    from explain_core.engine.model import QAModel

    shared = explain_core.engine.load_model(str(tiny_model_dir))
    fresh = QAModel(shared.name, shared.model, shared.tokenizer)  # same weights, untraced graph functions
    monkeypatch.setattr(explain_core.engine, "load_model", lambda _name: fresh)
    path = tmp_path / "batch.jsonl"
    path.write_text("".join(json.dumps({"question": "Who built it?", "passage": "Robert Stevenson built it."}) + "\n"
                            for _ in range(lines)), encoding="utf-8")
    assert run(["--jsonl", str(path), "--model", str(tiny_model_dir)], stdout=io.StringIO()) == 0
    assert fresh.answer_and_gradient.tracing_count() == traced
    assert fresh.gradient_at.tracing_count() == fresh.logits.tracing_count() == 0  # one-window passages need neither
