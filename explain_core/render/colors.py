"""Colours of the saliency picture: the weight scales and the few fixed colours.

Why a module of its own: the text flow, the page layout and the painter all colour things
by weight, and must agree exactly (the legend's gradient is the words' scale). The scales
are precomputed lookup tables, so colouring a word is one index, not an interpolation.
"""
from __future__ import annotations

from explain_core.present.summary import finite_weight

Color = tuple[int, int, int]

WHITE: Color = (255, 255, 255)
INK: Color = (30, 30, 30)
MUTED: Color = (105, 105, 105)
RULE: Color = (222, 222, 222)
OUTLINE: Color = (20, 20, 20)
REJECTED: Color = (120, 120, 120)
QUESTION_TAG: Color = (80, 96, 140)
# Sequential (unsigned weights): white to red through yellow and orange, light enough at the
# top that most words keep dark text. Diverging (signed): blue (negative), white, red.
SEQUENTIAL = ((0.0, (255, 255, 255)), (0.2, (255, 243, 185)), (0.45, (254, 205, 110)),
              (0.7, (250, 142, 60)), (1.0, (214, 48, 39)))
DIVERGING = ((0.0, (33, 102, 172)), (0.25, (120, 175, 214)), (0.5, (255, 255, 255)),
             (0.75, (240, 140, 110)), (1.0, (178, 24, 43)))
_LUT_STEPS = 256  # 257 entries: the diverging map's middle entry is exactly white


def _lut(anchors: tuple[tuple[float, Color], ...]) -> list[Color]:
    """The scale at `_LUT_STEPS + 1` evenly spaced points, linear between its anchors."""
    lut: list[Color] = []
    for i in range(_LUT_STEPS + 1):
        t = i / _LUT_STEPS
        for (t0, c0), (t1, c1) in zip(anchors, anchors[1:]):
            if t <= t1:
                f = (t - t0) / (t1 - t0)
                red, green, blue = (round(a + (b - a) * f) for a, b in zip(c0, c1))
                lut.append((red, green, blue))
                break
    return lut


_SEQUENTIAL_LUT = _lut(SEQUENTIAL)
_DIVERGING_LUT = _lut(DIVERGING)


def weight_color(weight: float, signed: bool) -> Color:
    """Background colour of a word: sequential 0..1, or diverging -1..1 centred on white."""
    weight = finite_weight(weight)
    if signed:
        return _DIVERGING_LUT[round((min(1.0, max(-1.0, weight)) + 1) / 2 * _LUT_STEPS)]
    return _SEQUENTIAL_LUT[round(min(1.0, max(0.0, weight)) * _LUT_STEPS)]


def ink_on(background: Color) -> Color:
    """Dark text on light backgrounds, white on dark ones (relative luminance)."""
    r, g, b = (c / 255 for c in background)
    return INK if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5 else WHITE
