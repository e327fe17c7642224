"""Bounded cost for every file: PDF bombs, long text and encrypted PDFs, read by real child
processes (`bot.intake.extract`) and, end to end, by the bot driven with signed requests.

The bombs are built here, small on disk: one compressed content stream that expands to
millions of characters, pages sharing one such stream, and a form drawn thousands of times.
Before the sandbox a 69 KB bomb of the first kind cost the bot 40 s of CPU and returned 32
million characters, which were cached in Redis before the passage limit refused them.
"""
from __future__ import annotations

import io
import subprocess
import zlib
from collections.abc import Iterator

import pytest
from pypdf import PdfReader, PdfWriter

from bot.intake.extract import PdfLimits, read_pdf
from bot.intake.files import FileReader
from bot.metrics import BotMetrics
from bot.slack_client import web_client
from explain_core.errors import InputError
from tests.support.bot_harness import (
    BotUnderTest,
    make_pdf,
    module_redis,
    pdf_from_objects,
    settings_for,
    slack,
    unique,
)
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import SlackFake

__all__ = ["module_redis", "slack"]  # fixtures used by name

LIMIT = 5_000  # QA_MAX_PASSAGE_CHARS for these tests: small, so that honest files fill it cheaply
FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
SHOW = b"(" + b"A" * 1000 + b") Tj\n"  # one operator that shows 1,000 characters


def _stream(content: bytes, extra: bytes = b"") -> bytes:
    packed = zlib.compress(content, 9)
    return b"<< %s/Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (extra, len(packed), packed)


def _pages(kids: list[int]) -> bytes:
    return b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))


def _page(contents: int, resources: bytes = b"") -> bytes:
    return (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> %s >> >>" % (contents, resources))


def repeated_stream(shows: int) -> bytes:
    """One page whose compressed content stream shows `shows` x 1,000 characters."""
    content = b"BT /F1 12 Tf 72 720 Td\n" + SHOW * shows + b"ET"
    return pdf_from_objects([b"<< /Type /Catalog /Pages 2 0 R >>", _pages([5]), FONT, _stream(content), _page(4)])


def shared_stream(pages: int, shows: int) -> bytes:
    """`pages` pages that all draw the same content stream."""
    content = b"BT /F1 12 Tf 72 720 Td\n" + SHOW * shows + b"ET"
    kids = list(range(5, 5 + pages))
    return pdf_from_objects([b"<< /Type /Catalog /Pages 2 0 R >>", _pages(kids), FONT, _stream(content)]
                            + [_page(4) for _ in kids])


def form_bomb(invocations: int) -> bytes:
    """One page drawing, `invocations` times, a form that shows a million characters."""
    form = _stream(b"BT /F1 12 Tf 72 720 Td\n" + SHOW * 1000 + b"ET",
                   b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> ")
    page_content = _stream(b"/X0 Do\n" * invocations)
    return pdf_from_objects([b"<< /Type /Catalog /Pages 2 0 R >>", _pages([6]), FONT, page_content, form,
                             _page(4, b"/XObject << /X0 5 0 R >>")])


def encrypted(password: str, algorithm: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["The key is under the mat."]))))
    writer.encrypt(user_password=password, owner_password="owner", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def limits(**overrides: object) -> PdfLimits:
    return PdfLimits(**{"max_chars": LIMIT, "max_pages": 50, "cpu_s": 5, "memory_mb": 512, "timeout_s": 20.0,
                        **overrides})  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def small_passages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_MAX_PASSAGE_CHARS", str(LIMIT))


# -- the reader process ---------------------------------------------------------------------
@pytest.mark.parametrize("bomb", [
    pytest.param(lambda: repeated_stream(4000), id="4M characters in one 9 KB stream"),
    pytest.param(lambda: shared_stream(5, 1000), id="5 pages sharing one stream"),
    pytest.param(lambda: form_bomb(5000), id="a 1M-character form drawn 5,000 times"),
])
def test_bombs_stop_at_the_passage_limit(bomb) -> None:  # type: ignore[no-untyped-def]
    data = bomb()
    assert len(data) < 20_000
    found = read_pdf(data, limits())
    assert (found.outcome, found.text) == ("too_long", "")
    assert 0 < found.peak_mb < 512 and found.cpu_s > 0  # the child answered, within its limits


def test_text_up_to_the_limit_is_read_whole() -> None:
    page = "x" * 999
    found = read_pdf(make_pdf([page] * 5), limits())  # 5 x 999 + 4 newlines = 4,999 characters
    assert found.outcome == "text" and found.text == "\n".join([page] * 5) and found.pages == 5
    assert read_pdf(make_pdf([page] * 5 + ["yy"]), limits()).outcome == "too_long"


def test_a_reader_over_its_cpu_limit_is_killed() -> None:
    # No passage limit to stop it: drawing the form 5,000 times would take minutes.
    assert read_pdf(form_bomb(5000), limits(max_chars=10**9, cpu_s=1)).outcome == "too_slow"


def test_a_reader_over_its_wall_clock_limit_is_killed() -> None:
    assert read_pdf(form_bomb(5000), limits(max_chars=10**9, timeout_s=1.0)).outcome == "too_slow"


def test_a_reader_over_its_memory_limit_is_stopped() -> None:
    # 70 MB of content to inflate and parse, from 150 KB: more than 128 MB of address space.
    assert read_pdf(repeated_stream(70_000), limits(max_chars=10**9, memory_mb=128)).outcome == "too_big"


@pytest.mark.parametrize("algorithm", ["AES-128", "AES-256", "RC4-128"])
def test_encrypted_pdfs_are_read_with_the_empty_password_or_refused_as_encrypted(algorithm: str) -> None:
    opened = read_pdf(encrypted("", algorithm), limits())
    assert (opened.outcome, opened.text) == ("text", "The key is under the mat.")
    assert read_pdf(encrypted("secret", algorithm), limits()).outcome == "encrypted"


def test_the_reader_gets_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-must-not-leak")
    # A PDF cannot print the environment, so look at what the real child is started with.
    seen: dict[str, object] = {}
    real_run = subprocess.run

    def spy(args, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(kwargs)
        return real_run(args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    assert read_pdf(make_pdf(["hello"]), limits()).outcome == "text"
    assert "SLACK_BOT_TOKEN" not in seen["env"]  # type: ignore[operator]


# -- the file reader: one clear message per refusal -----------------------------------------------
def file_reader(slack: SlackFake, **overrides: object) -> FileReader:
    settings = settings_for(slack, "redis://unused", "unused", pdf_readers=1, **overrides)
    return FileReader(web_client(settings, BotMetrics()), settings)


@pytest.fixture()
def reader(slack: SlackFake) -> FileReader:
    """A reader with the default time limits: the bomb below costs pypdf over a second of parsing on
    a slow 2-core machine before the character count stops it, and that must end as "too long"."""
    return file_reader(slack)


def refusal(call) -> InputError:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("name, data, code, words", [
    ("bomb.pdf", repeated_stream(4000), "passage_too_long",
     f"bomb.pdf is too large to read: it holds more than {LIMIT:,} characters"),
    ("locked.pdf", encrypted("secret", "AES-256"), "pdf_encrypted", "locked.pdf is encrypted with a password"),
    ("long.txt", b"word " * LIMIT, "passage_too_long", "long.txt is too large to read"),
    ("broken.pdf", b"%PDF-1.4\nnot really", "pdf_unreadable", "I could not read broken.pdf as a PDF"),
], ids=["bomb.pdf", "locked.pdf", "long.txt", "broken.pdf"])  # named: the encrypted file's bytes differ per process
def test_each_refusal_says_what_happened(slack: SlackFake, reader: FileReader, name: str, data: bytes,
                                         code: str, words: str) -> None:
    problem = refusal(lambda: reader.read_file(slack.add_file(name, data)))
    assert problem.code == code and problem.message.startswith(words)


def test_files_share_what_is_left_of_the_passage(slack: SlackFake, reader: FileReader) -> None:
    # 3,000 + a blank line + 1,998 = 5,000 characters: a full passage.
    first, second = slack.add_file("a.txt", b"a" * 3000), slack.add_file("b.pdf", make_pdf(["b" * 1998]))
    assert [part.text for part in reader.read_files([first, second], used=0)] == ["a" * 3000, "b" * 1998]
    problem = refusal(lambda: reader.read_files([first, second], used=1))  # three characters too many
    assert problem.message.startswith("b.pdf is too large to read: with the rest of the message it holds")


def test_a_pdf_waits_for_a_free_reader_then_gives_up(slack: SlackFake) -> None:
    reader = file_reader(slack, pdf_timeout_s=1.0)  # the wait for a free reader is this long
    file = slack.add_file("queued.pdf", make_pdf(["fine"]))
    assert reader._readers.acquire(timeout=1)  # the one reader is busy
    try:
        assert refusal(lambda: reader.read_file(file)).code == "pdf_busy"
    finally:
        reader._readers.release()
    assert reader.read_file(file) == "fine"


# -- end to end: the bot, its Redis, signed requests ----------------------------------------------
@pytest.fixture()
def bot(slack: SlackFake, module_redis: RedisServer, namespace: str) -> Iterator[BotUnderTest]:
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, namespace, max_file_bytes=1024 * 1024))
    yield under_test
    under_test.close()


def stored(bot: BotUnderTest) -> dict[str, int]:
    """Every key of the bot's namespace and its size in bytes (Redis' MEMORY USAGE)."""
    client = bot.queue.redis
    return {key: int(client.memory_usage(key) or 0) for key in client.scan_iter(f"{bot.settings.namespace}:*")}


@pytest.mark.parametrize("name, data", [
    ("bomb.pdf", repeated_stream(4000)),
    ("pages.pdf", shared_stream(5, 1000)),
    ("forms.pdf", form_bomb(5000)),
    ("long.txt", b"word " * LIMIT),
], ids=["bomb.pdf", "pages.pdf", "forms.pdf", "long.txt"])
def test_a_thread_about_an_oversized_file_caches_and_queues_nothing(bot: BotUnderTest, name: str,
                                                                    data: bytes) -> None:
    channel = unique("C")
    root = bot.fake.add_message(channel, {"user": "UPOSTER", "text": "", "files": [bot.fake.add_file(name, data)]})
    bot.mention(channel, "What does it say?", thread_ts=root["ts"])
    told = bot.wait_ephemeral(channel, timeout=30)
    assert told["user"] == "UASKER" and f"{name} is too large to read" in told["text"]
    keys = stored(bot)
    assert not [key for key in keys if ":doc:" in key or ":passage:" in key]
    assert bot.jobs() == []
    assert sum(keys.values()) < 10_000, keys  # markers only: no text


def test_files_alone_at_the_top_level_are_refused_at_once(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.mention(channel, "", files=[bot.fake.add_file("bomb.pdf", repeated_stream(4000))])
    assert "bomb.pdf is too large to read" in bot.wait_ephemeral(channel, timeout=30)["text"]
    assert not [key for key in stored(bot) if ":doc:" in key]
