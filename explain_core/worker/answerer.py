"""Jobs in, results out: the worker's computation without Redis (what bench measures alone).

Jobs of one batch that share a model and a method go through `explain_batch` together; if
that raises, they are answered one by one so that one poison job fails alone.
"""
from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import explain_core
from explain_core.errors import InputError
from explain_core.explanation import Explanation
from explain_core.present.summary import summarize
from explain_core.queue import Job, JobResult, ResultImage, WorkerInfo
from explain_core.render import render_png

if TYPE_CHECKING:  # the engine imports TensorFlow: only on first use, so `qa-worker --check` stays light
    from explain_core.engine import QAModel

log = logging.getLogger(__name__)

Outcome = Explanation | InputError | Exception
# (job, windows read, windows in all): how far a long passage has got
JobProgress = Callable[["Ready", int, int], None]


@dataclass(frozen=True)
class Ready:
    """A job with its passage in hand, ready to compute."""

    job_id: str
    job: Job
    passage: str


class Answerer:
    """Jobs in, results out: the worker's computation without Redis (what bench measures alone).

    Jobs of one batch that share a model and a method go through `explain_batch` together;
    if that raises, they are answered one by one so that one poison job fails alone.
    Models come from the engine's `load_model`, which keeps them loaded (LRU, QA_MODEL_CACHE).
    Only the configured models are served: a job cannot make the worker fetch any checkpoint.
    Every answer carries its faithfulness scores (a few masked forward passes, batched), so
    each reply says how much the answer depends on the words the picture highlights.
    """

    def __init__(self, model: str, compare_models: Sequence[str] = (), batch: bool = True) -> None:
        self.model = model
        self.compare_models = tuple(compare_models)
        self.allowed = {model, *self.compare_models}
        self.batch = batch

    def warm_up(self) -> None:
        """Load the default model, trace its graphs and answer once, so that the first user
        does not wait for any of it (a trace takes seconds)."""
        explain_core.load_model(self.model).trace()
        explain_core.explain("Is this a warm-up?", "This is a warm-up.", model=self.model, faithfulness=True)

    def info(self) -> WorkerInfo:
        """What this worker offers, for its heartbeat (it imports the engine: a serving worker only)."""
        from explain_core.engine.saliency import METHODS  # noqa: PLC0415 - TensorFlow, see TYPE_CHECKING above

        return WorkerInfo(model=self.model, models=list(self.compare_models) or [self.model], methods=sorted(METHODS))

    def answer(self, ready: Sequence[Ready], progress: JobProgress | None = None) -> list[JobResult | Exception]:
        """A result per job, or the exception that the model raised on it (to retry);
        `progress` hears how far each long passage has been read."""
        slots: list[list[str]] = [self._models(item.job) for item in ready]
        groups: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        for i, (item, models) in enumerate(zip(ready, slots)):
            for s, model in enumerate(models):
                groups[(model, item.job.options.method)].append((i, s))
        outcomes: dict[tuple[int, int], Outcome] = {}
        compute_ms: dict[int, float] = defaultdict(float)
        batch_size: dict[int, int] = defaultdict(int)
        for (model, method), members in groups.items():
            started = time.perf_counter()
            items = [(ready[i].job.question, ready[i].passage) for i, _ in members]

            def relay(j: int, done: int, total: int, members: list[tuple[int, int]] = members) -> None:
                if progress is not None:
                    progress(ready[members[j][0]], done, total)

            for member, outcome in zip(members, self._run(model, method, items, relay)):
                outcomes[member] = outcome
            elapsed = (time.perf_counter() - started) * 1000
            for i, _ in members:
                compute_ms[i] += elapsed
                batch_size[i] = max(batch_size[i], len(members))
        results: list[JobResult | Exception] = []
        for i, (item, models) in enumerate(zip(ready, slots)):
            timings = {"wait_ms": round(max(0.0, time.time() - item.job.enqueued_at) * 1000, 1),
                       "compute_ms": round(compute_ms[i], 1), "batch": batch_size[i]}
            results.append(self._result(item, [outcomes[(i, s)] for s in range(len(models))], timings))
        return results

    def _models(self, job: Job) -> list[str]:
        """The models a job asks for: every one of QA_MODELS for a comparison (the default
        model alone when QA_MODELS is unset), else the one it names or the default."""
        if job.options.compare:
            return list(self.compare_models) or [self.model]
        return [job.options.model or self.model]

    def _run(self, model: str, method: str, items: list[tuple[str, str]],
             progress: Callable[[int, int, int], None]) -> list[Outcome]:
        """One outcome per (question, passage), all with `model` and `method`."""
        if model not in self.allowed:
            served = ", ".join(sorted(self.allowed))
            return [InputError("unknown_model", f"this service does not offer the model '{model}'; "
                                                f"it offers: {served}")] * len(items)
        try:
            qa = explain_core.load_model(model)
        except Exception as exc:  # noqa: BLE001 - cannot load (InputError) or crashed loading: every job's
            return [exc] * len(items)
        if len(items) > 1 and self.batch:
            try:
                return list(explain_core.explain_batch(items, model=qa, method=method, faithfulness=True,
                                                       progress=progress))
            except InputError as exc:  # an unknown method: every job's error
                return [exc] * len(items)
            except Exception as exc:  # noqa: BLE001 - find the job that broke the batch, one by one
                log.warning("a batch of %d failed (%r); answering its jobs one by one", len(items), exc)
        return [self._one(qa, question, passage, method, functools.partial(_shifted, progress, j))
                for j, (question, passage) in enumerate(items)]

    @staticmethod
    def _one(qa: QAModel, question: str, passage: str, method: str,
             progress: Callable[[int, int, int], None]) -> Outcome:
        try:
            found = explain_core.explain_batch([(question, passage)], model=qa, method=method, faithfulness=True,
                                               progress=progress)[0]
        except Exception as exc:  # noqa: BLE001 - a poison input must not kill the worker
            return exc
        return found

    def _result(self, item: Ready, outcomes: list[Outcome], timings: dict[str, float]) -> JobResult | Exception:
        failure = next((o for o in outcomes if isinstance(o, Exception) and not isinstance(o, InputError)), None)
        if failure is not None:
            return failure
        rejected = next((o for o in outcomes if isinstance(o, InputError)), None)
        if rejected is not None:
            return JobResult.failure(item.job_id, item.job.key, item.job.reply_to, rejected.code,
                                     rejected.message, timings)
        explanations = [o for o in outcomes if isinstance(o, Explanation)]
        offers = list(self.compare_models)
        started = time.perf_counter()
        try:
            answers = [summarize(exp) for exp in explanations]
            images = []
            for exp in explanations:
                picture = render_png(exp)
                images.append(ResultImage(picture.png, picture.alt_text, exp.model))
        except Exception as exc:  # noqa: BLE001 - a rendering bug is retried like a model failure
            return exc
        timings["render_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return JobResult(key=item.job.key, reply_to=item.job.reply_to, ok=True, answers=answers, images=images,
                         timings_ms=timings, job_id=item.job_id, offers=offers)


def _shifted(progress: Callable[[int, int, int], None], index: int, _item: int, done: int, total: int) -> None:
    """A one-question run's progress, reported under the question's index in its group."""
    progress(index, done, total)
