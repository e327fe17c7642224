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

Those process limits are backstops. A file is stopped first by budgets on what it holds, set
in pypdf's own configuration and counted as it is read (`STREAM_BYTES`, `STREAM_ELEMENTS`,
`DOCUMENT_ELEMENTS`): a 100 KB bomb used to cost the child 4.5 s of CPU and ~490 MB before a
process limit killed it, and which limit killed it first depended on how busy the machine
was ("took too long" on a loaded one, "needs more memory" on an idle one). A budget is reached
after the same work whatever the load, well inside the limits (under a second of CPU and
~150 MB for the worst file), so the asker reads the same reason either way. The child reports
what it measured (CPU seconds, peak memory) after every page, so that even when the bot kills it
at the wall-clock deadline the reason comes from those measures: a child killed there had not
used its CPU time, so the machine was busy, not the file too costly.

Run as a script by path with `python -I` (isolated: no environment variables, no user
site, not the `bot` package on sys.path), so the child imports the standard library and
pypdf only, and it gets no environment: the bot's tokens never reach the process that
parses a stranger's file. Protocol: limits as JSON in argv[1], the PDF on stdin, one JSON
object per line on stdout: a progress report after each page, then the answer (with "outcome").
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

# What the child may answer, besides "text"; the bot adds "too_slow" (killed at its CPU limit), "busy"
# (killed at the wall-clock deadline before it had used its CPU time) and "failed" (died without answering).
# A shown string's length over-counts characters by up to 2 (two-byte codes of CID fonts), so
# the early stop waits for twice the limit: it never refuses a document that fits.
_CODE_UNITS_PER_CHAR = 2
_SHOWING = (b"Tj", b"TJ", b"'", b'"')
# Variables the interpreter itself may need to start; nothing else (no tokens) is passed on.
_CHILD_ENV = ("PATH", "LD_LIBRARY_PATH")
# What one file may hold. Measured with pypdf 7 on a busy 2-core machine: parsing costs ~4 us and ~500 bytes (held
# until the page is done) per operand or operator and ~1 us per byte of strings; extracting text ~4 us more per
# operand or operator. Real documents (LaTeX manuals) have ~1,000 operands and operators and ~10 KB of content per
# page (at most 3,000 and 20 KB), ~2 characters a page shows per operand or operator, and pass the passage limit
# (200,000 characters) near 100,000 of them. So: a stream decodes to at most STREAM_BYTES and a content stream parses
# into at most STREAM_ELEMENTS (over either, the file "needs more memory"), and the pages draw at most
# DOCUMENT_ELEMENTS operands and operators and DOCUMENT_STRING_BYTES of strings that show nothing, counted as drawn
# (over either, it "takes too long"; the strings shown are held to the passage limit). Together they hold any file
# under ~2 s of CPU and ~50 MB, whatever the machine's load.
STREAM_BYTES = 1_000_000
STREAM_ELEMENTS = 100_000
DOCUMENT_ELEMENTS = 200_000
DOCUMENT_STRING_BYTES = 1_500_000


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
    "unreadable", "too_big", "too_slow", "busy" or "failed"; `pages` when known; `cpu_s` and `peak_mb`
    as the child measured itself (when it was killed: at its last report, after a page; 0 before any)."""

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
        out, code, err = done.stdout, done.returncode, done.stderr
    except subprocess.TimeoutExpired as late:  # subprocess.run has killed and reaped it; `late` has what it wrote
        out, code, err = late.stdout or b"", None, b""
    reports = _reports(out)
    last = reports[-1] if reports else {}
    cpu_s, peak_mb = float(last.get("cpu_s", 0.0)), float(last.get("peak_mb", 0.0))
    if "outcome" in last:
        return Extracted(str(last["outcome"]), str(last.get("text", "")), int(last.get("pages", 0)), cpu_s, peak_mb)
    if code is None:  # the deadline: the CPU limit would have stopped a costly file first
        outcome = "busy"
    elif code in (-signal.SIGXCPU, -signal.SIGKILL):  # RLIMIT_CPU's hard limit, past the child's own handler
        outcome = "too_slow"
    else:
        outcome = "failed"
        log.warning("the PDF reader exited with %s and no answer: %s", code, err[-500:].decode("utf-8", "replace"))
    return Extracted(outcome, cpu_s=cpu_s, peak_mb=peak_mb)


def _reports(out: bytes) -> list[dict[str, Any]]:
    """The child's JSON lines, in order; a line cut short by a kill is dropped."""
    reports = []
    for line in out.splitlines():
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict):
            reports.append(report)
    return reports


# -- the child ----------------------------------------------------------------------------------
class _Stop(BaseException):
    """Reading stops with `outcome`. A BaseException because pypdf catches Exception around the
    parts of a page (a form it cannot draw is logged and skipped), and this must stop it all."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class _Counter:
    """pypdf's `visitor_operand_before`, called for each operator drawn (a form's each time it is
    drawn): counts the characters of the strings the pages show, and the operands, operators and
    string bytes drawn; raises `_Stop` over the passage limit or a document's budget."""

    def __init__(self, max_chars: int) -> None:
        self.limit = _CODE_UNITS_PER_CHAR * max_chars
        self.shown = 0
        self.hidden = 0  # string bytes passed to operators that show nothing
        self.elements = 0

    def __call__(self, operator: bytes, operands: list[Any], cm: Any, tm: Any) -> None:
        items = [item for operand in operands for item in (operand if isinstance(operand, list) else (operand,))]
        strings = sum(len(item) for item in items if isinstance(item, str | bytes))
        self.elements += 1 + len(items)
        if operator in _SHOWING:
            self.shown += strings
            if self.shown > self.limit:
                raise _Stop("too_long")
        else:
            self.hidden += strings
        if self.elements > DOCUMENT_ELEMENTS or self.hidden > DOCUMENT_STRING_BYTES:
            raise _Stop("too_slow")


def _decode_forms(resources: Any, seen: set[int]) -> None:
    """Decode each form a page may draw (and the forms those draw), once, before pypdf reads the
    page: pypdf skips a form it cannot decode and tries again at each of its uses (up to 5,000 a
    page), so a form over `STREAM_BYTES` would cost seconds there; here it raises pypdf's
    LimitReachedError at once. Any other flaw is left to pypdf, which skips the form."""
    from pypdf.errors import LimitReachedError

    try:
        xobjects = resources.get_object().get("/XObject") if resources is not None else None
        forms = [ref.get_object() for ref in xobjects.get_object().values()] if xobjects is not None else []
    except Exception:  # a damaged resource dictionary: pypdf reads the page without it
        return
    for form in forms:
        if id(form) in seen or not hasattr(form, "get_data") or form.get("/Subtype") != "/Form":
            continue
        seen.add(id(form))
        try:
            form.get_data()  # decoded once: pypdf reuses it
        except LimitReachedError:
            raise
        except Exception:
            continue
        _decode_forms(form.get("/Resources"), seen)


def _budgets() -> dict[str, int]:
    """pypdf's configuration for the child: every decoder's output and a content stream's parse
    capped by this module's budgets (its defaults, 75 MB and 2,000,000, cost seconds and gigabytes)."""
    outputs = ("array_based_stream_maximum_output_length", "jbig2_maximum_output_length", "lzw_maximum_output_length",
               "run_length_maximum_output_length", "zlib_maximum_output_length", "brotli_maximum_output_length",
               "image_maximum_buffer_size", "maximum_declared_stream_length")
    return {**dict.fromkeys(outputs, STREAM_BYTES), "stream_decoding_work_maximum_length": 2 * STREAM_BYTES,
            "stream_parsing_work_maximum_count": STREAM_ELEMENTS}


def _extract(data: bytes, max_chars: int, max_pages: int) -> dict[str, Any]:
    # Here: the bot process imports this module but never parses a PDF.
    from pypdf import Configuration, PdfReader, overwrite_configuration
    from pypdf.errors import LimitReachedError

    overwrite_configuration(Configuration().with_overwrites(**_budgets()))
    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except LimitReachedError:
        return {"outcome": "too_big"}
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
        decoded: set[int] = set()
        for page in reader.pages:
            _decode_forms(page.get("/Resources"), decoded)
            texts.append(page.extract_text(visitor_operand_before=counter) or "")
            if sum(map(len, texts)) + len(texts) - 1 > max_chars:
                raise _Stop("too_long")
            _report({"pages_read": len(texts)})
    except _Stop as stop:
        return {"outcome": stop.outcome, "pages": pages}
    except (LimitReachedError, MemoryError):
        return {"outcome": "too_big", "pages": pages}
    except Exception:
        return {"outcome": "unreadable"}
    return {"outcome": "text", "text": "\n".join(texts), "pages": pages}


def _report(fields: dict[str, Any]) -> None:
    """One line on stdout: `fields` and what this process has cost so far (read by `read_pdf`)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    sys.stdout.write(json.dumps({**fields, "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
                                 "peak_mb": _peak_mb()}) + "\n")
    sys.stdout.flush()


def _out_of_time(_signum: int, _frame: object) -> None:
    """SIGXCPU, at the soft CPU limit: stop with the reason and the measures (the hard limit, a
    second later, kills a child stuck in C code that never returns to run this)."""
    raise _Stop("too_slow")


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
    signal.signal(signal.SIGXCPU, _out_of_time)
    logging.disable(logging.CRITICAL)  # pypdf warns about every flaw of a broken file
    try:
        answer = _extract(sys.stdin.buffer.read(), limits["max_chars"], limits["max_pages"])
    except MemoryError:  # outside pypdf's own handlers (reading stdin, building the text)
        answer = {"outcome": "too_big"}
    except _Stop as stop:  # the CPU limit, outside the pages' loop
        answer = {"outcome": stop.outcome}
    _report(answer)


if __name__ == "__main__":
    _main()
