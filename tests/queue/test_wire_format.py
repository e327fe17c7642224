"""The Redis wire format, version 1, pinned by messages the pre-redesign code wrote.

The files in data/ were written by the release before the typed messages (the dict-based
`explain_core/jobs.py`). A bot and a worker of different releases share one Redis during a
rolling deploy, so each side must read the other's messages and write exactly what the
other reads: here, the new types read every file and write back the same JSON (same keys,
values and nesting; a count among the float timings comes back as 2.0 for 2, which JSON
readers take as the same number).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from explain_core.present.summary import AnswerSummary, RejectedSpan, TopWord
from explain_core.queue import DeadLetter, Job, JobError, JobOptions, JobResult, ReplyTo, ResultImage

DATA = Path(__file__).parent / "data"
REPLY_TO = ReplyTo(team="T1", channel="C1", thread_ts="1700000000.000100", user="U1", question="Who built it? \ud83d",
                   asker="U1")

EXPECTED = {
    "job_inline": Job(key="command:T1:trigger", question="Who built it? \ud83d", options=JobOptions(),
                      reply_to=REPLY_TO, enqueued_at=1700000000.25, passage="It was built by Robert Stevenson. é"),
    "job_by_reference": Job(key="event:T1:C1:1.2", question="When?",
                            options=JobOptions("integrated_gradients", "m", True), reply_to=REPLY_TO,
                            enqueued_at=1700000001.0, passage_ref="qa:passage:" + "ab" * 32),
    "result_answered": JobResult(
        key="command:T1:trigger", reply_to=REPLY_TO, ok=True,
        answers=[
            AnswerSummary(answer="Robert Stevenson", confidence=0.944, no_answer=False,
                          sentence="It was built by the engineer Robert Stevenson.", answer_start=28, answer_end=44,
                          top_words=[TopWord("engineer", 1.0, "passage"), TopWord("Who", 0.37, "question")],
                          model="minilm", model_label="minilm", method="vanilla", method_label="vanilla gradient",
                          latency_ms=61.5, windows=1,
                          faithfulness="hiding the 10% most salient passage words drops the confidence "
                                       "from 94% to 12%"),
            AnswerSummary(answer="", confidence=0.64, no_answer=True, sentence="", answer_start=0, answer_end=0,
                          top_words=[], model="minilm", model_label="minilm", method="smoothgrad",
                          method_label="SmoothGrad", latency_ms=None, windows=3,
                          best_rejected=RejectedSpan("Rollo", 0.12)),
        ],
        images=[ResultImage(b"\x89PNG\r\n\x1a\n\x00\xff", "alt text", "minilm")],
        timings_ms={"wait_ms": 3.5, "compute_ms": 120.25, "batch": 2, "render_ms": 40.0}, job_id="1700000000250-0"),
    "result_failed": JobResult.failure("1-0", "k", REPLY_TO, "passage_too_long", "The passage has 300,001 characters"),
    "dead_letter": DeadLetter("1-0", '{"v": 99}', JobError("bad_job", "unreadable"), 3, 1700000002.5),
}
READERS = {"job": Job, "result": JobResult, "dead": DeadLetter}


# Optional fields version 1 grew after the pinned messages were written: an old writer leaves
# them out (they read back as their default), an old reader ignores them, so they are written
# with their default. By where they sit: the message itself, its reply_to, each of its answers.
ADDED_LATER: dict[str, dict[str, object]] = {
    "": {"offers": []},
    "reply_to": {"ts": None, "response_url": None, "doc_ts": None,
                 "enterprise_id": None, "is_enterprise_install": False},
    "answers": {"alternatives": []},
}


def _without_defaults(data: dict, added: dict[str, object]) -> dict:
    return {k: v for k, v in data.items() if not (k in added and v == added[k])}


def _without_added_nulls(data: dict) -> dict:
    out = _without_defaults(data, ADDED_LATER[""])
    if isinstance(out.get("reply_to"), dict):
        out["reply_to"] = _without_defaults(out["reply_to"], ADDED_LATER["reply_to"])
    if isinstance(out.get("answers"), list):
        out["answers"] = [_without_defaults(a, ADDED_LATER["answers"]) for a in out["answers"]]
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_version_1_messages_read_and_write_back_the_same_json(name: str) -> None:
    text = (DATA / f"{name}.json").read_text(encoding="ascii").strip()
    message = READERS[name.split("_")[0]].from_json(text)
    assert message == EXPECTED[name]
    written = _without_added_nulls(json.loads(message.to_json()))
    assert written == json.loads(text)
    assert list(written) == list(json.loads(text))  # and the same field order


def test_fields_added_to_version_1_travel_and_old_readers_ignore_them() -> None:
    reply_to = ReplyTo(team="T1", channel="C1", user="U1", ts="1700000000.000200",
                       response_url="https://hooks.slack.com/commands/T1/1/x")
    job = Job(key="k", question="q", reply_to=reply_to, passage="p")
    assert Job.from_json(job.to_json()).reply_to == reply_to
    pinned = json.loads((DATA / "job_inline.json").read_text(encoding="ascii"))
    pinned["reply_to"]["ts"] = "1.2"
    pinned["reply_to"]["from_a_newer_writer"] = "ignored"
    assert Job.from_json(json.dumps(pinned)).reply_to.ts == "1.2"
