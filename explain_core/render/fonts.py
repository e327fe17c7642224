"""Fonts for the saliency picture: a system face plus fallbacks, so no script can crash it.

Why this exists: passages come from anyone's Slack (Arabic, Hebrew, CJK, emoji, symbols).
PIL draws one font at a time and silently draws a ".notdef" box for characters the font
lacks, so text is split into runs, each drawn with the first font that has its glyphs; a
character no installed font has gets a visible placeholder box instead of vanishing.
Only fonts already on the machine are used (DejaVu on Debian/Ubuntu, the system faces on
macOS), so nothing is downloaded or shipped.
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, features

FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/System/Library/Fonts",
    "/Library/Fonts",
    "~/Library/Fonts",
    os.path.join(os.environ.get("WINDIR", "C:\\Windows"), "Fonts"),
)

# File names in order of preference; the first one found is the face of that style.
REGULAR = ("DejaVuSans.ttf", "Arial Unicode.ttf", "Arial.ttf", "Helvetica.ttc",
           "LiberationSans-Regular.ttf", "NotoSans-Regular.ttf", "FreeSans.ttf", "arial.ttf")
BOLD = ("DejaVuSans-Bold.ttf", "Arial Bold.ttf", "LiberationSans-Bold.ttf",
        "NotoSans-Bold.ttf", "FreeSansBold.ttf", "arialbd.ttf")
# Tried, in this order, for characters the face lacks (CJK, other scripts, symbols).
FALLBACKS = (
    "DejaVuSans.ttf",
    "NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf", "NotoSansCJKjp-Regular.otf",
    "NotoSansSC-Regular.otf", "NotoSansSC-Regular.ttf", "wqy-microhei.ttc", "wqy-zenhei.ttc",
    "DroidSansFallbackFull.ttf", "DroidSansFallback.ttf", "PingFang.ttc", "Hiragino Sans GB.ttc",
    "AppleSDGothicNeo.ttc", "msyh.ttc", "malgun.ttf",
    "NotoSansArabic-Regular.ttf", "NotoSansHebrew-Regular.ttf", "NotoSansDevanagari-Regular.ttf",
    "NotoSansThai-Regular.ttf", "NotoSansSymbols-Regular.ttf", "NotoSansSymbols2-Regular.ttf",
    "Symbola.ttf", "Apple Symbols.ttf", "seguisym.ttf", "seguiemj.ttf", "FreeSerif.ttf",
    "Arial Unicode.ttf",
)
_PROBE_SIZE = 32
_WIDTH_CACHE_SIZE = 20_000
_WIDTH_CACHE_TEXT = 64  # longer texts (prefixes of a huge token being broken) are not kept
_NOTDEF_PROBE = "\U0010ffff"  # a noncharacter: every font maps it to its .notdef glyph

Font = ImageFont.FreeTypeFont  # metrics and shaping need FreeType; Pillow's bitmap font has neither


@lru_cache(maxsize=1)
def _installed() -> dict[str, str]:
    """File name (lower case) -> path of every font file in the usual places, found once."""
    found: dict[str, str] = {}
    for root in FONT_DIRS:
        base = Path(root).expanduser()
        if not base.is_dir():
            continue
        for dirpath, _dirs, files in sorted(os.walk(base)):
            for name in sorted(files):
                if name.lower().endswith((".ttf", ".otf", ".ttc")):
                    found.setdefault(name.lower(), os.path.join(dirpath, name))
    return found


def _find(names: tuple[str, ...]) -> list[str]:
    installed = _installed()
    return [installed[n.lower()] for n in names if n.lower() in installed]


def _layout() -> ImageFont.Layout:
    """Raqm shapes Arabic and orders RTL characters inside a word; basic layout is the fallback."""
    return ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC


@lru_cache(maxsize=256)
def _load(path: str, size: int) -> Font | None:
    """A face at a pixel size, or None when it cannot be scaled (bitmap-only colour emoji)."""
    try:
        return ImageFont.truetype(path, size, layout_engine=_layout())
    except OSError:
        return None


@lru_cache(maxsize=64)
def _default(size: int) -> Font:
    font = ImageFont.load_default(size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise RuntimeError("Pillow was built without FreeType; the renderer cannot measure text without it")
    return font


def _glyph_pixels(font: Font, text: str) -> tuple[tuple[int, int, int, int], bytes]:
    box = font.getbbox(text)
    width, height = max(1, int(box[2] - box[0])), max(1, int(box[3] - box[1]))
    image = Image.new("L", (width, height))
    ImageDraw.Draw(image).text((-box[0], -box[1]), text, font=font, fill=255)
    return (int(box[0]), int(box[1]), width, height), image.tobytes()


@cache
def _notdef(key: str) -> tuple[tuple[int, int, int, int], bytes]:
    return _glyph_pixels(_probe(key), _NOTDEF_PROBE)  # type: ignore[arg-type]


def _probe(key: str) -> Font | None:
    return _default(_PROBE_SIZE) if key == "" else _load(key, _PROBE_SIZE)


@lru_cache(maxsize=65536)
def covers(key: str, char: str) -> bool:
    """Whether the font file `key` ("" = PIL's default font) has a glyph for `char`.

    Plain PIL has no cmap lookup, so a glyph counts as missing when it draws exactly like
    the font's .notdef glyph. Coverage does not depend on size, so one probe size is used.
    """
    return _glyph_pixels(_probe(key), char) != _notdef(key)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Run:
    """A stretch of text drawn with one font; font None means draw placeholder boxes."""

    text: str
    font: Font | None


class Typeface:
    """One style (regular or bold) at one pixel size, with its fallbacks.

    `runs` splits text by which font can draw it; `width` and `draw` use those runs, so a
    measured width is exactly what gets drawn.
    """

    def __init__(self, primary: tuple[str, ...], size: int) -> None:
        paths = list(dict.fromkeys(_find(primary)[:1] + _find(FALLBACKS)))
        self.size = size
        self._fonts: list[tuple[str, Font]] = []
        for path in paths:
            font = _load(path, size)
            if font is not None and _probe(path) is not None:  # coverage needs the probe size
                self._fonts.append((path, font))
        if not self._fonts:
            self._fonts.append(("", _default(size)))
        self.ascent, self.descent = self._fonts[0][1].getmetrics()
        self.placeholder_width = max(2, round(size * 0.6))
        self._widths: dict[str, float] = {}

    def _font_for(self, char: str) -> Font | None:
        for key, font in self._fonts:
            if covers(key, char):
                return font
        return None

    def runs(self, text: str) -> list[Run]:
        """Split cleaned text into runs per font; combining marks stay with their base."""
        runs: list[Run] = []
        current: Font | None = None
        buffer: list[str] = []
        for char in text:
            if buffer and unicodedata.category(char).startswith("M"):
                buffer.append(char)
                continue
            font = self._font_for(char)
            if buffer and font is not current:
                runs.append(Run("".join(buffer), current))
                buffer = []
            current = font
            buffer.append(char)
        if buffer:
            runs.append(Run("".join(buffer), current))
        return runs

    def width(self, text: str) -> float:
        """Advance width of `text` in pixels (words are cached: they recur in a picture)."""
        cached = self._widths.get(text)
        if cached is None:
            cached = sum(self._run_width(run) for run in self.runs(text))
            if len(text) <= _WIDTH_CACHE_TEXT:
                if len(self._widths) > _WIDTH_CACHE_SIZE:  # a worker lives long: bound memory
                    self._widths.clear()
                self._widths[text] = cached
        return cached

    def _run_width(self, run: Run) -> float:
        if run.font is None:
            return self.placeholder_width * _base_count(run.text)
        return run.font.getlength(run.text)

    def draw(self, draw: ImageDraw.ImageDraw, x: float, baseline: float, text: str,
             fill: tuple[int, int, int], *, reverse_runs: bool = False,
             direction: str | None = None) -> None:
        """Draw at a baseline; `reverse_runs` lays the runs right to left (RTL words);
        `direction` ("ltr"/"rtl", Raqm only) overrides the direction Raqm would guess."""
        runs = self.runs(text)
        if reverse_runs:
            runs.reverse()
        for run in runs:
            if run.font is None:
                self._draw_placeholders(draw, x, baseline, _base_count(run.text), fill)
            else:
                draw.text((x, baseline), run.text, font=run.font, fill=fill, anchor="ls",
                          direction=direction)
            x += self._run_width(run)

    def _draw_placeholders(self, draw: ImageDraw.ImageDraw, x: float, baseline: float,
                           count: int, fill: tuple[int, int, int]) -> None:
        """Hollow boxes, one per character no font can draw: visibly "something is here"."""
        line = max(1, self.size // 14)
        top = baseline - self.ascent * 0.72
        for i in range(count):
            left = x + i * self.placeholder_width + line
            right = x + (i + 1) * self.placeholder_width - line - 1
            draw.rectangle((left, top, right, baseline - 1), outline=fill, width=line)


def _base_count(text: str) -> int:
    """Characters that get a placeholder box each: combining marks share their base's box."""
    return sum(1 for char in text if not unicodedata.category(char).startswith("M"))


@lru_cache(maxsize=32)
def typeface(bold: bool, size: int) -> Typeface:
    """The regular or bold typeface at a pixel size, shared by all renders of a process."""
    return Typeface(BOLD if bold else REGULAR, size)


def shapes_rtl() -> bool:
    """Whether PIL orders right-to-left characters itself (Raqm); if not, callers reverse them."""
    return _layout() == ImageFont.Layout.RAQM
