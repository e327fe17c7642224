"""What reading one PDF costs the bot's reader child (`bot.intake.extract`): its CPU time and peak
memory for PDF bombs of about 100 KB and for the costliest files the reader's budgets allow, with
the bot's default limits (`explain_core.defaults`: 5 s of CPU, QA_PDF_MEMORY_MB of memory).

    .venv/bin/python -m bench.bench_pdf_reader                            # this tree's reader
    git show <rev>:bot/intake/extract.py > /tmp/extract_before.py
    .venv/bin/python -m bench.bench_pdf_reader --reader /tmp/extract_before.py   # another one, to compare

Each file is built first, then read from a small parent process of its own (the standard library
and the reader module), so that `getrusage(RUSAGE_CHILDREN).ru_maxrss` is the reader's own peak:
Linux counts into it the size of the process the child was started from. The child's own figures
(VmHWM and CPU, which it reports when it is not killed) are shown beside them. CPU seconds depend
on the machine and its load: run it alone.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from explain_core import defaults  # noqa: E402
from tests.support.pdfs import drawing, form_bomb, letters, repeated_stream, shared_stream  # noqa: E402

CASES: dict[str, Callable[[], bytes]] = {
    "100 KB bomb: one stream of 45M characters": lambda: repeated_stream(45_000),
    "100 KB bomb: one stream of 4.6M rectangles": lambda: drawing(1, 4_650_000),
    "100 KB bomb: one stream of 9.7M one-letter texts": lambda: letters(1, 9_740_000),
    "form of 1M characters drawn 5,000 times": lambda: form_bomb(5000, 1000),
    "5 pages sharing a stream of 900K characters": lambda: shared_stream(5, 900),
    "19,000 rectangles on each of 50 pages": lambda: drawing(50, 19_000),
}


def _reader(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("pdf_reader_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def one(pdf: Path, reader_path: Path, memory_mb: int, timeout_s: float) -> dict[str, object]:
    """Read the file `pdf` with `reader_path`'s `read_pdf` (run in a process of its own)."""
    reader = _reader(reader_path)
    data = pdf.read_bytes()
    limits = reader.PdfLimits(max_chars=defaults.MAX_PASSAGE_CHARS, max_pages=defaults.MAX_PDF_PAGES,
                              cpu_s=defaults.PDF_CPU_S, memory_mb=memory_mb, timeout_s=timeout_s)
    found = reader.read_pdf(data, limits)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"bytes": len(data), "outcome": found.outcome,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "maxrss_mb": round(usage.ru_maxrss / 1024, 1),
            "child_cpu_s": found.cpu_s, "child_peak_mb": found.peak_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader", type=Path, default=ROOT / "bot" / "intake" / "extract.py",
                        help="the extract.py whose read_pdf to measure (default: this tree's)")
    parser.add_argument("--memory-mb", type=int, default=defaults.PDF_MEMORY_MB,
                        help="the reader's memory limit (QA_PDF_MEMORY_MB; it was 512 before issue 20)")
    parser.add_argument("--timeout-s", type=float, default=defaults.PDF_TIMEOUT_S,
                        help="the reader's wall-clock deadline (QA_PDF_TIMEOUT_S; longer shows what a file costs "
                             "until the CPU or memory limit stops it)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # the per-file parent: the PDF's path
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.reader.resolve(), args.memory_mb, args.timeout_s)))
        return 0
    print(f"reader {args.reader}; limits: {defaults.PDF_CPU_S} s CPU, {args.memory_mb} MB, "
          f"{args.timeout_s:.0f} s wall, {defaults.MAX_PASSAGE_CHARS:,} characters")
    print(f"{'file':46} {'bytes':>8} {'outcome':>9} {'CPU s':>6} {'maxrss MB':>10} {'child: CPU s':>13} "
          f"{'VmHWM MB':>9}")
    for case, build in CASES.items():
        with tempfile.NamedTemporaryFile(suffix=".pdf") as pdf:
            pdf.write(build())
            pdf.flush()
            done = subprocess.run([sys.executable, "-m", "bench.bench_pdf_reader", "--one", pdf.name, "--reader",
                                   str(args.reader), "--memory-mb", str(args.memory_mb), "--timeout-s",
                                   str(args.timeout_s)], cwd=ROOT, capture_output=True, text=True, check=True)
        row = json.loads(done.stdout)
        print(f"{case:46} {row['bytes']:>8,} {row['outcome']:>9} {row['cpu_s']:>6} {row['maxrss_mb']:>10} "
              f"{row['child_cpu_s']:>13} {row['child_peak_mb']:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
