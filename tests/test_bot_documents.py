"""Passage text from Slack messages and files, downloaded over real HTTP from the fake."""
from __future__ import annotations

from dataclasses import replace

import pytest

from bot.documents import DocumentReader, file_kind, slack_to_plain, without_mention
from bot.services import web_client
from explain_core.errors import InputError
from tests.bot_harness import make_pdf, settings_for, slack
from tests.slack_fake import SlackFake

__all__ = ["slack"]


@pytest.fixture()
def reader(slack: SlackFake) -> DocumentReader:
    settings = settings_for(slack, "redis://unused", "unused", max_file_bytes=4000, max_pdf_pages=3,
                            download_timeout_s=0.5)
    return DocumentReader(web_client(settings), settings)


def code_of(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as caught:
        call()
    return caught.value.code


@pytest.mark.parametrize("slack_text, plain", [
    ("Ask <@U123> or <@U456|maria> in <#C1|general>", "Ask @U123 or @maria in #general"),
    ("<!here> <!channel> <!everyone> <!subteam^S9|@editors>", "@here @channel @everyone @editors"),
    ("See <https://example.com/a?b=1&amp;c=2|the docs> or <https://x.org>", "See the docs or https://x.org"),
    ("mail <mailto:a@b.org|a@b.org> on <!date^1392734382^{date}|Feb 18th>", "mail a@b.org on Feb 18th"),
    ("1 &lt; 2 &amp;&amp; 3 &gt; 2", "1 < 2 && 3 > 2"),
    ("a | b", "a | b"),
])
def test_slack_markup_becomes_what_the_reader_saw(slack_text: str, plain: str) -> None:
    assert slack_to_plain(slack_text) == plain


def test_only_the_bots_own_mention_is_removed() -> None:
    assert without_mention("<@UBOT> who is <@U2>?", "UBOT") == "who is <@U2>?"
    assert without_mention("<@UBOT|explain> hi", "UBOT") == "hi"


@pytest.mark.parametrize("file, kind", [
    ({"name": "a.TXT"}, "text"), ({"name": "notes.md"}, "text"), ({"name": "r.pdf"}, "pdf"),
    ({"name": "Untitled", "filetype": "text"}, "text"), ({"name": "x.png", "filetype": "png"}, None),
    ({"name": "sheet.xlsx"}, None),
])
def test_file_kinds(file: dict, kind: str | None) -> None:
    assert file_kind(file) == kind


def test_message_text_and_files_in_order(slack: SlackFake, reader: DocumentReader) -> None:
    files = [slack.add_file("a.txt", "café\n".encode()), slack.add_file("b.pdf", make_pdf(["One.", "Two."])),
             slack.add_file("logo.png", b"\x89PNG")]
    document = reader.read_message({"text": "Intro &amp; more", "files": files})
    assert document.text == "Intro & more\n\ncafé\n\n\nOne.\nTwo."
    assert document.sources == ("message", "a.txt", "b.pdf")  # the image is skipped: there is text


def test_latin1_text_and_binary_masquerading_as_text(slack: SlackFake, reader: DocumentReader) -> None:
    assert reader.read_file(slack.add_file("old.txt", "naïve".encode("latin-1"))) == "naïve"
    assert code_of(lambda: reader.read_file(slack.add_file("bin.txt", b"\x00\x01\x02"))) == "unsupported_file"


def test_stub_file_objects_are_completed_with_files_info(slack: SlackFake, reader: DocumentReader) -> None:
    full = slack.add_file("stub.txt", b"from files.info")
    assert reader.read_file({"id": full["id"], "name": "stub.txt", "file_access": "check_file_info"}) == "from files.info"
    assert slack.calls("files.info", file=full["id"])


def test_size_cap_is_checked_before_and_during_download(slack: SlackFake, reader: DocumentReader) -> None:
    declared = slack.add_file("big.txt", b"x" * 10, size=5000)
    assert code_of(lambda: reader.read_file(declared)) == "file_too_large"
    assert declared["id"] not in slack.downloads
    understated = slack.add_file("liar.txt", b"x" * 100_000, size=10)
    assert code_of(lambda: reader.read_file(understated)) == "file_too_large"


def test_the_token_goes_only_to_slack(slack: SlackFake, reader: DocumentReader) -> None:
    elsewhere = slack.add_file("x.txt", b"hi", host_url="https://files.example.com")
    assert code_of(lambda: reader.read_file(elsewhere)) == "file_host_not_allowed"
    plain_http_slack = slack.add_file("y.txt", b"hi", host_url="http://files.slack.com")
    assert code_of(lambda: reader.read_file(plain_http_slack)) == "file_host_not_allowed"
    redirected = slack.add_file("z.txt", b"hi", redirect_to="https://files.example.com/steal")
    with pytest.raises(InputError) as caught:
        reader.read_file(redirected)
    assert caught.value.code == "download_failed" and "don't trust" in caught.value.message


def test_slow_download_stops_at_the_timeout(slack: SlackFake, reader: DocumentReader) -> None:
    slack.set_download_delay(1.5)
    try:
        with pytest.raises(InputError) as caught:
            reader.read_file(slack.add_file("slow.txt", b"late"))
    finally:
        slack.set_download_delay(0.0)
    assert caught.value.code == "download_failed" and "took too long" in caught.value.message


def test_sign_in_page_means_a_missing_scope(slack: SlackFake) -> None:
    settings = replace(settings_for(slack, "redis://unused", "unused"), bot_token="xoxb-other")
    wrong = DocumentReader(web_client(settings), settings)
    with pytest.raises(InputError) as caught:
        wrong.read_file({**slack.add_file("a.txt", b"hi"), "size": 2})
    assert "files:read" in caught.value.message


@pytest.mark.parametrize("pdf, code", [
    (make_pdf(["a", "b", "c", "d"]), "pdf_too_many_pages"),
    (make_pdf(["", ""]), "pdf_no_text"),
    (b"%PDF-1.4\nthis is not really a pdf", "pdf_unreadable"),
])
def test_pdf_problems(slack: SlackFake, reader: DocumentReader, pdf: bytes, code: str) -> None:
    assert code_of(lambda: reader.read_file(slack.add_file("doc.pdf", pdf))) == code


def test_a_message_with_nothing_readable(slack: SlackFake, reader: DocumentReader) -> None:
    assert code_of(lambda: reader.read_message({"text": "  ", "files": []})) == "no_passage"
    image = slack.add_file("photo.jpg", b"\xff\xd8")
    assert code_of(lambda: reader.read_message({"text": "", "files": [image]})) == "unsupported_file"
