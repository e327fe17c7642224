"""Bounded cost for every file: PDF bombs, long text and encrypted PDFs, read by real child
processes (`bot.intake.extract`) and, end to end, by the bot driven with signed requests.

The bombs (tests/support/pdfs.py) are small on disk: one compressed content stream that expands
to millions of characters, pages sharing one such stream, a form drawn thousands of times, a page
of drawing operators. Before the sandbox a 69 KB bomb of the first kind cost the bot 40 s of CPU
and returned 32 million characters, which were cached in Redis before the passage limit refused
them; with the sandbox but before the reader's budgets, a 100 KB one cost the reader child 4.5 s
of CPU and 489 MB, and was told "took too long" or "needs more memory" as the machine was loaded.
"""
from __future__ import annotations

import contextlib
import io
import os
import resource
import subprocess
import sys
from collections.abc import Iterator

import pytest
from pypdf import PdfReader, PdfWriter

from bot.intake.extract import PdfLimits, read_pdf
from bot.intake.files import FileReader
from bot.services import web_client
from explain_core import defaults
from explain_core.errors import InputError
from tests.support.bot_harness import BotUnderTest, module_redis, settings_for, slack, unique
from tests.support.pdfs import drawing, form_bomb, letters, make_pdf, repeated_stream, shared_stream
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import SlackFake

__all__ = ["module_redis", "slack"]  # fixtures used by name

LIMIT = 5_000  # QA_MAX_PASSAGE_CHARS for these tests: small, so that honest files fill it cheaply


def encrypted(password: str, algorithm: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["The key is under the mat."]))))
    writer.encrypt(user_password=password, owner_password="owner", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def limits(**overrides: object) -> PdfLimits:
    return PdfLimits(**{"max_chars": LIMIT, "max_pages": 50, "cpu_s": defaults.PDF_CPU_S,
                        "memory_mb": defaults.PDF_MEMORY_MB, "timeout_s": 20.0, **overrides})  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def small_passages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_MAX_PASSAGE_CHARS", str(LIMIT))


# -- the reader process ---------------------------------------------------------------------
@pytest.mark.parametrize("bomb", [
    pytest.param(lambda: repeated_stream(900), id="900K characters in one 3 KB stream"),
    pytest.param(lambda: shared_stream(5, 900), id="5 pages sharing one stream"),
    pytest.param(lambda: form_bomb(5000), id="a 900K-character form drawn 5,000 times"),
])
def test_bombs_stop_at_the_passage_limit(bomb) -> None:  # type: ignore[no-untyped-def]
    data = bomb()
    assert len(data) < 20_000
    found = read_pdf(data, limits())
    assert (found.outcome, found.text) == ("too_long", "")
    assert 0 < found.peak_mb < defaults.PDF_MEMORY_MB and found.cpu_s > 0  # the child answered, within its limits


def test_text_up_to_the_limit_is_read_whole() -> None:
    page = "x" * 999
    found = read_pdf(make_pdf([page] * 5), limits())  # 5 x 999 + 4 newlines = 4,999 characters
    assert found.outcome == "text" and found.text == "\n".join([page] * 5) and found.pages == 5
    assert read_pdf(make_pdf([page] * 5 + ["yy"]), limits()).outcome == "too_long"


# 100 KB bombs, and the files that cost the most within the budgets (what the reader may take on).
COSTLY = {
    "100 KB: a stream of 45M characters": (lambda: repeated_stream(45_000), "too_big"),
    "100 KB: 4.6M rectangles in one stream": (lambda: drawing(1, 4_650_000), "too_big"),
    "100 KB: 9.7M one-letter texts in one stream": (lambda: letters(1, 9_740_000), "too_big"),
    "a form of 1M characters drawn 5,000 times": (lambda: form_bomb(5000, 1000), "too_big"),
    "under a stream's budgets: 990 KB of text": (lambda: repeated_stream(985), "too_long"),
    "under a stream's budgets: 19,000 rectangles": (lambda: drawing(1, 19_000), "text"),
    "the same on 50 pages": (lambda: drawing(50, 19_000), "too_slow"),
    "a form of 990 KB of text drawn 5,000 times": (lambda: form_bomb(5000, 985), "too_long"),
}


@pytest.mark.parametrize("name", COSTLY)
def test_any_file_costs_a_reader_at_most_5_s_and_256_mb(name: str) -> None:
    """The reader's budgets stop each file by what it holds, long before its process limits: the
    same answer whatever the load, decided by the file (`bot.intake.extract`); with the default
    passage limit, which holds the text shown."""
    build, outcome = COSTLY[name]
    data = build()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = read_pdf(data, limits(max_chars=defaults.MAX_PASSAGE_CHARS))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(f"\n{name} ({len(data):,} bytes): {found.outcome}, {cpu_s:.2f} s CPU, peak {found.peak_mb:.0f} MB")
    assert found.outcome == outcome
    assert 0 < found.peak_mb <= 256 and cpu_s <= 5.0  # the child's own peak (VmHWM) and its CPU time
    assert found.peak_mb <= 150 and found.cpu_s <= 3.0  # and with room to spare: a budget stopped it


@contextlib.contextmanager
def crowded() -> Iterator[None]:
    """A loaded machine, for this process and the readers it starts: all on one CPU with three
    processes that spin on it, so a reader gets about a quarter of a CPU."""
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    spin = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(3)]
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def test_a_bomb_is_told_the_same_on_an_idle_and_a_loaded_machine() -> None:
    """Measured before: a bomb that needed more memory than a reader gets was told so on an idle
    machine and "took too long" on a loaded one (the wall-clock deadline fired first)."""
    bombs = [repeated_stream(45_000), drawing(1, 4_650_000), letters(1, 9_740_000), form_bomb(5000, 1000)]
    idle = [read_pdf(data, limits(max_chars=defaults.MAX_PASSAGE_CHARS)) for data in bombs]
    with crowded():
        loaded = [read_pdf(data, limits(max_chars=defaults.MAX_PASSAGE_CHARS, timeout_s=defaults.PDF_TIMEOUT_S))
                  for data in bombs]
    assert [found.outcome for found in idle] == [found.outcome for found in loaded] == ["too_big"] * 4
    assert all(found.cpu_s < 1.0 for found in idle + loaded)  # stopped by a budget: the file decides


def test_a_reader_over_its_cpu_limit_is_stopped_and_says_what_it_used() -> None:
    # No budget stops it: without a passage limit, 10 pages showing 985,000 characters each take seconds.
    found = read_pdf(shared_stream(10, 985), limits(max_chars=10**9, cpu_s=1))
    assert found.outcome == "too_slow" and 0.9 <= found.cpu_s < 2.5 and found.peak_mb > 0


def test_a_reader_killed_at_its_deadline_with_cpu_time_left_says_the_machine_is_busy() -> None:
    """The deadline alone: a loaded machine, not the file (before: "took too long", wrongly)."""
    assert read_pdf(make_pdf(["fine"]), limits(timeout_s=0.05)).outcome == "busy"  # not even started


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
    return FileReader(web_client(settings), settings)


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
    ("bomb.pdf", repeated_stream(900), "passage_too_long",
     f"bomb.pdf is too large to read: it holds more than {LIMIT:,} characters"),
    ("locked.pdf", encrypted("secret", "AES-256"), "pdf_encrypted", "locked.pdf is encrypted with a password"),
    ("long.txt", b"word " * LIMIT, "passage_too_long", "long.txt is too large to read"),
    ("broken.pdf", b"%PDF-1.4\nnot really", "pdf_unreadable", "I could not read broken.pdf as a PDF"),
], ids=["bomb.pdf", "locked.pdf", "long.txt", "broken.pdf"])  # named: the encrypted file's bytes differ per process
def test_each_refusal_says_what_happened(slack: SlackFake, reader: FileReader, name: str, data: bytes,
                                         code: str, words: str) -> None:
    problem = refusal(lambda: reader.read_file(slack.add_file(name, data)))
    assert problem.code == code and problem.message.startswith(words)


def test_a_reader_cut_off_by_a_busy_machine_says_so(slack: SlackFake) -> None:
    reader = file_reader(slack, pdf_timeout_s=0.05)  # not even time to start: the machine, not the file
    problem = refusal(lambda: reader.read_file(slack.add_file("fine.pdf", make_pdf(["fine"]))))
    assert problem.code == "pdf_busy" and problem.message.startswith("I'm too busy to finish reading fine.pdf")


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
    ("bomb.pdf", repeated_stream(900)),
    ("pages.pdf", shared_stream(5, 900)),
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
    bot.mention(channel, "", files=[bot.fake.add_file("bomb.pdf", repeated_stream(900))])
    assert "bomb.pdf is too large to read" in bot.wait_ephemeral(channel, timeout=30)["text"]
    assert not [key for key in stored(bot) if ":doc:" in key]
