"""The whole page: where the title, question, passage, legend and chart of the picture go.

Why: `plan` decides every position and every size (the constants below) in one pass and
returns a `Page` of drawing operations, so that nothing is drawn before the height of the
picture is known and the layout can be tested without pixels.
"""
from __future__ import annotations

from explain_core.explanation import Explanation
from explain_core.present.excerpts import clean, excerpt
from explain_core.present.summary import ELLIPSIS, finite_weight, method_label, model_label, top_words
from explain_core.render.colors import INK, MUTED, OUTLINE, QUESTION_TAG, REJECTED, RULE, WHITE, weight_color
from explain_core.render.flow import Flow, direction
from explain_core.render.fonts import typeface
from explain_core.render.page import Box, GradientOp, Page, RectOp, TextOp

WIDTH = 760  # logical pixels; the PNG is `scale` times larger
MARGIN = 18
BODY_SIZE = 15
TITLE_SIZE = 19
SMALL_SIZE = 12
LINE_HEIGHT = 1.55  # times the body size; leaves room for the answer outline between lines
PASSAGE_MAX_WORDS = 140
PASSAGE_MAX_CHARS = 900
QUESTION_MAX_CHARS = 200
CHART_WORDS = 8
CHART_ROWS = 4


def _fit(text: str, size: int, bold: bool, room: float) -> str:
    """`text` on one line, cut with an ellipsis if it is wider than `room`."""
    face = typeface(bold, size)
    text = clean(" ".join(text.split()))
    if face.width(text) <= room:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if face.width(text[:mid] + ELLIPSIS) <= room:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ELLIPSIS


def percent(score: float) -> str:
    """A score as a whole percentage, clamped to 0-100% (NaN shows as 0%): one format for
    the title, the legend and the alt text."""
    return f"{min(1.0, max(0.0, finite_weight(score))):.0%}"


def _focus(exp: Explanation) -> tuple[int, int]:
    """What the passage window centres on: the answer, else the best rejected span, else
    the passage word with the largest weight, else the start of the explained window."""
    if not exp.no_answer:
        return exp.start, exp.end
    if exp.best_rejected is not None:
        return exp.best_rejected.start, exp.best_rejected.end
    passage_words = [w for w in exp.words if w.segment == "passage" and finite_weight(w.weight)]
    if passage_words:
        best = max(passage_words, key=lambda w: (abs(w.weight), -w.start))
        return best.start, best.end
    return exp.window_start, exp.window_start


def plan(exp: Explanation, *, scale: int = 2) -> Page:
    """Lay out the picture of `exp` (see the package docstring) at `scale` times 760 px wide."""
    s = scale
    left, inner = MARGIN * s, (WIDTH - 2 * MARGIN) * s
    page = Page(width=WIDTH * s, height=0)
    y = _title(exp, page, left, inner, MARGIN * s, s)
    y = _question(exp, page, left, inner, y + 10 * s, s)
    page.ops.append(RectOp(Box(left, y + 5 * s, left + inner, y + 5 * s + max(1, s // 2)), fill=RULE))
    y = _passage(exp, page, left, inner, y + 12 * s, s)
    y = _legend(exp, page, left, inner, y + 8 * s, s)
    y = _chart(exp, page, left, inner, y + 8 * s, s)
    page.height = int(y + MARGIN * s)
    return page


def _title(exp: Explanation, page: Page, left: float, inner: float, y: float, s: int) -> float:
    """The answer (or that there is none) and the confidence; below, model and method."""
    size = TITLE_SIZE * s
    bold, regular, small = typeface(True, size), typeface(False, size), typeface(False, SMALL_SIZE * s)
    confidence = f"  {percent(exp.score)} confident"
    if exp.no_answer:
        headline = "No answer found in the passage"
    else:
        room = inner - regular.width(confidence) - bold.width("”")
        headline = _fit(f"“{' '.join(exp.answer.split())}", size, True, room) + "”"
    y += bold.ascent
    page.ops.append(TextOp(left, y, headline, size, INK, bold=True, ltr=True))
    page.ops.append(TextOp(left + bold.width(headline), y, confidence, size, MUTED))
    y += bold.descent + 4 * s + small.ascent
    windows = f"passage in {exp.windows} windows, showing the answer's" if exp.windows > 1 \
        else "passage in 1 window"
    meta = f"model {model_label(exp.model)} · {method_label(exp.method)} saliency · {windows}"
    page.ops.append(TextOp(left, y, _fit(meta, SMALL_SIZE * s, False, inner), SMALL_SIZE * s, MUTED))
    return y + small.descent


def _question(exp: Explanation, page: Page, left: float, inner: float, y: float, s: int) -> float:
    """The question after a "Q:" label, its words coloured too: they often weigh much."""
    label = "Q:"
    label_face = typeface(True, BODY_SIZE * s)
    space = typeface(False, BODY_SIZE * s).width(" ")
    label_width = label_face.width(label) + space
    flow = Flow(s, inner - label_width, exp.signed, size=BODY_SIZE, line_spacing=LINE_HEIGHT)
    end = _question_end(exp.question)
    pieces = flow.pieces(exp.question, 0, end, [w for w in exp.words if w.segment == "question"], {})
    if end < len(exp.question.rstrip()):
        pieces.append(flow.muted(ELLIPSIS))
    rtl = direction(exp.question) == "R"
    label_x = left + inner - label_face.width(label) if rtl else left
    page.ops.append(TextOp(label_x, y + flow.baseline_offset, label, BODY_SIZE * s, QUESTION_TAG,
                           bold=True))
    return flow.place(flow.lines(pieces), page, left if rtl else left + label_width, y, rtl)


def _passage(exp: Explanation, page: Page, left: float, inner: float, y: float, s: int) -> float:
    """The whole sentences around the answer (ellipses where text is left out), the answer
    outlined; for no answer, around the best rejected span, outlined lightly."""
    focus_start, focus_end = _focus(exp)
    part = excerpt(exp.passage, focus_start, focus_end, max_words=PASSAGE_MAX_WORDS,
                   max_chars=PASSAGE_MAX_CHARS, lo=exp.window_start, hi=exp.window_end)
    rejected = exp.best_rejected if exp.no_answer else None
    marks = {"answer": None if exp.no_answer else (exp.start, exp.end),
             "rejected": (rejected.start, rejected.end) if rejected is not None else None}
    flow = Flow(s, inner, exp.signed, size=BODY_SIZE, line_spacing=LINE_HEIGHT)
    pieces = flow.pieces(exp.passage, part.start, part.end,
                         [w for w in exp.words if w.segment == "passage"], marks)
    if exp.passage[:part.start].strip():
        pieces.insert(0, flow.muted(ELLIPSIS))
    if exp.passage[part.end:].strip():
        pieces.append(flow.muted(ELLIPSIS))
    return flow.place(flow.lines(pieces), page, left, y, direction(exp.passage) == "R")


def _question_end(question: str) -> int:
    """Where the shown question ends: all of it, or about QUESTION_MAX_CHARS at a space."""
    if len(question) <= QUESTION_MAX_CHARS:
        return len(question)
    cut = question.rfind(" ", 0, QUESTION_MAX_CHARS)
    return cut if cut > QUESTION_MAX_CHARS // 2 else QUESTION_MAX_CHARS


def _legend(exp: Explanation, page: Page, left: float, inner: float, y: float, s: int) -> float:
    """Colour scale with its meaning, and what the outline means."""
    size = SMALL_SIZE * s
    small = typeface(False, size)
    baseline = y + small.ascent
    x = left
    low, high = ("lowers", "raises") if exp.signed else ("low", "high")
    target = "the no-answer score" if exp.target == "null" else "the answer"
    page.ops.append(TextOp(x, baseline, low, size, MUTED))
    x += small.width(low) + 4 * s
    strip = Box(x, baseline - small.ascent * 0.75, x + 110 * s, baseline)
    page.ops.append(GradientOp(strip, exp.signed))
    page.ops.append(RectOp(strip, outline=RULE, width=max(1, s // 2)))
    x = strip.x1 + 4 * s
    caption = f"{high} — {'signed ' if exp.signed else ''}saliency for {target}"
    page.ops.append(TextOp(x, baseline, caption, size, MUTED))
    x += small.width(caption) + 18 * s
    swatch_top, swatch_bottom = baseline - small.ascent * 0.85, baseline + 2 * s
    if not exp.no_answer:
        swatch = Box(x, swatch_top, x + 26 * s, swatch_bottom)
        page.ops.append(RectOp(swatch, outline=OUTLINE, width=round(2.5 * s)))
        page.ops.append(TextOp(swatch.x1 + 5 * s, baseline, "answer", size, MUTED))
    elif exp.best_rejected is not None:
        swatch = Box(x, swatch_top, x + 26 * s, swatch_bottom)
        page.ops.append(RectOp(swatch, outline=REJECTED, width=s, dashed=True))
        room = left + inner - swatch.x1 - 5 * s
        text = _fit(f"best rejected span, {percent(exp.best_rejected.score)}", size, False, room)
        page.ops.append(TextOp(swatch.x1 + 5 * s, baseline, text, size, MUTED))
    return baseline + small.descent


def _chart(exp: Explanation, page: Page, left: float, inner: float, y: float, s: int) -> float:
    """The top evidence words (the answer's own left out) as horizontal bars in two columns;
    question words tagged "Q"."""
    size = SMALL_SIZE * s
    small, bold = typeface(False, size), typeface(True, size)
    header_base = y + bold.ascent
    page.ops.append(TextOp(left, header_base, "Top words", size, INK, bold=True))
    note = "   Q = word of the question, bar = weight" + ("" if exp.no_answer else ", answer left out")
    page.ops.append(TextOp(left + bold.width("Top words"), header_base, note, size, MUTED))
    y = header_base + bold.descent + 5 * s
    ranked = top_words(exp, CHART_WORDS)
    if not ranked:
        page.ops.append(TextOp(left, y + small.ascent, "no word has any weight", size, MUTED))
        return y + small.ascent + small.descent
    row_height = round(SMALL_SIZE * 1.65 * s)
    gutter = 24 * s
    column = (inner - gutter) / 2
    label_room, value_room, tag = 150 * s, 44 * s, small.width("Q") + 9 * s
    bar_room = column - label_room - value_room - 8 * s
    for rank, word in enumerate(ranked):
        col, row = divmod(rank, CHART_ROWS)
        x = left + col * (column + gutter)
        top = y + row * row_height
        baseline = top + (row_height - small.ascent - small.descent) / 2 + small.ascent
        label = _fit(word.text, size, False, label_room - tag - 6 * s)
        label_x = x + label_room - 6 * s - small.width(label)
        page.ops.append(TextOp(label_x, baseline, label, size, INK, rtl=direction(label) == "R"))
        if word.segment == "question":
            pill = Box(label_x - tag, baseline - small.ascent * 0.9, label_x - 4 * s,
                       baseline + small.descent * 0.6)
            page.ops.append(RectOp(pill, fill=QUESTION_TAG, radius=3 * s))
            page.ops.append(TextOp(pill.x0 + 2.5 * s, baseline, "Q", size, WHITE, bold=True))
        bar_left = x + label_room
        bar_top, bar_bottom = top + 3 * s, top + row_height - 3 * s
        weight = max(-1.0, min(1.0, word.weight))
        if exp.signed:
            axis = bar_left + bar_room / 2
            end = axis + weight * bar_room / 2
            page.ops.append(RectOp(Box(axis, top + s, axis + max(1, s // 2), top + row_height - s),
                                   fill=MUTED))
            bar = Box(min(axis, end), bar_top, max(axis, end), bar_bottom)
            value_x = bar_left + bar_room + 6 * s
        else:
            bar = Box(bar_left, bar_top, bar_left + max(0.0, weight) * bar_room, bar_bottom)
            value_x = bar.x1 + 6 * s
        page.ops.append(RectOp(bar, fill=weight_color(weight, exp.signed), outline=MUTED,
                               width=max(1, s // 2)))
        page.ops.append(TextOp(value_x, baseline, f"{word.weight:+.2f}".replace("-", "−")
                               if exp.signed else f"{word.weight:.2f}", size, MUTED))
    return y + min(len(ranked), CHART_ROWS) * row_height
