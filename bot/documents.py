"""The passage a question is asked about: read from a message and its files, and kept in
Redis between questions.

A thread's document (its root message and files) is extracted once and cached for later
questions in that thread, so a long PDF is not downloaded and parsed again for every
mention. The message shortcut's message waits here too, until its form is submitted: the
shortcut's payload carries the whole message, which the submission does not, and a message
can be far longer than a view's private_metadata (3,000 characters).

Redis errors become `Unavailable` here, so a listener tells the user without knowing Redis.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.files import SUPPORTED_HELP, FileReader, NamedText
from bot.parsing import slack_to_plain
from explain_core.codec import dumps, from_object, to_object
from explain_core.errors import InputError, Unavailable
from explain_core.queue import Keys

log = logging.getLogger(__name__)

# What a message's document needs from a stashed message; the rest (reactions, blocks) is left out.
_KEPT = ("ts", "thread_ts", "text", "files", "user")


@dataclass(frozen=True)
class Document:
    """The passage a question is asked about, and where it came from (for messages to the user)."""

    text: str
    sources: tuple[str, ...]

    @classmethod
    def joined(cls, parts: list[NamedText]) -> Document:
        """One passage from several texts, a blank line between them, named by their sources."""
        return cls("\n\n".join(part.text for part in parts), tuple(part.name for part in parts))

    def to_json(self) -> str:
        return dumps(to_object(self))

    @classmethod
    def from_json(cls, data: str | bytes) -> Document:
        return from_object(cls, json.loads(data), "cached document")


@contextmanager
def _redis_or_unavailable() -> Iterator[None]:
    """A Redis error as `Unavailable`: the user hears the queue is down, as from the intake."""
    try:
        yield
    except redis.RedisError:
        raise Unavailable() from None


class Documents:
    """Reads the documents of messages and threads, caches a thread's (`Keys.document`) and
    keeps the shortcut's message until its form is submitted (`Keys.stash`); `ttl_s` is how long a
    thread's document stays cached (QA_DOC_CACHE_TTL_S)."""

    def __init__(self, files: FileReader, client: WebClient, redis_client: redis.Redis, keys: Keys,
                 ttl_s: int) -> None:
        self._files = files
        self._client = client
        self._redis = redis_client
        self._keys = keys
        self._ttl_s = ttl_s

    def read_message(self, message: dict[str, Any]) -> Document:
        """The message's text plus the text of its supported files.

        Unsupported files (images, spreadsheets) are skipped when something else is readable,
        so a document with a screenshot still works; alone they are an error that says why.
        """
        text = slack_to_plain(message.get("text") or "").strip()
        parts = [NamedText("message", text)] if text else []
        parts += self._files.read_files(message.get("files") or [], required=not text)
        if not parts:
            raise InputError("no_passage", "That message has no text and no file I can read. "
                                           f"Post the document as text or as {SUPPORTED_HELP}.")
        return Document.joined(parts)

    def read_files(self, files: list[dict[str, Any]]) -> Document:
        """The supported files as one passage (the message's text is the question)."""
        return Document.joined(self._files.read_files(files))

    def for_thread(self, team: str, channel: str, root_ts: str,
                   root: dict[str, Any] | None = None) -> Document:
        """The thread's document: from the cache, else from `root` (or the fetched root message)."""
        with _redis_or_unavailable():
            data = self._redis.get(self._keys.document(team, channel, root_ts))
        if data is not None:
            return Document.from_json(data)
        document = self.read_message(root if root is not None else self._fetch_root(channel, root_ts))
        self.remember(team, channel, root_ts, document)
        return document

    def remember(self, team: str, channel: str, root_ts: str, document: Document) -> None:
        """Cache `document` as the thread's, so follow-up questions in the thread reuse it."""
        with _redis_or_unavailable():
            self._redis.set(self._keys.document(team, channel, root_ts), document.to_json(),
                            ex=self._ttl_s)

    def stash(self, team: str, channel: str, message: dict[str, Any]) -> None:
        """Keep the message the shortcut's form asks about until the form is submitted."""
        kept = {k: v for k, v in message.items() if k in _KEPT}
        try:
            self._redis.set(self._keys.stash(team, channel, message["ts"]), json.dumps(kept), ex=Keys.STASH_TTL_S)
        except redis.RedisError:
            # The submission will find no stash, fetch the message, and report Redis if it is still down.
            log.warning("could not stash the shortcut's message: Redis unavailable")

    def stashed(self, team: str, channel: str, ts: str) -> Document:
        """The document of the message `stash` kept, read as the root of its thread; once the
        stash has expired, the message is fetched from Slack."""
        with _redis_or_unavailable():
            data = self._redis.get(self._keys.stash(team, channel, ts))
        return self.for_thread(team, channel, ts, json.loads(data) if data is not None else None)

    def _fetch_root(self, channel: str, root_ts: str) -> dict[str, Any]:
        try:
            messages = self._client.conversations_replies(channel=channel, ts=root_ts, limit=1)["messages"]
        except SlackApiError as exc:
            raise InputError("thread_unreadable",
                             f"I can't read this thread (Slack said: {exc.response.get('error')}). "
                             "Invite me to the channel, then ask again.") from None
        if not messages:
            raise InputError("thread_unreadable", "I can't find the first message of this thread.")
        return dict(messages[0])
