"""The worker's side of the protocol without TensorFlow: answer queued jobs with made-up results.

Bot tests use it to produce results through the real Redis protocol (`JobQueue.finish`) at
the moment they choose, which a real worker process cannot be told to do.
"""
from __future__ import annotations

from collections.abc import Callable

from explain_core.present.summary import AnswerSummary, TopWord
from explain_core.queue import Finished, Job, JobQueue, JobResult, ResultImage

PNG = b"\x89PNG\r\n\x1a\n" + b"picture bytes"


def summary(answer: str = "The Normans", model: str = "tiny-bert", **changes: object) -> AnswerSummary:
    """One model's answer as the worker summarises it (the sentence holds the answer)."""
    values: dict = dict(answer=answer, confidence=0.87, no_answer=False,
                        sentence="The Normans gave their name to Normandy, a region in France.",
                        answer_start=0, answer_end=11,
                        top_words=[TopWord("Normans", 1.0, "passage"), TopWord("name", 0.5, "question")],
                        model=model, model_label=model, method="vanilla", method_label="vanilla gradient",
                        latency_ms=123.0, windows=1)
    values.update(changes)
    return AnswerSummary(**values)


def answer_jobs(queue: JobQueue, make: Callable[[Job], JobResult] | None = None,
                consumer: str = "test-worker") -> list[Job]:
    """Act as the worker for every job in the stream now: answer it with `make(job)` (default:
    one answer and one picture) and finish it, which writes the result and acks the job."""
    entries = queue.read_jobs(consumer, count=50, block_ms=100)
    jobs = [Job.from_json(e.payload) for e in entries]
    finished = []
    for entry, job in zip(entries, jobs):
        result = make(job) if make else JobResult(
            key=job.key, reply_to=job.reply_to, ok=True, answers=[summary()],
            images=[ResultImage(PNG, "Heat map of the passage; Normans weighs most.", "tiny-bert")])
        finished.append(Finished(entry.entry_id, result))
    queue.finish(finished)
    return jobs
