"""How long does the saliency picture take? Target: under 300 ms for a 384-token window.

Times `render_png` (layout, drawing, PNG encoding, each also alone) on an explanation of a
384-token window. With `--model` (e.g. ../shared/models/minilm-l6-squad2-tiny) the
explanation comes from the real engine; without, it is built from the sample passage with
made-up weights, which costs the renderer the same (it only reads words and offsets).

Usage: python -m bench.bench_render [--model PATH] [--repeat 20]   (from the repository root)
"""
from __future__ import annotations

import argparse
import io
import os
import random
import re
import statistics
import time
from collections.abc import Callable

from explain_core.explanation import Attribution, Explanation
from explain_core.render import render_png
from explain_core.render.layout import plan
from explain_core.render.paint import paint
from tests.support import ROOT

QUESTION = "Who built the Bell Rock Lighthouse?"
TARGET_MS = 300.0


def synthetic(passage: str) -> Explanation:
    """Whitespace words with random weights, like the engine's word attributions."""
    rng = random.Random(0)
    words = [Attribution(m.group(), m.start(), m.end(), rng.random() ** 3, "question")
             for m in re.finditer(r"\S+", QUESTION)]
    words += [Attribution(m.group(), m.start(), m.end(), rng.random() ** 3, "passage")
              for m in re.finditer(r"\S+", passage)]
    start = passage.index("Robert Stevenson")
    return Explanation(
        question=QUESTION, passage=passage, answer="Robert Stevenson", score=0.94, start=start,
        end=start + 16, no_answer=False, model="synthetic", method="vanilla", signed=False,
        target="span", tokens=words, words=words, windows=1, window_start=0,
        window_end=len(passage), timings_ms={"total": 0.0})


def passage_of_384_tokens() -> str:
    """The sample passage repeated to about 384 WordPiece tokens (~290 words)."""
    sample = (ROOT / "samples" / "lighthouse.txt").read_text(encoding="utf-8").strip()
    words = sample.split()
    return " ".join((words * 3)[:290])


def timed(function: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time (ms): on a shared machine the CPU time shows
    the renderer's own cost when other processes slow the wall clock down."""
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="explain with this checkpoint instead of made-up weights")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    passage = passage_of_384_tokens()
    if args.model:
        from explain_core import explain

        exp = explain(QUESTION, passage, model=args.model)
        source = f"engine, {args.model}"
    else:
        exp = synthetic(passage)
        source = "made-up weights"
    render_png(exp)  # fonts and glyph coverage are loaded once per process
    page = plan(exp)
    image = paint(page)
    rows = [
        ("layout (plan)", timed(lambda: plan(exp), args.repeat)),
        ("drawing (paint)", timed(lambda: paint(page), args.repeat)),
        ("PNG encoding", timed(lambda: image.save(io.BytesIO(), format="PNG", compress_level=1),
                               args.repeat)),
        ("render_png total", timed(lambda: render_png(exp), args.repeat)),
    ]
    print(f"explanation: {len(exp.words)} words ({source}); picture {page.width}x{page.height} px")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, (wall, cpu) in rows:
        print(f"{name:18s} wall {wall:7.1f} ms   cpu {cpu:7.1f} ms   (medians)")
    wall, cpu = rows[-1][1]
    print(f"render_png / {TARGET_MS:.0f} ms target: wall {wall / TARGET_MS:.2f}, cpu {cpu / TARGET_MS:.2f}")


if __name__ == "__main__":
    main()
