"""The text layer of an untrusted PDF, read in a child process with hard limits on CPU time,
memory and wall-clock time.

Why a child process: a PDF is a small program for drawing pages, and a 70 KB file can
expand to tens of millions of characters (one compressed content stream repeated, pages
sharing one stream, a form drawn thousands of times). pypdf's own caps (75 MB per stream,
5,000 form invocations per page) still let such a file cost minutes of CPU and gigabytes
in the bot. Only an operating-system limit holds whatever the parser does, and killing a
process frees everything it took at once. The child's limits are RLIMIT_CPU and RLIMIT_AS,
set by the child on itself before it reads a byte (no `preexec_fn`, which is unsafe in the
bot's threaded process); the bot kills it at a wall-clock deadline too.

Inside the child, extraction counts the characters the page shows as pypdf meets them and
stops once they are over the passage limit, so an honest long document is refused in a
fraction of a second, and no more than the limit is ever handed back.

Run as a script by path with `python -I` (isolated: no environment variables, no user
site, not the `bot` package on sys.path), so the child imports the standard library and
pypdf only, and it gets no environment: the bot's tokens never reach the process that
parses a stranger's file. Protocol: limits as JSON in argv[1], the PDF on stdin, one JSON
object on stdout.
"""
from __future__ import annotations

import io
import json
import logging
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# What the child may answer, besides "text"; the bot adds "too_slow" (killed at a limit of
# time) and "failed" (the child died without answering).
# A shown string's length over-counts characters by up to 2 (two-byte codes of CID fonts), so
# the early stop waits for twice the limit: it never refuses a document that fits.
_CODE_UNITS_PER_CHAR = 2
_SHOWING = (b"Tj", b"TJ", b"'", b'"')
# Variables the interpreter itself may need to start; nothing else (no tokens) is passed on.
_CHILD_ENV = ("PATH", "LD_LIBRARY_PATH")


@dataclass(frozen=True)
class PdfLimits:
    """What reading one PDF may cost: `max_chars` of text (the passage limit), `max_pages`,
    `cpu_s` CPU seconds, `memory_mb` of address space, `timeout_s` of wall-clock time."""

    max_chars: int
    max_pages: int
    cpu_s: int
    memory_mb: int
    timeout_s: float


@dataclass(frozen=True)
class Extracted:
    """What the child found: `outcome` "text" (then `text`), one of "too_long", "too_many_pages", "encrypted",
    "unreadable", "too_big", "too_slow" or
    "failed"; `pages` when known; `cpu_s` and `peak_mb` as the child measured itself (0 when it
    was killed)."""

    outcome: str
    text: str = ""
    pages: int = 0
    cpu_s: float = 0.0
    peak_mb: float = 0.0


def read_pdf(data: bytes, limits: PdfLimits) -> Extracted:
    """Run the child on `data`; whatever the file does, this returns within `limits.timeout_s`
    (plus the time to kill and reap the child)."""
    args = [sys.executable, "-I", os.path.abspath(__file__),
            json.dumps({"max_chars": limits.max_chars, "max_pages": limits.max_pages,
                        "cpu_s": limits.cpu_s, "memory_mb": limits.memory_mb})]
    env = {name: os.environ[name] for name in _CHILD_ENV if name in os.environ}
    try:
        done = subprocess.run(args, input=data, capture_output=True, timeout=limits.timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:  # subprocess.run has killed and reaped it
        return Extracted("too_slow")
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # RLIMIT_CPU: soft, then hard
        return Extracted("too_slow")
    try:
        answer = json.loads(done.stdout)
        return Extracted(outcome=str(answer["outcome"]), text=str(answer.get("text", "")),
                         pages=int(answer.get("pages", 0)), cpu_s=float(answer["cpu_s"]),
                         peak_mb=float(answer["peak_mb"]))
    except (ValueError, KeyError, TypeError):
        log.warning("the PDF reader exited with %s and no answer: %s", done.returncode,
                    done.stderr[-500:].decode("utf-8", "replace"))
        return Extracted("failed")


# -- the child ----------------------------------------------------------------------------------
class _Full(BaseException):
    """The text is over the limit. A BaseException because pypdf catches Exception around the
    parts of a page (a form it cannot draw is logged and skipped), and this must stop it all."""


class _Counter:
    """Counts the characters of the strings a page shows, as pypdf's `visitor_operand_before`."""

    def __init__(self, max_chars: int) -> None:
        self.limit = _CODE_UNITS_PER_CHAR * max_chars
        self.shown = 0

    def __call__(self, operator: bytes, operands: list[Any], cm: Any, tm: Any) -> None:
        if operator not in _SHOWING:
            return
        items = operands[0] if operator == b"TJ" and operands and isinstance(operands[0], list) else operands
        self.shown += sum(len(item) for item in items if isinstance(item, str | bytes))
        if self.shown > self.limit:
            raise _Full


def _extract(data: bytes, max_chars: int, max_pages: int) -> dict[str, Any]:
    from pypdf import PdfReader  # here: the bot process imports this module but never parses a PDF

    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except Exception:  # pypdf raises many types on malformed input
        return {"outcome": "unreadable"}
    if encrypted:
        try:
            if not reader.decrypt(""):  # many PDFs are encrypted with an empty user password
                return {"outcome": "encrypted"}
        except Exception:  # an encryption pypdf cannot undo (unknown handler, missing AES support)
            return {"outcome": "encrypted"}
    try:
        pages = len(reader.pages)
        if pages > max_pages:
            return {"outcome": "too_many_pages", "pages": pages}
        counter = _Counter(max_chars)
        texts: list[str] = []
        for page in reader.pages:
            texts.append(page.extract_text(visitor_operand_before=counter) or "")
            if sum(map(len, texts)) + len(texts) - 1 > max_chars:
                raise _Full
    except _Full:
        return {"outcome": "too_long", "pages": pages}
    except MemoryError:
        return {"outcome": "too_big"}
    except Exception:
        return {"outcome": "unreadable"}
    return {"outcome": "text", "text": "\n".join(texts), "pages": pages}


def _peak_mb() -> float:
    """This process's peak resident memory since it started: VmHWM, not ru_maxrss, which Linux
    carries over from the bot's own size when the child is forked; ru_maxrss where there is no
    /proc (macOS, where it counts bytes and RLIMIT_AS is not enforced either)."""
    try:
        with open("/proc/self/status") as status:
            kilobytes = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except OSError:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 1)
    return round(kilobytes / 1024, 1)


def _main() -> None:
    limits = json.loads(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    memory = limits["memory_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    logging.disable(logging.CRITICAL)  # pypdf warns about every flaw of a broken file
    try:
        answer = _extract(sys.stdin.buffer.read(), limits["max_chars"], limits["max_pages"])
    except MemoryError:  # outside pypdf's own handlers (reading stdin, building the text)
        answer = {"outcome": "too_big"}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    answer |= {"cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "peak_mb": _peak_mb()}
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    _main()
