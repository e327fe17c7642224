"""The engine's answers equal the transformers question-answering pipeline's.

DESIGN.md promises decoding "equivalent to the transformers question-answering pipeline";
users compare the bot with the pipeline they know, so any drift (window borders, offsets of
unknown words, the no-answer rule, the score) is a bug. Each tokenizer family is checked on
generated pairs, most of which need several windows at max_seq_len 384 / stride 128.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.qa_pairs import generate_pairs

# xdist: the whole module runs in one test process, so the pipelines are built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engine.test_pipeline_parity")]

KINDS = ("bert", "distilbert", "roberta")
N_PAIRS = 200
N_IMPOSSIBLE = 50  # handle_impossible_answer=True on a subset: the rule only adds one comparison
N_ALTERNATIVES = 20  # top_k=3 reuses the decoding checked above; a one-off run on SQuAD checks more
SCORE_TOLERANCE = 1e-4
PAIRS = generate_pairs(N_PAIRS, seed=1234)


@pytest.fixture(scope="module")
def pipelines(tiny_model_dirs: dict[str, Path]) -> Callable[[str], Any]:
    """The reference pipeline of each tiny model, built on first use and kept for the module.

    The TF pipeline runs its model eagerly, one window per call, which costs ~50 ms of op
    dispatch per window even on a 2-layer model: most of this module's time. The model's
    `call` is therefore compiled with tf.function. The pipeline's own pre- and post-processing
    (what parity is about) is untouched, and the compiled model gives the same logits:
    checked here against the eager pipeline on a few pairs before it is used.
    """
    import tensorflow as tf
    from transformers import AutoTokenizer, TFAutoModelForQuestionAnswering, pipeline

    built: dict[str, Any] = {}

    def get(kind: str) -> Any:
        if kind not in built:
            path = tiny_model_dirs[kind]

            def make(compiled: bool) -> Any:
                model = TFAutoModelForQuestionAnswering.from_pretrained(path)
                if compiled:
                    model.call = tf.function(model.call, reduce_retracing=True)
                # dtype=None: without it the TF pipeline reaches for torch (../shared/models/README.md).
                return pipeline("question-answering", model=model, tokenizer=AutoTokenizer.from_pretrained(path),
                                framework="tf", dtype=None)

            eager, compiled = make(False), make(True)
            for question, passage in PAIRS[:3]:
                want, got = eager(question=question, context=passage), compiled(question=question, context=passage)
                assert (got["start"], got["end"]) == (want["start"], want["end"])
                assert abs(got["score"] - want["score"]) <= 1e-6
            built[kind] = compiled
        return built[kind]

    return get


def _mismatch(ours: dict[str, Any], theirs: dict[str, Any], passage: str) -> str | None:
    """Why the two answers differ, or None when they agree."""
    if ours["answer"] != passage[ours["start"]:ours["end"]]:
        return "answer is not passage[start:end]"
    if (ours["answer"], ours["start"], ours["end"]) != (theirs["answer"], theirs["start"], theirs["end"]):
        return "different span"
    if abs(ours["score"] - theirs["score"]) > SCORE_TOLERANCE:
        return "different score"
    return None


@pytest.mark.parametrize(
    ("kind", "handle_impossible"),
    [(kind, False) for kind in KINDS] + [(kind, True) for kind in KINDS],
)
def test_answers_equal_the_pipeline(
    kind: str, handle_impossible: bool, tiny_model_dirs: dict[str, Path], pipelines: Callable[[str], Any]
) -> None:
    from explain_core import explain
    from explain_core.settings import DecodeSettings

    settings = DecodeSettings(handle_impossible_answer=handle_impossible)
    pairs = PAIRS[:N_IMPOSSIBLE] if handle_impossible else PAIRS
    pipe = pipelines(kind)
    failures = []
    multi_window = truncated = 0
    for index, (question, passage) in enumerate(pairs):
        theirs = pipe(question=question, context=passage, handle_impossible_answer=handle_impossible)
        theirs = {key: theirs[key] for key in ("answer", "start", "end", "score")}
        try:
            exp = explain(question, passage, model=str(tiny_model_dirs[kind]), method="vanilla", settings=settings)
        except Exception as exc:  # one broken pair must not hide the others: report them all
            failures.append(f"#{index} engine raised {type(exc).__name__}: {str(exc)[:200]} "
                            f"question={question!r} passage[{len(passage)} chars]={passage[:80]!r}...")
            continue
        if exp.question_truncated:  # deliberate (docs/DESIGN.md): the pipeline's fast path sends
            truncated += 1          # the whole of a question over max_question_len tokens
            continue
        multi_window += exp.windows > 1
        theirs["score"] = min(1.0, theirs["score"])  # summed window scores are capped (docs/DESIGN.md)
        ours = {"answer": exp.answer, "start": exp.start, "end": exp.end, "score": exp.score}
        reason = _mismatch(ours, theirs, passage)
        if reason:
            failures.append(
                f"#{index} {reason}: ours={ours} pipeline={theirs} question={question!r} "
                f"passage[{len(passage)} chars, {exp.windows} windows]={passage[:80]!r}..."
            )
    assert truncated <= len(pairs) // 20, f"{truncated} questions were truncated: the generator drifted"
    assert not failures, f"{len(failures)}/{len(pairs)} pairs differ ({kind}):\n" + "\n".join(failures[:10])
    # The generator is meant to exercise window stitching; if it stops doing so this test loses its point.
    assert multi_window >= len(pairs) // 3, f"only {multi_window}/{len(pairs)} pairs needed several windows"


@pytest.mark.parametrize("kind", KINDS)
def test_other_answers_equal_the_pipelines_top_k(kind: str, tiny_model_dirs: dict[str, Path],
                                                 pipelines: Callable[[str], Any]) -> None:
    """"Other answers" in Slack are the pipeline's `top_k=ALTERNATIVES` answers, null answer
    included where it ranks; the answer shown stays the top_k=1 answer."""
    from explain_core import defaults, explain

    pipe = pipelines(kind)
    failures = []
    for index, (question, passage) in enumerate(PAIRS[:N_ALTERNATIVES]):
        theirs = pipe(question=question, context=passage, top_k=defaults.ALTERNATIVES, handle_impossible_answer=True)
        theirs = theirs if isinstance(theirs, list) else [theirs]
        exp = explain(question, passage, model=str(tiny_model_dirs[kind]), method="vanilla")
        if exp.question_truncated:
            continue
        ours = [(a.answer, a.start, a.end) for a in exp.alternatives]
        want = [(t["answer"], t["start"], t["end"]) for t in theirs]
        scores_close = all(abs(a.score - min(1.0, t["score"])) <= SCORE_TOLERANCE
                           for a, t in zip(exp.alternatives, theirs))
        if ours != want or not scores_close:
            failures.append(f"#{index}: ours={[(a, round(x.score, 4)) for a, x in zip(ours, exp.alternatives)]} "
                            f"pipeline={[(w, round(t['score'], 4)) for w, t in zip(want, theirs)]}")
        if (exp.answer, exp.start) != (exp.alternatives[0].answer, exp.alternatives[0].start) and not exp.no_answer:
            failures.append(f"#{index}: the answer shown is not the first of the top answers")
    assert not failures, f"{len(failures)} pairs differ ({kind}):\n" + "\n".join(failures[:10])
