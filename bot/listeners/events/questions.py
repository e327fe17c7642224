"""A question in a message (a mention, or a direct message): what it is about and where
the reply goes. Shared by both event listeners so they behave the same way.

- In a thread: the question is about the thread's document (its first message and files).
- At the top level: `question | passage`, or a question with attached files (the files are
  the passage), or files alone (read now, so problems show at once; ask in their thread).
"""
from __future__ import annotations

from typing import Any, Literal

from bot import blocks
from bot.documents import slack_to_plain
from bot.intake import HELP_WORDS, Ask, parse_options, split_question
from bot.listeners.guard import guarded
from bot.services import Services

HOW_TO = {
    "mention": "Mention me with a question in the thread of a document (pasted text, or a .txt, .md or .pdf "
               "file), or write `question | passage` after my name.",
    "dm": "Send me `question | passage`, or post a document (pasted text, or a .txt, .md or .pdf file) "
          "and ask your question in its thread.",
}


def answer_message(qa: Services, event: dict[str, Any], team: str, text: str,
                   where: Literal["mention", "dm"]) -> None:
    """Handle one message event whose `text` (Slack markup, bot mention removed) is the question."""
    channel, user, ts = event["channel"], event["user"], event["ts"]
    thread_ts = event.get("thread_ts")
    files = event.get("files") or []
    in_thread = thread_ts is not None and thread_ts != ts
    reply_in = thread_ts or ts

    def tell(message: blocks.Message) -> None:
        qa.intake.tell(channel, user, reply_in, message)

    def work() -> None:
        if not qa.intake.first_delivery(f"{team}:{channel}:{ts}"):
            return  # Slack retried an event we already took
        options, rest = parse_options(slack_to_plain(text))
        if rest.lower() in HELP_WORDS or (not rest and not files):
            tell(blocks.help_message())
            return
        key = f"event:{team}:{channel}:{ts}"
        if in_thread:
            if not rest:
                tell(blocks.error("Write your question in the message, and I'll answer it about this thread's document."))
                return
            document = qa.intake.thread_document(team, channel, thread_ts)
            qa.intake.submit(Ask(key=key, team=team, channel=channel, user=user, question=rest,
                                 passage=document.text, thread_ts=thread_ts, options=options,
                                 sources=document.sources))
            return
        question, passage = split_question(rest)
        if passage is not None:
            qa.intake.submit(Ask(key=key, team=team, channel=channel, user=user, question=question,
                                 passage=passage, thread_ts=ts, options=options, remember=True))
        elif files and not question:
            document = qa.intake.thread_document(team, channel, ts, event)
            tell(blocks.notice(f"I've read {', '.join(document.sources)}. Ask your question in this "
                                   "message's thread" + (" (mention me)." if where == "mention" else ".")))
        elif files:
            document = qa.reader.read_files(files)
            qa.intake.submit(Ask(key=key, team=team, channel=channel, user=user, question=question,
                                 passage=document.text, thread_ts=ts, options=options, remember=True,
                                 sources=document.sources))
        else:
            tell(blocks.error(HOW_TO[where]))

    guarded(work, tell)
