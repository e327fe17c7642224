"""Text flow: words on coloured backgrounds, wrapped, in reading order.

Why: the picture shows the words themselves coloured by weight, in any script. A word is
cut into pieces where its weight or answer status changes, pieces of one whitespace
chunk stay glued together, lines break at spaces (or inside a word too wide for a line),
and each line is put in visual order with the Unicode bidi rules at piece granularity,
so Arabic and Hebrew read right to left with English and numbers inside them left to right.
"""
from __future__ import annotations

import bisect
import unicodedata
from dataclasses import dataclass

from explain_core.explanation import Attribution
from explain_core.present.excerpts import clean
from explain_core.present.summary import finite_weight
from explain_core.render.colors import MUTED, OUTLINE, REJECTED, WHITE, ink_on, weight_color
from explain_core.render.fonts import typeface
from explain_core.render.page import Box, Page, RectOp, TextOp


@dataclass
class Piece:
    """Part of a word that has one weight and one answer/rejected status, drawn glued to the
    other pieces of its whitespace-separated chunk."""

    text: str
    weight: float
    chunk: int
    width: float
    level: int = 0  # bidi embedding level: odd = right to left
    answer: bool = False
    rejected: bool = False
    muted: bool = False
    paragraph: bool = False  # starts a new paragraph
    pad_start: float = 0.0  # space kept before / after the text in reading order, inside
    pad_end: float = 0.0  # `width` (see `Flow.pieces`)


def direction(text: str) -> str:
    """"R", "L" or "" (neutral): the first strong character decides; without one, digits
    make it "L" (a number keeps its digits left to right inside RTL text), else neutral."""
    digits = False
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return "R"
        if kind == "L":
            return "L"
        digits = digits or kind in ("EN", "AN")
    return "L" if digits else ""


class Flow:
    """Lays out one text (question or passage window) into lines of coloured pieces.

    The page decides the sizes, so they are given: `size` is the text size in logical pixels
    and `line_spacing` the line height in multiples of it (both then times `scale`).
    """

    def __init__(self, scale: int, width: float, signed: bool, *, size: int, line_spacing: float) -> None:
        self.scale = scale
        self.width = width
        self.signed = signed
        self.face = typeface(False, size * scale)
        self.space = self.face.width(" ")
        self.line_height = round(size * line_spacing * scale)
        # From the top of a line to its baseline: the glyphs sit in the middle of the line.
        self.baseline_offset = (self.line_height - self.face.ascent - self.face.descent) / 2 + \
            self.face.ascent
        self._muted = 0

    def pieces(self, text: str, lo: int, hi: int, words: list[Attribution],
               marks: dict[str, tuple[int, int] | None]) -> list[Piece]:
        """Split `text[lo:hi]` into pieces at whitespace, word boundaries and mark edges.

        A word boundary just before a combining mark is ignored (the accent stays on its
        letter). A marked piece glued to an unmarked one ("**answer**") gets padding on
        that side so that its outline does not cover the neighbouring characters.
        """
        words = sorted(words, key=lambda w: (w.start, w.end))
        starts = [w.start for w in words]
        mark_cuts = {c for span in marks.values() if span is not None for c in span}
        cuts = sorted(mark_cuts | {c for w in words for c in (w.start, w.end) if lo < c < hi
                                   and not unicodedata.category(text[c]).startswith("M")})
        result: list[Piece] = []
        position = lo
        for chunk_index, (chunk_start, chunk_end) in enumerate(_chunks(text, lo, hi)):
            paragraph = text.count("\n", position, chunk_start) >= 2  # a blank line
            position = chunk_end
            inner = cuts[bisect.bisect_right(cuts, chunk_start):bisect.bisect_left(cuts, chunk_end)]
            bounds = [chunk_start, *inner, chunk_end]
            chunk: list[Piece] = []
            for start, end in zip(bounds, bounds[1:]):
                shown = clean(text[start:end])
                if shown:
                    chunk.append(Piece(
                        text=shown, weight=_weight_at(words, starts, start, end),
                        chunk=chunk_index, width=self.face.width(shown),
                        answer=_inside(marks.get("answer"), start, end),
                        rejected=_inside(marks.get("rejected"), start, end),
                        paragraph=paragraph and not chunk and bool(result),
                    ))
            if len(chunk) > 1:
                self._pad_marked(chunk)
            result.extend(chunk)
        return result

    def _pad_marked(self, chunk: list[Piece]) -> None:
        pad = 5 * self.scale
        for before, after in zip(chunk, chunk[1:]):
            if (before.answer, before.rejected) == (after.answer, after.rejected):
                continue
            if before.answer or before.rejected:
                before.pad_end = pad
                before.width += pad
            if after.answer or after.rejected:
                after.pad_start = pad
                after.width += pad

    def muted(self, text: str) -> Piece:
        """A grey piece without weight and with a chunk of its own: an ellipsis where text
        was left out."""
        self._muted -= 1
        return Piece(text=text, weight=0.0, chunk=self._muted, width=self.face.width(text),
                      muted=True)

    def lines(self, pieces: list[Piece]) -> list[list[Piece]]:
        """Greedy line breaking at spaces; a chunk wider than a line is broken between its
        pieces, and a piece wider than a line (a URL, a huge token) inside its characters."""
        lines: list[list[Piece]] = [[]]
        x = 0.0
        for chunk in _group(pieces):
            if chunk[0].paragraph and lines[-1]:
                lines.append([])
                x = 0.0
            gap = self.space if lines[-1] else 0.0
            total = sum(p.width for p in chunk)
            if x + gap + total > self.width and total <= self.width and lines[-1]:
                lines.append([])
                x, gap = 0.0, 0.0
            x += gap
            queue = list(chunk)
            while queue:
                piece = queue.pop(0)
                if x + piece.width <= self.width:
                    lines[-1].append(piece)
                    x += piece.width
                    continue
                if lines[-1] and (piece.width <= self.width or x > self.width * 0.8):
                    lines.append([])
                    x = 0.0
                    queue.insert(0, piece)
                    continue
                head, tail = self._split(piece, self.width - x)
                lines[-1].append(head)
                lines.append([])
                x = 0.0
                if tail.text:
                    queue.insert(0, tail)
        return [line for line in lines if line]

    def _split(self, piece: Piece, room: float) -> tuple[Piece, Piece]:
        """Cut a piece so its head fits in `room` (at least one character, never before a
        combining mark, so the line always advances and accents stay on their letter)."""
        text = piece.text
        lo, hi = 1, len(text) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.face.width(text[:mid]) + piece.pad_start + piece.pad_end <= room:
                lo = mid
            else:
                hi = mid - 1
        cut = lo
        while cut > 1 and unicodedata.category(text[cut]).startswith("M"):
            cut -= 1
        head = Piece(**{**piece.__dict__, "text": text[:cut], "pad_end": 0.0,
                         "width": self.face.width(text[:cut]) + piece.pad_start})
        tail = Piece(**{**piece.__dict__, "text": text[cut:], "pad_start": 0.0,
                         "width": self.face.width(text[cut:]) + piece.pad_end, "paragraph": False})
        return head, tail

    def place(self, lines: list[list[Piece]], page: Page, left: float, top: float,
              rtl: bool) -> float:
        """Add the lines to the page from `top`; returns the y below them.

        Within a line, runs of the other direction are reversed (the bidi algorithm's rule
        L2 at word level), and a right-to-left paragraph is right-aligned.
        """
        s = self.scale
        ascent, descent = self.face.ascent, self.face.descent
        base_level = 1 if rtl else 0
        outlines: list[RectOp] = []
        for row, line in enumerate(lines):
            baseline = top + row * self.line_height + self.baseline_offset
            visual = _visual_order(line, base_level)
            total = _line_width(line, self.space)
            x = left + (self.width - total if rtl else 0.0)
            boxes: dict[str, list[float]] = {}
            previous: Piece | None = None
            for piece in visual:
                if previous is not None and previous.chunk != piece.chunk:
                    x += self.space
                previous = piece
                box = Box(x - s, baseline - ascent - 1 * s, x + piece.width + s, baseline + descent + s)
                background = weight_color(piece.weight, self.signed)
                if background != WHITE:
                    page.ops.append(RectOp(box, fill=background))
                color = MUTED if piece.muted else ink_on(background)
                rtl_piece = piece.level % 2 == 1
                left_pad, right_pad = (piece.pad_end, piece.pad_start) if rtl_piece else \
                    (piece.pad_start, piece.pad_end)
                page.ops.append(TextOp(x + left_pad, baseline, piece.text, self.face.size,
                                       color, rtl=rtl_piece))
                text_x0, text_x1 = x + left_pad, x + piece.width - right_pad
                for name, flag in (("answer", piece.answer), ("rejected", piece.rejected)):
                    if flag:
                        span = boxes.setdefault(name, [text_x0, text_x1])
                        span[0], span[1] = min(span[0], text_x0), max(span[1], text_x1)
                x += piece.width
            for name, (x0, x1) in sorted(boxes.items()):
                frame = Box(x0 - 3 * s, baseline - ascent - 3 * s, x1 + 3 * s,
                            baseline + descent + 3 * s)
                if name == "answer":
                    page.answer_boxes.append(frame)
                    outlines.append(RectOp(frame, outline=OUTLINE, width=round(2.5 * s)))
                else:
                    page.rejected_boxes.append(frame)
                    outlines.append(RectOp(frame, outline=REJECTED, width=s, dashed=True))
        page.ops.extend(outlines)  # on top of the backgrounds of neighbouring lines
        return top + len(lines) * self.line_height


def _chunks(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    chunks, i = [], lo
    while i < hi:
        while i < hi and text[i].isspace():
            i += 1
        start = i
        while i < hi and not text[i].isspace():
            i += 1
        if i > start:
            chunks.append((start, i))
    return chunks


def _group(pieces: list[Piece]) -> list[list[Piece]]:
    groups: list[list[Piece]] = []
    for piece in pieces:
        if groups and groups[-1][-1].chunk == piece.chunk:
            groups[-1].append(piece)
        else:
            groups.append([piece])
    return groups


def _weight_at(words: list[Attribution], starts: list[int], start: int, end: int) -> float:
    """The weight of the word(s) overlapping `start:end`; the strongest if several."""
    best = 0.0
    i = max(0, bisect.bisect_right(starts, start) - 1)
    while i < len(words) and words[i].start < end:
        word = words[i]
        if word.end > start:
            weight = finite_weight(word.weight)
            if abs(weight) > abs(best):
                best = weight
        i += 1
    return best


def _inside(span: tuple[int, int] | None, start: int, end: int) -> bool:
    return span is not None and span[0] <= start and end <= span[1] and span[0] < span[1]


def _line_width(line: list[Piece], space: float) -> float:
    chunks = len({p.chunk for p in line})
    return sum(p.width for p in line) + space * (chunks - 1)


def _visual_order(line: list[Piece], base: int) -> list[Piece]:
    """Pieces in display order: the Unicode bidi algorithm at piece granularity.

    Levels: in a left-to-right paragraph (base 0) RTL pieces get 1; in a right-to-left one
    (base 1) RTL pieces get 1 and LTR pieces 2. A piece without a strong character (numbers,
    punctuation) takes its neighbours' level when they agree, else the paragraph's (rules
    N1/N2). Then every run at or above each level is reversed, highest first (rule L2).
    Sets each piece's `level`, which tells the painter to draw it right to left.
    """
    kinds = [direction(piece.text) for piece in line]
    if base == 0 and "R" not in kinds:
        return line
    strong: list[int | None] = [
        None if not kind else (1 if kind == "R" else 0) if base == 0 else (1 if kind == "R" else 2)
        for kind in kinds
    ]
    levels: list[int] = []
    for i, level in enumerate(strong):
        if level is None:
            before = next((v for v in reversed(strong[:i]) if v is not None), None)
            after = next((v for v in strong[i + 1:] if v is not None), None)
            level = before if before is not None and before == after else base
        levels.append(level)
    order = list(range(len(line)))
    for threshold in range(max(levels), 0, -1):
        i = 0
        while i < len(order):
            j = i
            while j < len(order) and levels[order[j]] >= threshold:
                j += 1
            if j > i:
                order[i:j] = reversed(order[i:j])
            i = j + 1
    for piece, level in zip(line, levels):
        piece.level = level
    return [line[i] for i in order]
