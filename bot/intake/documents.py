"""The passage a question is asked about: read from a message and its files, and kept in
Redis between questions.

A thread's document (its root message and files) is extracted once and cached for later
questions in that thread, so a long PDF is not downloaded and parsed again for every
mention. The message shortcut's message waits here too, until its form is submitted: the
shortcut's payload carries the whole message, which the submission does not, and a message
can be far longer than a view's private_metadata (3,000 characters).

What is kept, and for whom:
- Only a passage that meets the passage rules (`explain_core.validation`) is cached; files
  are read only up to the passage limit (`bot.intake.files`), so nothing longer is ever stored.
- A document is public (a message and its files: everyone in the conversation can read
  them) or private to the person who typed it where only they saw it (the `/explain`
  command and its form). A private document answers follow-up questions from that
  person only.
- A thread document lives `ttl_s` (QA_DOC_CACHE_TTL_S) from when it was given. After that,
  a thread whose first message is the bot's own reply (the `/explain` threads) has no
  passage to read again: the asker is told so, and the bot's reply is never taken for the
  passage. The shortcut's message is kept until the form is submitted (at most an hour).

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

from bot.intake.files import SEPARATOR, SUPPORTED_HELP, FileReader, NamedText
from bot.intake.parsing import slack_to_plain
from bot.workspaces import Workspace, current
from explain_core.codec import dumps, from_object, to_object
from explain_core.errors import InputError
from explain_core.queue import Keys
from explain_core.queue.connect import unavailable
from explain_core.validation import passage_problem

log = logging.getLogger(__name__)

# What a message's document needs from a stashed message; the rest (reactions, blocks) is left out.
_KEPT = ("ts", "thread_ts", "text", "files", "user")


@dataclass(frozen=True)
class Document:
    """The passage a question is asked about, where it came from (for messages to the user),
    and who may ask about it: `private_to` is None for a passage everyone in the conversation
    can read, else the user id of the one person who may. Documents cached before the field
    existed read back as public."""

    text: str
    sources: tuple[str, ...]
    private_to: str | None = None

    @classmethod
    def joined(cls, parts: list[NamedText]) -> Document:
        """One passage from several texts, a blank line between them, named by their sources."""
        return cls(SEPARATOR.join(part.text for part in parts), tuple(part.name for part in parts))

    def to_json(self) -> str:
        return dumps(to_object(self))

    @classmethod
    def from_json(cls, data: str | bytes) -> Document:
        return from_object(cls, json.loads(data), "cached document")


@contextmanager
def _redis_or_unavailable() -> Iterator[None]:
    """A Redis error as `Unavailable`: the user hears the queue is down or refusing, as from the intake."""
    try:
        yield
    except redis.RedisError as exc:
        raise unavailable(exc) from None


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
        # The bot's own user and bot ids, from auth.test, by workspace (each installation has its own).
        self._me: dict[Workspace | None, frozenset[str]] = {}

    def read_message(self, message: dict[str, Any]) -> Document:
        """The message's text plus the text of its supported files, refused (InputError) unless
        it is a passage the worker would take.

        Unsupported files (images, spreadsheets) are skipped when something else is readable,
        so a document with a screenshot still works; alone they are an error that says why.
        """
        text = slack_to_plain(message.get("text") or "").strip()
        parts = [NamedText("message", text)] if text else []
        parts += self._files.read_files(message.get("files") or [], required=not text, used=len(text))
        if not parts:
            raise InputError("no_passage", "That message has no text and no file I can read. "
                                           f"Post the document as text or as {SUPPORTED_HELP}.")
        return _checked(Document.joined(parts))

    def read_files(self, files: list[dict[str, Any]]) -> Document:
        """The supported files as one passage (the message's text is the question)."""
        return _checked(Document.joined(self._files.read_files(files)))

    def for_thread(self, team: str, channel: str, root_ts: str, asker: str,
                   root: dict[str, Any] | None = None) -> Document:
        """The thread's document for `asker`: from the cache, else read from `root` (or the
        fetched root message) and cached.

        A private document is refused to anyone but the person who gave it. A root message
        that is the bot's own reply means the passage given with it has expired: that is
        said, and the reply is not read in its place.
        """
        with _redis_or_unavailable():
            cached = self._cached(team, channel, root_ts)
        if cached is not None:
            if cached.private_to not in (None, asker):
                raise InputError("private_document",
                                 "This thread's passage was given to me privately with `/explain`, so only the "
                                 "person who gave it can ask about it. To ask about it yourself, give me the "
                                 "passage: `/explain your question | the passage`.")
            return cached
        if root is None:
            root = self._fetch_root(channel, root_ts)
            if self._is_mine(root):
                raise InputError("document_expired",
                                 f"I keep a thread's passage for {duration(self._ttl_s)}, and this thread's is "
                                 "gone. Ask again with the passage: `/explain your question | the passage`, or post "
                                 "it (or its file) and mention me in its thread.")
        document = self.read_message(root)
        self.remember(team, channel, root_ts, document)
        return document

    def remember(self, team: str, channel: str, root_ts: str, document: Document) -> None:
        """Cache `document` as the thread's, so follow-up questions in the thread reuse it."""
        with _redis_or_unavailable():
            self._redis.set(self._keys.document(team, channel, root_ts), document.to_json(),
                            ex=self._ttl_s)

    def _cached(self, team: str, channel: str, root_ts: str) -> Document | None:
        data = self._redis.get(self._keys.document(team, channel, root_ts))
        return None if data is None else Document.from_json(data)

    def stash(self, team: str, channel: str, message: dict[str, Any]) -> None:
        """Keep the message the shortcut's form asks about until the form is submitted."""
        kept = {k: v for k, v in message.items() if k in _KEPT}
        try:
            self._redis.set(self._keys.stash(team, channel, message["ts"]), json.dumps(kept), ex=Keys.STASH_TTL_S)
        except redis.RedisError:
            # The submission will find no stash, fetch the message, and report Redis if it is still down.
            log.warning("could not stash the shortcut's message: Redis unavailable")

    def stashed(self, team: str, channel: str, ts: str) -> Document:
        """The document of the message `stash` kept (taken out: it is no longer needed), cached
        as the root of its thread; once the stash has expired, the message is fetched from Slack.

        The message is read as it shows: a private document cached under its ts (the bot's
        reply to `/explain` roots the thread of that passage) is neither used nor replaced.
        """
        with _redis_or_unavailable():
            cached = self._cached(team, channel, ts)
            data = self._redis.getdel(self._keys.stash(team, channel, ts))
        if cached is not None and cached.private_to is None:
            return cached
        document = self.read_message(json.loads(data) if data is not None else self._fetch_root(channel, ts))
        if cached is None:
            self.remember(team, channel, ts, document)
        return document

    def _is_mine(self, message: dict[str, Any]) -> bool:
        """Whether the bot itself posted `message` (its ids are asked of Slack once)."""
        if not message.get("bot_id"):
            return False  # a person's message
        workspace = current()
        me = self._me.get(workspace)
        if me is None:
            try:
                auth = self._client.auth_test()
            except SlackApiError as exc:
                raise InputError("thread_unreadable",
                                 f"I can't read this thread right now (Slack said: {exc.response.get('error')}). "
                                 "Please ask again in a minute.") from None
            me = self._me[workspace] = frozenset(str(auth[name]) for name in ("user_id", "bot_id") if auth.get(name))
        return message.get("bot_id") in me or message.get("user") in me

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


def _checked(document: Document) -> Document:
    """`document` if the worker would take its passage; else the reason, before it is cached."""
    problem = passage_problem(document.text)
    if problem is not None:
        raise problem
    return document


def duration(seconds: int) -> str:
    """24 hours, 90 minutes, 45 seconds: the largest unit that divides it."""
    unit, size = next(((u, s) for u, s in (("hour", 3600), ("minute", 60)) if seconds % s == 0), ("second", 1))
    count = seconds // size
    return f"{count} {unit}{'' if count == 1 else 's'}"
