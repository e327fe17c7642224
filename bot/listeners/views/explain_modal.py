"""The question form's submission, from `/explain` (question + passage fields) or from the
message shortcut (question only; the passage is the message, stashed at shortcut time).

Field problems are answered in the ack (`response_action: errors`) so the user fixes them
in the open form; everything that needs Redis or Slack runs after the ack.
"""
from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, BoltContext

from bot.intake.submit import Ask
from bot.listeners.guard import guarded
from bot.services import services
from bot.ui import blocks
from explain_core.queue import JobOptions
from explain_core.validation import problems, question_problem


def _value(view: dict[str, Any], block: str) -> str:
    value = view["state"]["values"].get(block, {}).get(blocks.INPUT_ACTION, {}).get("value")
    return value or ""


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    return json.loads(view.get("private_metadata") or "{}")


def ack_submission(ack: Ack, view: dict[str, Any]) -> None:
    metadata = _metadata(view)
    question = _value(view, blocks.QUESTION_BLOCK)
    if metadata.get("kind") == "command":
        found = problems(question, _value(view, blocks.PASSAGE_BLOCK))
    else:
        problem = question_problem(question)
        found = {"question": problem} if problem else {}
    if found:  # the field names of `problems` are the form's block ids
        ack(response_action="errors", errors={name: problem.message for name, problem in found.items()})
    else:
        ack()


def run_submission(view: dict[str, Any], body: dict[str, Any], context: BoltContext) -> None:
    metadata = _metadata(view)
    question = _value(view, blocks.QUESTION_BLOCK).strip()
    if not question:
        return  # rejected in the ack
    svc = services(context)
    user = body["user"]["id"]
    team = metadata["team"]
    channel = metadata["channel"]
    key = f"view:{team}:{view['id']}"

    def tell(message: blocks.Message) -> None:
        svc.intake.tell(channel, user, metadata.get("thread_ts"), message, metadata.get("response_url"))

    def work() -> None:
        passage = _value(view, blocks.PASSAGE_BLOCK)
        if metadata.get("kind") == "command" and problems(question, passage):
            return  # rejected in the ack (the form stays open: a corrected submission is no replay)
        if not svc.intake.first_request(key, tell):
            return  # a replay of this very submission
        if metadata.get("kind") == "command":
            svc.intake.submit(Ask(key=key, team=team, channel=channel, user=user, question=question,
                                  passage=passage, thread_ts=None,
                                  options=JobOptions(compare=bool(metadata.get("compare"))),
                                  show_asker=True, remember=True, private=True,
                                  response_url=metadata.get("response_url")))
            return
        document = svc.documents.stashed(team, channel, metadata["message_ts"])
        svc.intake.submit(Ask(key=key, team=team, channel=channel, user=user, question=question,
                              passage=document.text, thread_ts=metadata["thread_ts"], show_asker=True,
                              sources=document.sources, response_url=metadata.get("response_url"),
                              doc_ts=metadata["message_ts"]))

    guarded(work, tell)
