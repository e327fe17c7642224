"""The text of files shared in Slack (.txt, .md, .pdf).

Files are untrusted input from anyone in the channel: the bot downloads them only from
Slack's own file host (its token must never reach anyone else), refuses oversized files
before downloading a byte, and stops slow downloads at a deadline. PDFs are read by
`bot.intake.extract` in a child process with limits on CPU time, memory and wall-clock time, a few
at a time. Text is read only up to what is left of the passage limit, so no more than a
passage's worth of text is ever held, let alone cached or queued. Every failure becomes an
`InputError` whose message tells the user what to do instead.
"""
from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any, NamedTuple
from urllib.parse import urlparse

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.intake.extract import Extracted, PdfLimits, read_pdf
from bot.settings import BotSettings
from explain_core.errors import InputError
from explain_core.settings import max_passage_chars
from explain_core.wording import count, number

log = logging.getLogger(__name__)

TEXT_EXTENSIONS = (".txt", ".md", ".markdown")
PDF_EXTENSIONS = (".pdf",)
# Slack's own `filetype` names, for files without a telling extension (long pastes become
# "text" snippets named "Untitled").
TEXT_FILETYPES = ("text", "markdown")
PDF_FILETYPES = ("pdf",)
SUPPORTED_HELP = "plain text (.txt), Markdown (.md) or a PDF with selectable text (.pdf)"

_CHUNK = 64 * 1024
TEXT_BYTES_PER_CHAR = 4  # the most any encoding (UTF-8, UTF-16 with surrogates) spends on a character
SEPARATOR = "\n\n"  # between the pieces of one passage (the message's text, each file's)


class NamedText(NamedTuple):
    """A piece of a passage and where it came from: a file's name, or "message" for the text
    of the message itself (shown to the user as the passage's sources)."""

    name: str
    text: str


def file_kind(file: dict[str, Any]) -> str | None:
    """"text", "pdf" or None (unsupported), from the name's extension or Slack's filetype."""
    name = str(file.get("name") or file.get("title") or "").lower()
    filetype = str(file.get("filetype") or "").lower()
    if name.endswith(PDF_EXTENSIONS) or filetype in PDF_FILETYPES:
        return "pdf"
    if name.endswith(TEXT_EXTENSIONS) or filetype in TEXT_FILETYPES:
        return "text"
    return None


def _file_name(file: dict[str, Any]) -> str:
    return str(file.get("name") or file.get("title") or file.get("id") or "the file")


def _too_long(name: str, room: int) -> InputError:
    """The refusal of a piece of text that does not fit in the `room` left of the passage limit."""
    limit = max_passage_chars()
    holds = "it holds" if room >= limit else "with the rest of the message it holds"
    return InputError("passage_too_long", f"{name} is too large to read: {holds} more than "
                                          f"{count(limit, 'character')}, the most I read. "
                                          "Upload or paste just the part you are asking about.")


def pdf_text(data: bytes, name: str, limits: PdfLimits) -> str:
    """The text layer of a PDF, at most `limits.max_chars` of it; InputError saying what to do
    for scans, encrypted, broken, too long or too costly files."""
    found = read_pdf(data, limits)
    log.info("read %s: %s, %d pages, %d characters, %.2f s CPU, %.0f MB", name, found.outcome, found.pages,
             len(found.text), found.cpu_s, found.peak_mb)
    if found.outcome != "text":
        raise _pdf_refusal(found, name, limits)
    if not found.text.strip():
        raise InputError("pdf_no_text",
                         f"{name} has no text layer (it looks like a scan or images). "
                         "Run it through OCR first, or paste the text.")
    return found.text


def _pdf_refusal(found: Extracted, name: str, limits: PdfLimits) -> InputError:
    paste = "Paste the text you are asking about instead."
    if found.outcome == "too_long":
        return _too_long(name, limits.max_chars)
    if found.outcome == "too_many_pages":
        return InputError("pdf_too_many_pages", f"{name} has {count(found.pages, 'page')}; I read at most "
                                                f"{number(limits.max_pages)}. "
                                                "Upload just the pages you are asking about.")
    if found.outcome == "encrypted":
        return InputError("pdf_encrypted", f"{name} is encrypted with a password. Upload a copy without one, "
                                           "or paste the text.")
    if found.outcome == "too_slow":
        return InputError("pdf_too_slow", f"{name} took too long to read (I give a PDF {count(limits.cpu_s, 'second')} "
                                          "of work). " + paste)
    if found.outcome == "too_big":
        return InputError("pdf_too_big", f"{name} needs more memory to read than I give a PDF "
                                         f"({number(limits.memory_mb)} MB). " + paste)
    if found.outcome == "busy":  # the reader had CPU time left: the machine, not the file, was slow
        return InputError("pdf_busy", f"I'm too busy to finish reading {name} right now. "
                                      "Please ask again in a minute.")
    return InputError("pdf_unreadable", f"I could not read {name} as a PDF. Is the file damaged?")


def decode_text(data: bytes, name: str) -> str:
    """Text file bytes -> str: UTF-8 (with or without BOM), else Latin-1; binary is refused."""
    if b"\x00" in data:
        raise InputError("unsupported_file", f"{name} is not a text file. I can read {SUPPORTED_HELP}.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class _SlackOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only within the allowed origins, so the token never leaves Slack."""

    def __init__(self, origins: frozenset[tuple[str, str]]) -> None:
        self.origins = origins

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        target = urlparse(newurl)
        if (target.scheme, target.netloc) not in self.origins:
            raise InputError("download_failed", "Slack sent the file download somewhere I don't trust; "
                                                "paste the text instead.")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class FileReader:
    """Downloads Slack files and reads their text, with the limits from `BotSettings`."""

    def __init__(self, client: WebClient, settings: BotSettings) -> None:
        self._client = client
        self._settings = settings
        self._opener = urllib.request.build_opener(_SlackOnlyRedirects(settings.file_origins))
        self._readers = threading.BoundedSemaphore(settings.pdf_readers)

    def read_files(self, files: list[dict[str, Any]], *, required: bool = True, used: int = 0) -> list[NamedText]:
        """The text of each supported file, in order.

        Unsupported files (images, spreadsheets) are skipped when another file is readable;
        when none is, that is an error that says why if the files are `required` (the
        passage has nothing else), and an empty list if not. `used` characters of the
        passage are taken already (the message's own text): each file gets what is left of
        the passage limit, so reading stops as soon as the passage is full.
        """
        supported = [f for f in files if file_kind(f) is not None]
        if not supported and files and required:
            names = ", ".join(_file_name(f) for f in files)
            raise InputError("unsupported_file", f"I can't read {names}. I can read {SUPPORTED_HELP}.")
        parts: list[NamedText] = []
        for file in supported:
            used += len(SEPARATOR) if used else 0
            parts.append(NamedText(_file_name(file), self.read_file(file, max_passage_chars() - used)))
            used += len(parts[-1].text)
        return parts

    def read_file(self, file: dict[str, Any], room: int | None = None) -> str:
        """Text of one Slack file object, refused if longer than `room` characters (default:
        the passage limit); size is checked against the cap before downloading."""
        name = _file_name(file)
        kind = file_kind(file)
        room = max_passage_chars() if room is None else room
        if kind is None:
            raise InputError("unsupported_file", f"I can't read {name}. I can read {SUPPORTED_HELP}.")
        if room <= 0:
            raise _too_long(name, room)
        if file.get("size") is None or not (file.get("url_private_download") or file.get("url_private")):
            file = self._file_info(file, name)
        size = int(file.get("size") or 0)
        limit = self._settings.max_file_bytes
        if size > limit:
            raise InputError("file_too_large", f"{name} is {_megabytes(size)}; I read files up to "
                                               f"{_megabytes(limit)}. Upload a shorter version.")
        over = InputError("file_too_large", f"{name} is larger than {_megabytes(limit)}, the most I read. "
                                            "Upload a shorter version.")
        if kind != "pdf" and TEXT_BYTES_PER_CHAR * room + 4 < limit:
            # More bytes than that (plus a BOM) cannot fit in the room left: never downloaded or decoded.
            limit, over = TEXT_BYTES_PER_CHAR * room + 4, _too_long(name, room)
            if size > limit:
                raise over
        data = self._download(str(file.get("url_private_download") or file.get("url_private")), name, limit, over)
        text = self._pdf_text(data, name, room) if kind == "pdf" else decode_text(data, name)
        if not text.strip():
            raise InputError("no_passage", f"{name} is empty.")
        if len(text) > room:
            raise _too_long(name, room)
        return text

    def _pdf_text(self, data: bytes, name: str, room: int) -> str:
        """`pdf_text` once one of the `pdf_readers` slots is free, so that a burst of PDFs
        costs at most that many readers' memory at once."""
        settings = self._settings
        if not self._readers.acquire(timeout=settings.pdf_timeout_s):
            raise InputError("pdf_busy", f"I'm reading other PDFs and couldn't get to {name} in time. "
                                         "Please ask again in a minute.")
        try:
            return pdf_text(data, name, PdfLimits(max_chars=room, max_pages=settings.max_pdf_pages,
                                                  cpu_s=settings.pdf_cpu_s, memory_mb=settings.pdf_memory_mb,
                                                  timeout_s=settings.pdf_timeout_s))
        finally:
            self._readers.release()

    def _file_info(self, file: dict[str, Any], name: str) -> dict[str, Any]:
        """Full file object: events may carry only a stub (`file_access: check_file_info`)."""
        try:
            return dict(self._client.files_info(file=file["id"])["file"])
        except (SlackApiError, KeyError) as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else "no file id"
            raise InputError("file_unavailable", f"I can't open {name} (Slack said: {error}). "
                                                 "Make sure I'm in this conversation.") from None

    def _download(self, url: str, name: str, limit: int, over: InputError) -> bytes:
        """GET a private file with the bot token, capped in total time and at `limit` bytes
        (past which `over` is raised: the file is too large, or its text too long)."""
        target = urlparse(url)
        if (target.scheme, target.netloc) not in self._settings.file_origins:
            raise InputError("file_host_not_allowed",
                             f"{name} is not stored in Slack, so I won't download it. Upload the file itself.")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self._client.token}"})
        timeout = self._settings.download_timeout_s
        deadline = time.monotonic() + timeout
        too_slow = InputError("download_failed", f"Downloading {name} from Slack took too long. Try again in a minute.")
        try:
            with self._opener.open(request, timeout=timeout) as response:
                if response.headers.get_content_type() == "text/html":
                    # Slack answers a request it won't authorise with its sign-in page.
                    raise InputError("download_failed", f"Slack would not let me download {name}. "
                                                        "The app may be missing the files:read scope.")
                chunks: list[bytes] = []
                received = 0
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    if received > limit:
                        raise over
                    if time.monotonic() > deadline:
                        raise too_slow
                    chunks.append(chunk)
                return b"".join(chunks)
        except InputError:
            raise
        except (urllib.error.URLError, OSError) as exc:
            # A timeout surfaces bare while reading, wrapped in URLError while connecting.
            if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
                raise too_slow from None
            log.warning("download of %s failed: %s", name, exc)
            raise InputError("download_failed",
                             f"I couldn't download {name} from Slack. Try again in a minute.") from None


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
