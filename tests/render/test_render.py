"""The saliency picture: size, determinism, the answer outline, hostile text, alt text.

Explanations are built by hand (tests/support/synthetic.py): the renderer only reads them.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

from explain_core.explanation import Attribution, Explanation, Span
from explain_core.render import alt_text, render_comparison, render_png
from explain_core.render.colors import OUTLINE, weight_color
from explain_core.render.fonts import typeface
from explain_core.render.layout import BODY_SIZE, WIDTH, plan
from explain_core.render.page import Box, Page, TextOp
from tests.support import ROOT
from tests.support.synthetic import make_explanation

QUESTION = "In what country is Normandy located?"
NORMANS = (
    "The Normans (Norman: Nourmands; French: Normands; Latin: Normanni) were the people who "
    "in the 10th and 11th centuries gave their name to Normandy, a region in France. They were "
    "descended from Norse raiders and pirates from Denmark, Iceland and Norway who, under their "
    "leader Rollo, agreed to swear fealty to King Charles III of West Francia."
)
TOPICS = ["harbour", "mill", "abbey", "market", "bridge", "castle", "forest", "river", "road", "wall"]


def at(word: str, weight: float, segment: str = "passage", text: str = NORMANS) -> Attribution:
    """The attribution of the first occurrence of `word` in `text`."""
    start = text.index(word)
    return Attribution(word, start, start + len(word), weight, segment)  # type: ignore[arg-type]


def long_passage(sentences: int = 80) -> str:
    """Many distinct sentences of 9-16 words: a passage several windows long."""
    out = []
    for i in range(sentences):
        topic = TOPICS[i % len(TOPICS)]
        filler = " ".join(f"w{i}x{j}" for j in range(6 + i % 8))
        out.append(f"Sentence {i} tells of the {topic} and {filler}.")
    return " ".join(out)


def explain_at(passage: str, answer: str, **kwargs) -> Explanation:
    start = passage.index(answer)
    return make_explanation(QUESTION, passage, start, start + len(answer), **kwargs)


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


def texts_inside(page: Page, boxes: list[Box]) -> str:
    """The text drawn inside the given boxes, in drawing order, without spaces."""
    return "".join(op.text for op in page.ops if isinstance(op, TextOp) and any(
        b.x0 <= op.x <= b.x1 and b.y0 <= op.baseline <= b.y1 for b in boxes))


def assert_outlined(exp: Explanation) -> Page:
    """Every answer box is drawn (outline pixels on all four edges, the answer's weight
    colour inside) and the text inside the boxes is exactly the answer."""
    page = plan(exp)
    image = decode(render_png(exp).png)
    assert page.answer_boxes
    for box in page.answer_boxes:
        x0, y0, x1, y1 = (round(v) for v in (box.x0, box.y0, box.x1, box.y1))
        assert 0 <= x0 < x1 < image.width and 0 <= y0 < y1 < image.height
        for point in (((x0 + x1) // 2, y0 + 1), ((x0 + x1) // 2, y1 - 1),
                      (x0 + 1, (y0 + y1) // 2), (x1 - 1, (y0 + y1) // 2)):
            assert image.getpixel(point) == OUTLINE, (box, point)
        inside = image.crop((x0 + 6, y0 + 6, x1 - 6, y1 - 6))
        hot = weight_color(1.0, exp.signed)
        assert any(colour == hot for _count, colour in inside.getcolors(1 << 16))
    assert texts_inside(page, page.answer_boxes) == "".join(exp.answer.split())
    return page


# ---- size and determinism --------------------------------------------------------------------

def test_size_is_bounded_and_landscape_for_short_and_very_long_passages() -> None:
    short = render_png(explain_at(NORMANS, "France"))
    huge_passage = long_passage(3000)  # ~40,000 words: only a window is drawn
    huge = render_png(explain_at(huge_passage, "Sentence 1500 tells"))
    for image in (short, huge):
        assert image.width == WIDTH * 2
        assert 500 <= image.height <= 1100  # legible at Slack's ~360 px preview height
        assert decode(image.png).size == (image.width, image.height)
    assert huge.height <= 1.2 * short.height + 300


def test_scale_one_is_half_as_large() -> None:
    exp = explain_at(NORMANS, "France")
    one, two = render_png(exp, scale=1), render_png(exp, scale=2)
    assert one.width == WIDTH and two.width == 2 * WIDTH
    assert abs(2 * one.height - two.height) <= 12


def test_same_input_same_bytes_even_in_another_process() -> None:
    exp = explain_at(NORMANS, "France", signed=True)
    first = render_png(exp).png
    again = render_png(Explanation.from_dict(json.loads(json.dumps(exp.to_dict())))).png
    assert first == again
    script = (
        "import sys, json, hashlib\n"
        "from explain_core.explanation import Explanation\n"
        "from explain_core.render import render_png\n"
        "exp = Explanation.from_dict(json.loads(sys.stdin.read()))\n"
        "print(hashlib.sha256(render_png(exp).png).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", script], input=json.dumps(exp.to_dict()),
                            capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    assert result.stdout.strip() == hashlib.sha256(first).hexdigest()


def test_png_has_no_metadata_chunks() -> None:
    """No time stamps or software names: the bytes depend on the input only."""
    image = Image.open(io.BytesIO(render_png(explain_at(NORMANS, "France")).png))
    assert image.info == {} or set(image.info) <= {"dpi"}


# ---- the answer outline and the passage window -----------------------------------------------

@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_answer_outlined_at_start_middle_and_end_of_a_long_passage(where: str) -> None:
    passage = long_passage(80)
    answer = {"start": "Sentence 0 tells", "middle": "the bridge and w44x0",
              "end": "w79x10 w79x11 w79x12"}[where]
    page = assert_outlined(explain_at(passage, answer, windows=6))
    muted = [op.text for op in page.ops if isinstance(op, TextOp) and op.text == "…"]
    assert len(muted) == {"start": 1, "middle": 2, "end": 1}[where]


def test_answer_across_line_wraps_gets_one_box_per_line() -> None:
    answer = " ".join(NORMANS.split()[10:40])
    page = assert_outlined(explain_at(NORMANS, answer))
    assert len(page.answer_boxes) >= 2


def test_answer_glued_to_punctuation_is_outlined_alone() -> None:
    passage = "Some text with **markdown** in it, and (France). The end."
    page = assert_outlined(explain_at(passage, "markdown"))
    assert texts_inside(page, page.answer_boxes) == "markdown"


def test_signed_answer_outlined_with_diverging_colours() -> None:
    exp = explain_at(NORMANS, "France", signed=True)
    assert_outlined(exp)
    assert weight_color(-1.0, True) != weight_color(1.0, True)
    assert weight_color(0.0, True) == (255, 255, 255) == weight_color(0.0, False)


def test_long_passage_shows_whole_sentences_around_the_answer() -> None:
    passage = long_passage(80)
    page = plan(explain_at(passage, "the castle and w45x0", windows=6))
    drawn = [op.text for op in page.ops if isinstance(op, TextOp)]
    first = drawn.index("…")
    shown = drawn[first + 1:drawn.index("…", first + 1)]
    assert shown[0] == "Sentence" and shown[-1].endswith(".")
    assert 90 <= len([text for text in shown if text != "."]) <= 140


def test_no_answer_says_so_and_outlines_the_best_rejected_span_lightly() -> None:
    start = NORMANS.index("Rollo")
    exp = make_explanation("Who founded Rome?", NORMANS, no_answer=True, score=0.64,
                           best_rejected=Span("Rollo", start, start + 5, 0.12))
    page = plan(exp)
    drawn = [op.text for op in page.ops if isinstance(op, TextOp)]
    assert "No answer found in the passage" in drawn and not page.answer_boxes
    assert len(page.rejected_boxes) == 1
    assert texts_inside(page, page.rejected_boxes) == "Rollo"
    assert any("best rejected span, 12%" in text for text in drawn)


def test_question_words_are_coloured_and_tagged_in_the_chart() -> None:
    words = [at("country", 1.0, "question", QUESTION), at("France", 0.5)]
    page = plan(explain_at(NORMANS, "France", words=words))
    tags = [op for op in page.ops if isinstance(op, TextOp) and op.text == "Q"]
    assert len(tags) == 1


# ---- hostile text: nothing may crash, the answer stays outlined ------------------------------

HUGE_TOKEN = "x" * 5000
URL = "https://example.com/" + "path/" * 200 + "?q=1&r=2"
HOSTILE = {
    "no_words": dict(passage=NORMANS, answer="France", words=[]),
    "all_zero": dict(passage=NORMANS, answer="France",
                     words=[at("France", 0.0), at("region", 0.0), at("country", 0.0, "question",
                                                                        QUESTION)]),
    "nan_and_inf": dict(passage=NORMANS, answer="France", words=[
        at("France", float("nan")), at("region", float("inf")),
        at("country", float("-inf"), "question", QUESTION)]),
    "single_word": dict(passage="Paris", answer="Paris"),
    "arabic": dict(passage="باريس هي عاصمة فرنسا وأكبر مدنها. تقع على نهر السين.",
                   answer="باريس", question="ما هي عاصمة فرنسا؟"),
    "hebrew_with_english_and_numbers": dict(
        passage="פריז היא הבירה של צרפת. The city of Paris is on the Seine. עם 2,100,000 תושבים.",
        answer="Paris", question="מה הבירה של צרפת?"),
    "chinese_without_spaces": dict(passage="巴黎是法国的首都和最大城市。它位于塞纳河畔，人口超过两百万。",
                                   answer="巴黎", question="法国的首都是什么？"),
    "japanese_korean": dict(passage="東京は日本の首都です。 서울은 한국의 수도입니다.", answer="서울은"),
    "emoji": dict(passage="The 🐶 dog 👨‍👩‍👧 family 🇫🇷 flag 👍🏽 went to the park 🌳.",
                  answer="dog", question="Which animal? 🐶"),
    "token_5000_before_answer": dict(passage=f"Start. {HUGE_TOKEN} the answer is here. End.",
                                     answer="answer"),
    "answer_inside_5000_token": dict(passage=f"Start {HUGE_TOKEN[:2500]}ANSWER{HUGE_TOKEN[:2500]} end.",
                                     answer="ANSWER"),
    "answer_is_a_5000_token": dict(passage=f"It is {HUGE_TOKEN} indeed.", answer=HUGE_TOKEN),
    "long_url": dict(passage=f"See {URL} for the answer, which is 42.", answer="42"),
    "html_markdown": dict(passage="<script>alert('x')</script> **bold** `code` <!channel> &amp; "
                                  "@here _it_ [link](http://x) | pipe > quote", answer="**bold**",
                          question="<b>What</b> is **this**?"),
    "newlines_tabs_crlf": dict(passage="Line one.\r\n\r\n\tTabbed\tline\ttwo.\n\n\n\nLine\nthree "
                                       "answer.\r\n", answer="answer"),
    "zero_width_and_bidi_controls": dict(
        passage="zero\u200bwidth \ufeffBOM \u202eRLO override\u202c and the answer\u200d here.",
        answer="answer"),
    "combining_marks": dict(passage="Z̷̢̛a̸̡l̵g̶o̴ text and the a̷n̸s̵w̶e̴r here.", answer="a̷n̸s̵w̶e̴r"),
    "controls_and_surrogate": dict(passage="bell \x07 null \x00 lone \ud800 surrogate answer.",
                                   answer="answer"),
    "unassigned_and_private_use": dict(passage="glyphs \U000F0000\ue000\U0010FFFE none, answer.",
                                       answer="answer"),
    "devanagari_thai": dict(passage="नमस्ते दुनिया। สวัสดีชาวโลก answer.", answer="answer"),
    "huge_question": dict(passage=NORMANS, answer="France", question="why " * 600 + "?"),
    "empty_question": dict(passage=NORMANS, answer="France", question=""),
    "whole_passage_is_the_answer": dict(passage=NORMANS, answer=NORMANS),
    "no_answer_without_weights": dict(passage=NORMANS, answer=None, words=[]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE), ids=sorted(HOSTILE))
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_hostile_text_renders(case: str, signed: bool) -> None:
    spec = dict(HOSTILE[case])
    passage, answer = spec.pop("passage"), spec.pop("answer")
    question = spec.pop("question", QUESTION)
    if answer is None:
        exp = make_explanation(question, passage, no_answer=True, signed=signed, **spec)
    else:
        start = passage.index(answer)
        exp = make_explanation(question, passage, start, start + len(answer), signed=signed, **spec)
    image = render_png(exp)
    assert decode(image.png).size == (WIDTH * 2, image.height)
    # Only an answer of 5,000 characters makes a tall picture: the answer is never cut.
    assert 300 <= image.height <= (4000 if case == "answer_is_a_5000_token" else 1400)
    assert image.alt_text
    if answer is not None:
        page = plan(exp)
        assert page.answer_boxes
        shown = texts_inside(page, page.answer_boxes)
        assert shown and set(shown) <= set(answer)
        if case == "answer_is_a_5000_token":
            assert shown == answer


# ---- fonts: fallbacks and placeholders ------------------------------------------------------

def test_a_character_no_font_has_becomes_a_visible_placeholder() -> None:
    face = typeface(False, 30)
    runs = face.runs("a\U000F0000b")
    assert [run.font is None for run in runs] == [False, True, False]
    image = Image.new("RGB", (80, 50), "white")
    face.draw(ImageDraw.Draw(image), 10, 40, "\U000F0000", (0, 0, 0))
    assert image.convert("L").getextrema()[0] < 100  # something dark was drawn
    assert face.width("\U000F0000") > 0


def test_right_to_left_paragraph_reads_right_to_left_keeping_english_and_numbers_ltr() -> None:
    passage = "אחד Paris London שתיים 2,100 שלוש."
    page = plan(make_explanation("מה?", passage, 0, 3))
    x = {op.text: op.x for op in page.ops if isinstance(op, TextOp) and op.size == 2 * BODY_SIZE}
    assert x["שלוש"] < x["2"] < x["100"] < x["שתיים"] < x["Paris"] < x["London"] < x["אחד"]


# ---- alt text ------------------------------------------------------------------------------

def test_alt_text_gives_answer_confidence_and_top_five_evidence_words() -> None:
    weights = {"France": 1.0, "region": 0.8, "Normandy,": 0.7, "Rollo,": 0.6, "Iceland": 0.5,
               "pirates": 0.4, "Denmark,": 0.3}
    words = [at(w, v) for w, v in weights.items()] + [at("country", 0.65, "question", QUESTION)]
    text = alt_text(explain_at(NORMANS, "France", words=words, score=0.874))
    assert text.startswith("Answer “France” (87% confident)")
    # The answer itself is not evidence for the answer: it is left out of the list.
    assert "besides the answer: region, Normandy, country (question), Rollo, Iceland." in text
    assert "pirates" not in text and len(text) < 300


def test_alt_text_of_no_answer_names_the_best_rejected_span() -> None:
    start = NORMANS.index("Rollo")
    exp = make_explanation("Who founded Rome?", NORMANS, no_answer=True, score=0.64,
                           best_rejected=Span("Rollo", start, start + 5, 0.12))
    text = render_png(exp).alt_text
    assert text.startswith("No answer found in the passage (64% confident)")
    assert "“Rollo” (12%)" in text and "Rollo" in text.split("Most salient words:")[1]


def test_alt_text_stays_short_for_huge_answers_and_words() -> None:
    passage = f"It is {HUGE_TOKEN} indeed."
    assert len(alt_text(explain_at(passage, HUGE_TOKEN))) < 400


def test_comparison_puts_each_models_picture_side_by_side() -> None:
    first = explain_at(NORMANS, "France")
    second = type(first)(**{**first.__dict__, "model": "deepset/roberta-base-squad2",
                            "answer": "Normandy", "start": NORMANS.index("Normandy"),
                            "end": NORMANS.index("Normandy") + 8})
    both = render_comparison([first, second])
    singles = [render_png(first), render_png(second)]
    assert both.width == sum(s.width for s in singles) + 2 * 18
    assert both.height == max(s.height for s in singles)
    assert decode(both.png).size == (both.width, both.height)
    assert both.png == render_comparison([first, second]).png
    assert both.alt_text.startswith("test-qa-model: Answer “France”")
    assert "deepset/roberta-base-squad2: Answer “Normandy”" in both.alt_text
    left = decode(both.png).crop((0, 0, singles[0].width, singles[0].height))
    assert left.tobytes() == decode(singles[0].png).tobytes()
