"""The answer summary: the sentence with the span located, top words, no-answer fields, JSON."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from explain_core.explanation import Attribution, Faithfulness, Span
from explain_core.present.summary import AnswerSummary, TopWord, model_label, summarize
from tests.support import ROOT
from tests.support.synthetic import make_explanation

PASSAGE = (
    "The Normans were the people who gave their name to Normandy, a region in France. "
    "They were descended from Norse raiders and pirates from Denmark, Iceland and Norway. "
    "Their leader Rollo agreed to swear fealty to King Charles III of West Francia."
)
SENTENCES = [
    "The Normans were the people who gave their name to Normandy, a region in France.",
    "They were descended from Norse raiders and pirates from Denmark, Iceland and Norway.",
    "Their leader Rollo agreed to swear fealty to King Charles III of West Francia.",
]


def summary_of(passage: str, answer: str, **kwargs) -> AnswerSummary:
    start = passage.index(answer)
    return summarize(make_explanation("Where?", passage, start, start + len(answer), **kwargs))


def word(text: str, weight: float, segment: str = "passage", source: str = PASSAGE) -> Attribution:
    start = source.index(text)
    return Attribution(text, start, start + len(text), weight, segment)  # type: ignore[arg-type]


@pytest.mark.parametrize(("answer", "sentence"), [
    ("The Normans", 0), ("France", 0), ("Norse raiders", 1), ("Norway", 1), ("Rollo", 2),
    ("West Francia", 2),
])
def test_sentence_holds_the_answer_at_its_offsets(answer: str, sentence: int) -> None:
    summary = summary_of(PASSAGE, answer)
    assert summary.sentence == SENTENCES[sentence]
    assert summary.sentence[summary.answer_start:summary.answer_end] == answer
    assert summary.answer == answer and not summary.no_answer


def test_answer_across_a_sentence_end_gets_both_sentences() -> None:
    summary = summary_of(PASSAGE, "France. They were")
    assert summary.sentence == SENTENCES[0] + " " + SENTENCES[1]
    assert summary.sentence[summary.answer_start:summary.answer_end] == "France. They were"


def test_whitespace_inside_the_sentence_is_collapsed_and_offsets_still_match() -> None:
    passage = "Intro.\n\nThe  river\n\tflows\r\n through   Paris and\n  on to the sea. Next."
    summary = summary_of(passage, "Paris")
    assert summary.sentence == "The river flows through Paris and on to the sea."
    assert summary.sentence[summary.answer_start:summary.answer_end] == "Paris"


def test_a_huge_sentence_is_cut_around_the_answer_with_ellipses() -> None:
    words = [f"w{i}" for i in range(3000)]
    passage = " ".join(words[:1500]) + " the answer here " + " ".join(words[1500:]) + "."
    summary = summary_of(passage, "answer")
    assert summary.sentence.startswith("…") and summary.sentence.endswith("…")
    assert len(summary.sentence) <= 310
    assert summary.sentence[summary.answer_start:summary.answer_end] == "answer"
    assert "w1499 the answer here w1500" in summary.sentence


def test_an_answer_longer_than_the_limit_is_kept_whole() -> None:
    token = "y" * 5000
    summary = summary_of(f"It is {token} indeed.", token)
    assert summary.sentence[summary.answer_start:summary.answer_end] == token


def test_top_words_ranked_by_magnitude_deduplicated_and_without_punctuation() -> None:
    words = [
        word("Normans", 0.2), word("Normandy,", 0.9), word("France.", -1.0),
        word("Normandy", 0.95, "question", "Where is Normandy?"), word("Rollo", 0.0),
        word("Iceland", float("nan")), word("Denmark,", 0.5), word("Norway.", 0.3),
        Attribution("Normandy", 200, 208, 0.4, "passage"),  # a weaker repeat
    ]
    exp = make_explanation("Where is Normandy?", PASSAGE, 0, 3, words=words, signed=True)
    top = summarize(exp).top_words
    assert top == [
        TopWord("France", -1.0, "passage"), TopWord("Normandy", 0.95, "question"),
        TopWord("Normandy", 0.9, "passage"), TopWord("Denmark", 0.5, "passage"),
        TopWord("Norway", 0.3, "passage"),
    ]
    assert [w.text for w in summarize(exp, k=2).top_words] == ["France", "Normandy"]


def test_top_words_are_the_evidence_not_the_answer_itself() -> None:
    """The demo's complaint: "Top words: engineer, Stevenson, Robert" for the answer "Robert
    Stevenson". The answer's words (and a word only partly inside it) are left out of the
    ranking; the explanation keeps their weights for the heatmap; a no-answer leaves out nothing."""
    passage = "It was built by the engineer Robert Stevenson, in 1810."
    weights = {"engineer": 0.8, "Robert": 1.0, "Stevenson,": 0.95, "built": 0.5, "1810.": 0.2}
    words = [word(text, weight, source=passage) for text, weight in weights.items()]
    start = passage.index("Robert Stevenson")
    exp = make_explanation("Who built it?", passage, start, start + len("Robert Stevenson"), words=words)
    assert [w.text for w in summarize(exp).top_words] == ["engineer", "built", "1810"]
    assert [w.text for w in exp.evidence()] == ["engineer", "built", "1810."]
    assert {"Robert", "Stevenson,"} <= {w.text for w in exp.words}
    assert exp.to_dict()["evidence"] == [w.__dict__ for w in exp.evidence()]
    no_answer = make_explanation("Who built it?", passage, no_answer=True, words=words)
    assert [w.text for w in summarize(no_answer).top_words][:2] == ["Robert", "Stevenson"]


def test_top_words_of_an_explanation_without_weights_is_empty() -> None:
    assert summary_of(PASSAGE, "France", words=[]).top_words == []


def test_no_answer_fields() -> None:
    start = PASSAGE.index("Rollo")
    exp = make_explanation("Who founded Rome?", PASSAGE, no_answer=True, score=0.64,
                           best_rejected=Span("Rollo", start, start + 5, 0.12), windows=3)
    summary = summarize(exp)
    assert summary.no_answer and summary.answer == "" and summary.sentence == ""
    assert (summary.answer_start, summary.answer_end) == (0, 0)
    assert summary.best_rejected == ("Rollo", 0.12)
    assert summary.best_rejected.answer == "Rollo" and summary.confidence == 0.64
    assert summary.windows == 3


def test_answered_results_have_no_best_rejected_span() -> None:
    assert summary_of(PASSAGE, "France").best_rejected is None


def test_context_fields_model_method_latency_faithfulness() -> None:
    sentence = "hiding the 10% most salient words drops the confidence from 81% to 9%"
    faith = Faithfulness(comprehensiveness=0.7, sufficiency=0.1, original=0.81, curve=[],
                         sentence=sentence, extra_ms=12.0)
    exp = make_explanation("Where?", PASSAGE, 0, 3, method="integrated_gradients",
                           timings_ms={"forward": 10.0, "total": 250.5})
    exp = type(exp)(**{**exp.__dict__, "faithfulness": faith})
    summary = summarize(exp)
    assert summary.model == "/models/test-qa-model" and summary.model_label == "test-qa-model"
    assert summary.method == "integrated_gradients"
    assert summary.method_label == "integrated gradients"
    assert summary.latency_ms == 250.5
    assert summary.faithfulness == faith.sentence
    assert summary_of(PASSAGE, "France", timings_ms={}).latency_ms is None
    assert summary_of(PASSAGE, "France").faithfulness is None


@pytest.mark.parametrize(("name", "label"), [
    ("/work/shared/models/minilm-l6-squad2-tiny", "minilm-l6-squad2-tiny"),
    ("./models/tiny/", "tiny"),
    ("distilbert-base-cased-distilled-squad", "distilbert-base-cased-distilled-squad"),
    ("deepset/roberta-base-squad2", "deepset/roberta-base-squad2"),
])
def test_model_label(name: str, label: str) -> None:
    assert model_label(name) == label


def test_json_round_trip_and_unknown_keys_are_ignored() -> None:
    start = PASSAGE.index("Rollo")
    for exp in (
        make_explanation("Where?", PASSAGE, PASSAGE.index("France"), PASSAGE.index("France") + 6),
        make_explanation("Who?", PASSAGE, no_answer=True,
                         best_rejected=Span("Rollo", start, start + 5, 0.12)),
    ):
        summary = summarize(exp)
        data = json.loads(json.dumps(summary.to_dict(), allow_nan=False))
        assert data["top_words"][0].keys() == {"text", "weight", "segment"}
        assert AnswerSummary.from_dict(data) == summary
        assert AnswerSummary.from_dict({**data, "added_later": 1}) == summary
        assert all(math.isfinite(w["weight"]) for w in data["top_words"])


def test_summary_imports_neither_pil_nor_tensorflow() -> None:
    """The bot reads summaries and must stay free of TensorFlow (and needs no PIL)."""
    script = ("import sys, explain_core.present.summary\n"
              "print(sorted(m for m in ('PIL', 'tensorflow', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"
