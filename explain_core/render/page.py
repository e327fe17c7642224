"""The page: plain drawing operations, laid out before anything is drawn.

Why: layout and drawing are separate steps, so the layout can be tested (where is the
answer's outline, what text is drawn where) without decoding pixels, and the painter
only has to follow the operations in order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from explain_core.render.colors import Color


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels of the final image; floats, rounded only when painted."""

    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class TextOp:
    """Text drawn with its baseline at `baseline`, starting at `x` on the left."""

    x: float
    baseline: float
    text: str
    size: int
    color: Color
    bold: bool = False
    rtl: bool = False  # a right-to-left piece of the text flow
    ltr: bool = False  # force left-to-right order (a title that quotes RTL text)


@dataclass(frozen=True)
class RectOp:
    """A filled and/or outlined rectangle: a word's background, an outline, a bar, a rule."""

    box: Box
    fill: Color | None = None
    outline: Color | None = None
    width: int = 0
    dashed: bool = False
    radius: float = 0


@dataclass(frozen=True)
class GradientOp:
    """The legend's colour scale, drawn left (lowest weight) to right (highest)."""

    box: Box
    signed: bool


@dataclass
class Page:
    """A laid-out picture. `answer_boxes` are the outlines around the answer, one per line it
    occupies (and `rejected_boxes` those of the best rejected span of a no-answer result)."""

    width: int
    height: int
    ops: list[TextOp | RectOp | GradientOp] = field(default_factory=list)
    answer_boxes: list[Box] = field(default_factory=list)
    rejected_boxes: list[Box] = field(default_factory=list)
