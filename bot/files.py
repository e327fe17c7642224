"""The text of files shared in Slack (.txt, .md, .pdf).

Files are untrusted input from anyone in the channel: the bot downloads them only from
Slack's own file host (its token must never reach anyone else), refuses oversized files
before downloading a byte, stops slow downloads at a deadline, and reads PDFs with pypdf
under a page cap. Every failure becomes an `InputError` whose message tells the user what
to do instead.
"""
from __future__ import annotations

import io
import logging
import time
import urllib.error
import urllib.request
from typing import Any, NamedTuple
from urllib.parse import urlparse

from pypdf import PdfReader
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.settings import BotSettings
from explain_core.errors import InputError

log = logging.getLogger(__name__)

TEXT_EXTENSIONS = (".txt", ".md", ".markdown")
PDF_EXTENSIONS = (".pdf",)
# Slack's own `filetype` names, for files without a telling extension (long pastes become
# "text" snippets named "Untitled").
TEXT_FILETYPES = ("text", "markdown")
PDF_FILETYPES = ("pdf",)
SUPPORTED_HELP = "plain text (.txt), Markdown (.md) or a PDF with selectable text (.pdf)"

_CHUNK = 64 * 1024


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


def pdf_text(data: bytes, name: str, max_pages: int) -> str:
    """The text layer of a PDF; InputError for scans, encrypted or broken files, or too many pages."""
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError("pdf_encrypted", f"{name} is password-protected. Upload an unprotected copy.")
        pages = len(reader.pages)
        if pages > max_pages:
            raise InputError("pdf_too_many_pages",
                             f"{name} has {pages} pages; I read at most {max_pages}. "
                             "Upload just the pages you are asking about.")
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
    except InputError:
        raise
    except Exception:  # pypdf raises many types on malformed input; none of them is our bug
        log.warning("could not parse PDF %s", name, exc_info=True)
        raise InputError("pdf_unreadable", f"I could not read {name} as a PDF. Is the file damaged?") from None
    if not text.strip():
        raise InputError("pdf_no_text",
                         f"{name} has no text layer (it looks like a scan or images). "
                         "Run it through OCR first, or paste the text.")
    return text


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

    def read_files(self, files: list[dict[str, Any]], *, required: bool = True) -> list[NamedText]:
        """The text of each supported file, in order.

        Unsupported files (images, spreadsheets) are skipped when another file is readable;
        when none is, that is an error that says why if the files are `required` (the
        passage has nothing else), and an empty list if not.
        """
        supported = [f for f in files if file_kind(f) is not None]
        if not supported and files and required:
            names = ", ".join(_file_name(f) for f in files)
            raise InputError("unsupported_file", f"I can't read {names}. I can read {SUPPORTED_HELP}.")
        return [NamedText(_file_name(f), self.read_file(f)) for f in supported]

    def read_file(self, file: dict[str, Any]) -> str:
        """Text of one Slack file object; size is checked against the cap before downloading."""
        name = _file_name(file)
        kind = file_kind(file)
        if kind is None:
            raise InputError("unsupported_file", f"I can't read {name}. I can read {SUPPORTED_HELP}.")
        if file.get("size") is None or not (file.get("url_private_download") or file.get("url_private")):
            file = self._file_info(file, name)
        size = int(file.get("size") or 0)
        if size > self._settings.max_file_bytes:
            raise InputError("file_too_large",
                             f"{name} is {_megabytes(size)}; I read files up to "
                             f"{_megabytes(self._settings.max_file_bytes)}. Upload a shorter version.")
        data = self._download(str(file.get("url_private_download") or file.get("url_private")), name)
        text = pdf_text(data, name, self._settings.max_pdf_pages) if kind == "pdf" else decode_text(data, name)
        if not text.strip():
            raise InputError("no_passage", f"{name} is empty.")
        return text

    def _file_info(self, file: dict[str, Any], name: str) -> dict[str, Any]:
        """Full file object: events may carry only a stub (`file_access: check_file_info`)."""
        try:
            return dict(self._client.files_info(file=file["id"])["file"])
        except (SlackApiError, KeyError) as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else "no file id"
            raise InputError("file_unavailable", f"I can't open {name} (Slack said: {error}). "
                                                 "Make sure I'm in this conversation.") from None

    def _download(self, url: str, name: str) -> bytes:
        """GET a private file with the bot token, capped in size and total time."""
        target = urlparse(url)
        if (target.scheme, target.netloc) not in self._settings.file_origins:
            raise InputError("file_host_not_allowed",
                             f"{name} is not stored in Slack, so I won't download it. Upload the file itself.")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self._settings.bot_token}"})
        limit = self._settings.max_file_bytes
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
                        raise InputError("file_too_large", f"{name} is larger than {_megabytes(limit)}, "
                                                           "the most I read. Upload a shorter version.")
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
