"""A question in a message (a mention, or a direct message): what it is about and where
the reply goes. Shared by both event listeners so they behave the same way.

- In a thread: the question is about the thread's document (its first message and files, or
  the passage given with `/explain`, which only its asker may question; see bot/intake/documents.py).
- At the top level: `question | passage`, or a question with attached files (the files are
  the passage), or files alone (read now, so problems show at once; ask in their thread).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Literal

from bot.intake.parsing import HELP_WORDS, parse_options, slack_to_plain, split_question
from bot.intake.submit import Ask
from bot.listeners.guard import guarded
from bot.services import Services
from bot.ui import blocks

HOW_TO = {
    "mention": "Mention me with a question in the thread of a document (pasted text, or a .txt, .md or .pdf "
               "file), or write `question | passage` after my name.",
    "dm": "Send me `question | passage`, or post a document (pasted text, or a .txt, .md or .pdf file) "
          "and ask your question in its thread.",
}


def answer_message(svc: Services, event: dict[str, Any], team: str, text: str,
                   where: Literal["mention", "dm"]) -> None:
    """Handle one message event whose `text` (Slack markup, bot mention removed) is the question."""
    channel, user, ts = event["channel"], event["user"], event["ts"]
    reply_in = event.get("thread_ts") or ts
    key = f"event:{team}:{channel}:{ts}"

    def tell(message: blocks.Message) -> None:
        svc.intake.tell(channel, user, reply_in, message)

    def work() -> None:
        if not svc.intake.first_delivery(key, uuid.uuid4().hex):
            return  # Slack retried an event we already took
        with svc.intake.taking(key, team, channel, user, reply_in, slack_to_plain(text)):
            answer(svc, event, team, text, where, key, tell)

    guarded(work, tell)


def answer(svc: Services, event: dict[str, Any], team: str, text: str, where: Literal["mention", "dm"], key: str,
           tell: Callable[[blocks.Message], None]) -> None:
    """The question of a message event taken once: read what it is about and submit it, or say why not."""
    channel, user, ts = event["channel"], event["user"], event["ts"]
    thread_ts = event.get("thread_ts")
    files = event.get("files") or []
    options, rest = parse_options(slack_to_plain(text))
    if rest.lower() in HELP_WORDS or (not rest and not files):
        tell(blocks.help_message())
        return
    if thread_ts is not None and thread_ts != ts:  # in a thread: about the thread's document
        if not rest:
            tell(blocks.error("Write your question in the message, "
                              "and I'll answer it about this thread's document."))
            return
        document = svc.documents.for_thread(team, channel, thread_ts, user)
        svc.intake.submit(Ask(key=key, team=team, channel=channel, user=user, question=rest,
                              passage=document.text, thread_ts=thread_ts, options=options,
                              sources=document.sources))
        return
    question, passage = split_question(rest)
    if passage is not None:
        svc.intake.submit(Ask(key=key, team=team, channel=channel, user=user, question=question,
                              passage=passage, thread_ts=ts, options=options, remember=True))
    elif files and not question:
        document = svc.documents.for_thread(team, channel, ts, user, {**event, "text": ""})  # the mention alone
        tell(blocks.notice(f"I've read {', '.join(document.sources)}. Ask your question in this "
                               "message's thread" + (" (mention me)." if where == "mention" else ".")))
    elif files:
        document = svc.documents.read_files(files)
        svc.intake.submit(Ask(key=key, team=team, channel=channel, user=user, question=question,
                              passage=document.text, thread_ts=ts, options=options, remember=True,
                              sources=document.sources))
    else:
        tell(blocks.error(HOW_TO[where]))
