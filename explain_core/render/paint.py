"""Painting: a laid-out `Page` drawn with PIL.

Why PIL: matplotlib is slow to import and to draw; PIL draws the page's rectangles and
text runs directly, in order, and the same page always gives the same pixels.
"""
from __future__ import annotations

from PIL import Image, ImageDraw

from explain_core.render.colors import WHITE, weight_color
from explain_core.render.fonts import shapes_rtl, typeface
from explain_core.render.page import Box, GradientOp, Page, RectOp, TextOp


def paint(page: Page) -> Image.Image:
    """Draw the page's operations in order on a white RGB image."""
    image = Image.new("RGB", (page.width, page.height), WHITE)
    draw = ImageDraw.Draw(image)
    reverse_chars = not shapes_rtl()
    for op in page.ops:
        if isinstance(op, TextOp):
            text = op.text[::-1] if op.rtl and reverse_chars else op.text
            typeface(op.bold, op.size).draw(draw, op.x, op.baseline, text, op.color,
                                            reverse_runs=op.rtl,
                                            direction="ltr" if op.ltr and not reverse_chars else None)
        elif isinstance(op, GradientOp):
            _gradient(draw, op)
        elif op.dashed:
            _dashed(draw, op)
        elif op.radius:
            draw.rounded_rectangle(_xy(op.box), radius=op.radius, fill=op.fill)
        else:
            draw.rectangle(_xy(op.box), fill=op.fill, outline=op.outline, width=op.width)
    return image


def _xy(box: Box) -> tuple[int, int, int, int]:
    return round(box.x0), round(box.y0), round(box.x1), round(box.y1)


def _gradient(draw: ImageDraw.ImageDraw, op: GradientOp) -> None:
    x0, y0, x1, y1 = _xy(op.box)
    for x in range(x0, x1 + 1):
        t = (x - x0) / max(1, x1 - x0)
        draw.line((x, y0, x, y1), fill=weight_color(2 * t - 1 if op.signed else t, op.signed))


def _dashed(draw: ImageDraw.ImageDraw, op: RectOp) -> None:
    x0, y0, x1, y1 = _xy(op.box)
    dash = max(3, op.width * 4)
    for a in range(x0, x1, 2 * dash):
        draw.line((a, y0, min(a + dash, x1), y0), fill=op.outline, width=op.width)
        draw.line((a, y1, min(a + dash, x1), y1), fill=op.outline, width=op.width)
    for b in range(y0, y1, 2 * dash):
        draw.line((x0, b, x0, min(b + dash, y1)), fill=op.outline, width=op.width)
        draw.line((x1, b, x1, min(b + dash, y1)), fill=op.outline, width=op.width)
