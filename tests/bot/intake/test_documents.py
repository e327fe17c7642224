"""Passage text from Slack messages and files, downloaded over real HTTP from the fake."""
from __future__ import annotations

from dataclasses import replace

import pytest
import redis

from bot.intake.documents import Document, Documents
from bot.intake.files import FileReader, file_kind
from bot.services import web_client
from bot.settings import BotSettings
from explain_core.errors import InputError
from explain_core.queue import Keys
from tests.support.bot_harness import settings_for, slack
from tests.support.pdfs import make_pdf
from tests.support.slack_fake import SlackFake

__all__ = ["slack"]


@pytest.fixture()
def settings(slack: SlackFake) -> BotSettings:
    return settings_for(slack, "redis://unused", "unused", max_file_bytes=4000, max_pdf_pages=3,
                        download_timeout_s=0.5)


@pytest.fixture()
def reader(settings: BotSettings) -> FileReader:
    return FileReader(web_client(settings), settings)


@pytest.fixture()
def documents(settings: BotSettings, reader: FileReader) -> Documents:
    """Documents whose Redis is never reached: reading a message needs no cache."""
    return Documents(reader, web_client(settings), redis.Redis.from_url(settings.redis.url), Keys(settings.namespace),
                     settings.doc_cache_ttl_s)


def code_of(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as caught:
        call()
    return caught.value.code


@pytest.mark.parametrize("file, kind", [
    ({"name": "a.TXT"}, "text"), ({"name": "notes.md"}, "text"), ({"name": "r.pdf"}, "pdf"),
    ({"name": "Untitled", "filetype": "text"}, "text"), ({"name": "x.png", "filetype": "png"}, None),
    ({"name": "sheet.xlsx"}, None),
])
def test_file_kinds(file: dict, kind: str | None) -> None:
    assert file_kind(file) == kind


def test_message_text_and_files_in_order(slack: SlackFake, documents: Documents) -> None:
    files = [slack.add_file("a.txt", "café\n".encode()), slack.add_file("b.pdf", make_pdf(["One.", "Two."])),
             slack.add_file("logo.png", b"\x89PNG")]
    document = documents.read_message({"text": "Intro &amp; more", "files": files})
    assert document.text == "Intro & more\n\ncafé\n\n\nOne.\nTwo."
    assert document.sources == ("message", "a.txt", "b.pdf")  # the image is skipped: there is text


def test_latin1_text_and_binary_masquerading_as_text(slack: SlackFake, reader: FileReader) -> None:
    assert reader.read_file(slack.add_file("old.txt", "naïve".encode("latin-1"))) == "naïve"
    assert code_of(lambda: reader.read_file(slack.add_file("bin.txt", b"\x00\x01\x02"))) == "unsupported_file"


def test_stub_file_objects_are_completed_with_files_info(slack: SlackFake, reader: FileReader) -> None:
    full = slack.add_file("stub.txt", b"from files.info")
    stub = {"id": full["id"], "name": "stub.txt", "file_access": "check_file_info"}
    assert reader.read_file(stub) == "from files.info"
    assert slack.calls("files.info", file=full["id"])


def test_size_cap_is_checked_before_and_during_download(slack: SlackFake, reader: FileReader) -> None:
    declared = slack.add_file("big.txt", b"x" * 10, size=5000)
    assert code_of(lambda: reader.read_file(declared)) == "file_too_large"
    assert declared["id"] not in slack.downloads
    understated = slack.add_file("liar.txt", b"x" * 100_000, size=10)
    assert code_of(lambda: reader.read_file(understated)) == "file_too_large"


def test_text_longer_than_the_passage_limit_is_never_downloaded_whole(slack: SlackFake, reader: FileReader,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """No encoding spends more than 4 bytes on a character: a text file of more bytes than that
    times the characters left is refused by its size, or cut off while downloading."""
    monkeypatch.setenv("QA_MAX_PASSAGE_CHARS", "500")
    declared = slack.add_file("long.txt", b"x" * 3_000)
    assert code_of(lambda: reader.read_file(declared)) == "passage_too_long"
    assert declared["id"] not in slack.downloads
    understated = slack.add_file("liar.txt", b"x" * 3_000, size=10)
    assert code_of(lambda: reader.read_file(understated)) == "passage_too_long"
    assert reader.read_file(slack.add_file("fits.txt", "é".encode() * 500)) == "é" * 500  # 1,000 bytes


def test_the_token_goes_only_to_slack(slack: SlackFake, reader: FileReader) -> None:
    elsewhere = slack.add_file("x.txt", b"hi", host_url="https://files.example.com")
    assert code_of(lambda: reader.read_file(elsewhere)) == "file_host_not_allowed"
    plain_http_slack = slack.add_file("y.txt", b"hi", host_url="http://files.slack.com")
    assert code_of(lambda: reader.read_file(plain_http_slack)) == "file_host_not_allowed"
    redirected = slack.add_file("z.txt", b"hi", redirect_to="https://files.example.com/steal")
    with pytest.raises(InputError) as caught:
        reader.read_file(redirected)
    assert caught.value.code == "download_failed" and "don't trust" in caught.value.message


def test_slow_download_stops_at_the_timeout(slack: SlackFake, reader: FileReader) -> None:
    slack.set_download_delay(1.5)
    try:
        with pytest.raises(InputError) as caught:
            reader.read_file(slack.add_file("slow.txt", b"late"))
    finally:
        slack.set_download_delay(0.0)
    assert caught.value.code == "download_failed" and "took too long" in caught.value.message


def test_sign_in_page_means_a_missing_scope(slack: SlackFake) -> None:
    settings = replace(settings_for(slack, "redis://unused", "unused"), bot_token="xoxb-other")
    wrong = FileReader(web_client(settings), settings)
    with pytest.raises(InputError) as caught:
        wrong.read_file({**slack.add_file("a.txt", b"hi"), "size": 2})
    assert "files:read" in caught.value.message


@pytest.mark.parametrize("pdf, code", [
    (make_pdf(["a", "b", "c", "d"]), "pdf_too_many_pages"),
    (make_pdf(["", ""]), "pdf_no_text"),
    (b"%PDF-1.4\nthis is not really a pdf", "pdf_unreadable"),
])
def test_pdf_problems(slack: SlackFake, reader: FileReader, pdf: bytes, code: str) -> None:
    assert code_of(lambda: reader.read_file(slack.add_file("doc.pdf", pdf))) == code


def test_a_message_with_nothing_readable(slack: SlackFake, documents: Documents) -> None:
    assert code_of(lambda: documents.read_message({"text": "  ", "files": []})) == "no_passage"
    image = slack.add_file("photo.jpg", b"\xff\xd8")
    assert code_of(lambda: documents.read_message({"text": "", "files": [image]})) == "unsupported_file"


def test_documents_cached_before_they_had_an_owner_read_back_as_public() -> None:
    old = Document.from_json('{"text": "Old passage.", "sources": ["message"]}')
    assert old == Document("Old passage.", ("message",)) and old.private_to is None
    private = Document("Given privately.", ("message",), private_to="UOWNER")
    assert Document.from_json(private.to_json()) == private


def test_a_message_over_the_passage_limit_is_refused_before_anything_reads_its_files(
        slack: SlackFake, documents: Documents, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_MAX_PASSAGE_CHARS", "10")
    file = slack.add_file("more.txt", b"x")
    assert code_of(lambda: documents.read_message({"text": "eleven char", "files": [file]})) == "passage_too_long"
    assert file["id"] not in slack.downloads
