"""Sentences, and the excerpt of a passage around an answer, shared by the picture and the summary.

Why one module: the picture shows "the whole sentences around the answer" and the summary
quotes "the sentence that holds the answer"; both must cut the passage at the same places,
and neither may ever cut into the answer itself. Plain Python, no model, no PIL.
"""
from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass

# A sentence ends at terminal punctuation (with closing quotes/brackets) before whitespace,
# at CJK full stops (no space follows them), or at a blank line.
_BOUNDARY = re.compile(
    r"[.!?…؟]+[\"'”’»)\]]*(?=\s|$)"
    r"|[。！？]+[」』”’)）]*"
    r"|\n[ \t\r\f\v]*\n"
)
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "etc", "e.g", "i.e", "fig", "no",
    "al", "inc", "ltd", "co", "mt", "ft", "approx", "u.s", "u.k", "cf", "ca", "gen", "col",
})
_WORD = re.compile(r"\S+")
_PARTIAL_WORD_CHARS = 40  # only words longer than this may be cut to fill the budget
_HUGE_WORD_KEEP = 120  # and no more than this much of such a word is kept: it is not context


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the "." at `dot` ends an abbreviation or an initial rather than a sentence."""
    if text[dot] != "." or (dot + 1 < len(text) and text[dot + 1] != "." and
                            not text[dot + 1].isspace()):
        return False
    start = dot
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:dot].lstrip("\"'“‘([").lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, without surrounding whitespace, in order."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.group()[0] == "." and _is_abbreviation(text, match.start()):
            continue
        end = match.start() if match.group()[0] == "\n" else match.end()
        _add_trimmed(text, start, end, spans)
        start = match.end()
    _add_trimmed(text, start, len(text), spans)
    return spans


def _add_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


@dataclass(frozen=True)
class Excerpt:
    """`text[start:end]` is what to show; `sentence_start:sentence_end` is the answer's sentence.

    The excerpt holds the answer whole. It is smaller than the sentence when the sentence
    alone was over budget (a front end then marks the cut with an ellipsis).
    """

    start: int
    end: int
    sentence_start: int
    sentence_end: int


def excerpt(text: str, start: int, end: int, *, max_words: int, max_chars: int,
            grow: bool = True, lo: int = 0, hi: int | None = None) -> Excerpt:
    """The sentence(s) holding `text[start:end]`, grown by whole neighbouring sentences.

    With `grow`, neighbours are added alternately before and after while the excerpt stays
    within `max_words` and `max_chars` and inside `lo:hi` (the part of the passage that
    has weights). If the answer's own sentence is over budget, it is cut around the answer
    word by word (a huge token is cut inside); the answer is never cut.
    """
    hi = len(text) if hi is None else hi
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    end = max(start, end)
    spans = sentence_spans(text)
    if not spans:
        return Excerpt(start, end, start, end)
    first = min(bisect.bisect_right([e for _s, e in spans], start), len(spans) - 1)
    last = max(first, bisect.bisect_left([s for s, _e in spans], end) - 1)
    core = (min(spans[first][0], start), max(spans[last][1], end))
    counts = [len(_WORD.findall(text, s, e)) for s, e in spans]
    words = sum(counts[first:last + 1])
    if core[1] - core[0] > max_chars or words > max_words:
        left, right = _trim(text, core, start, end, max_words, max_chars)
        return Excerpt(left, right, core[0], core[1])
    left, right = core
    before, after = first - 1, last + 1
    grown = grow
    while grown:
        grown = False
        if before >= 0 and spans[before][0] >= lo and right - spans[before][0] <= max_chars \
                and words + counts[before] <= max_words:
            left, words, before, grown = spans[before][0], words + counts[before], before - 1, True
        if after < len(spans) and spans[after][1] <= hi and spans[after][1] - left <= max_chars \
                and words + counts[after] <= max_words:
            right, words, after, grown = spans[after][1], words + counts[after], after + 1, True
    return Excerpt(left, right, core[0], core[1])


def _trim(text: str, core: tuple[int, int], start: int, end: int, max_words: int,
          max_chars: int) -> tuple[int, int]:
    """Cut an over-long sentence to the words around `start:end`, alternating sides."""
    if end - start >= max_chars:
        return start, end
    starts, ends = [], []
    for match in _WORD.finditer(text, core[0], core[1]):
        starts.append(match.start())
        ends.append(match.end())

    def words(left: int, right: int) -> int:
        return bisect.bisect_left(starts, right) - bisect.bisect_right(ends, left)

    left, right = start, end
    # Word starts left of the answer (nearest first) and word ends right of it: the word
    # that holds each end of the answer comes first, then whole words outwards.
    left_stops = [s for s in reversed(starts) if s < left]
    right_stops = [e for e in ends if e > right]
    while left_stops or right_stops:
        if left_stops:
            stop = left_stops.pop(0)
            share = min(_HUGE_WORD_KEEP, (max_chars - (right - left)) // (2 if right_stops else 1))
            moved, more = _edge(left, stop, right - stop, max_chars, left - share)
            if words(moved, right) <= max_words:
                left = moved
            if not more or words(moved, right) > max_words:
                left_stops = []
        if right_stops:
            stop = right_stops.pop(0)
            share = min(_HUGE_WORD_KEEP, (max_chars - (right - left)) // (2 if left_stops else 1))
            moved, more = _edge(right, stop, stop - left, max_chars, right + share)
            if words(left, moved) <= max_words:
                right = moved
            if not more or words(left, moved) > max_words:
                right_stops = []
    return left, right


def _edge(current: int, stop: int, size: int, max_chars: int, cut: int) -> tuple[int, bool]:
    """Where one edge of the excerpt goes next, and whether it may go further.

    The edge moves to the next word boundary `stop` if the excerpt then stays within
    `max_chars`. A word too long to fit is cut at `cut` (its side's share of the budget)
    only if it is huge (a URL, a 5,000-character token); a normal word that does not fit
    ends the growth on that side.
    """
    if size <= max_chars:
        return stop, True
    if abs(current - stop) > _PARTIAL_WORD_CHARS:
        return cut, False
    return current, False


def clean(text: str) -> str:
    """The characters worth drawing: controls and zero-width format characters removed,
    lone surrogates (possible in JSON input) replaced, so a renderer never sees them."""
    out = []
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf"):
            continue
        out.append("\ufffd" if category == "Cs" else char)
    return "".join(out)
