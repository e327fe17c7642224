"""What an answer's buttons do, after the click is acknowledged.

Every click names its answer by tag and finds the rest in the answer's record
(`bot.ui.answers`); once that has expired, or the thread's document is gone, the clicker is told
so, privately. Each click does its work once, however often it arrives (a double click, two
people, Slack repeating it): a vote replaces the voter's earlier one, and "Explain another
way" (per method), "Compare models" and "Other answers" claim a marker first, so a second
click is told where the first one's reply is. A follow-up question goes through the intake
like any other, so it has a placeholder, the asker's limits and one final outcome; its marker
lasts until that outcome is due (`QA_REPLY_DEADLINE_S`), so a follow-up that failed can be asked
again then, while "Other answers", which cannot fail once posted, is posted once for good.
"""
from __future__ import annotations

import logging
import time
import uuid

import redis

from bot.intake.documents import Documents, duration
from bot.intake.submit import LISTENER_RETRY_S, Ask, Intake
from bot.outcome.replies import Replier, SlackFailed, tag
from bot.ui import blocks
from bot.ui.answers import AnswerRecord, Answers
from explain_core.errors import InputError
from explain_core.present.summary import METHOD_LABELS, method_label
from explain_core.queue import JobOptions, JobQueue
from explain_core.queue.connect import unavailable
from explain_core.queue.feedback import HELPFUL, VOTES, Vote, Votes

log = logging.getLogger(__name__)


class FollowUps:
    """The answer buttons' actions (see the module doc); each returns what to tell the clicker,
    or raises a Refusal whose message is."""

    def __init__(self, queue: JobQueue, answers: Answers, votes: Votes, documents: Documents, intake: Intake,
                 replier: Replier, ttl_s: int, reply_deadline_s: float) -> None:
        self._queue = queue
        self._answers = answers
        self._votes = votes
        self._documents = documents
        self._intake = intake
        self._replier = replier
        self._ttl_s = ttl_s
        self._deadline_s = max(1, int(reply_deadline_s))

    def vote(self, answer_tag: str, voter: str, team: str, value: str) -> blocks.Message:
        """Record `voter`'s vote (helpful / not_helpful) on the answer, replacing an earlier one."""
        if value not in VOTES:
            raise InputError("bad_vote", "I couldn't read that vote.")
        record = self._record(answer_tag)
        try:
            previous = self._votes.record(Vote(
                tag=record.tag, key=record.key, voter=voter, team=team, channel=record.channel, vote=value,
                model=record.model, method=record.method, score=record.score, no_answer=record.no_answer,
                at=time.time()))
        except redis.RedisError as exc:
            raise unavailable(exc) from None
        verdict = "helpful" if value == HELPFUL else "not helpful"
        changed = " (changed from your earlier vote)" if previous is not None and previous.vote != value else ""
        return blocks.notice(f"Thanks! I noted that you found this answer {verdict}{changed}. "
                             "The team reviews these votes to see where the model goes wrong.")

    def another_way(self, answer_tag: str, method: str, clicker: str) -> blocks.Message | None:
        """Explain the same question about the same passage with `method`, in the thread."""
        if method not in METHOD_LABELS:
            raise InputError("unknown_method", "I don't know that way of explaining.")
        record = self._record(answer_tag)
        if method == record.method:
            return blocks.notice(f"This answer is already explained with {method_label(method)}.")
        return self._ask_once(f"another:{record.tag}:{method}", record, clicker,
                              JobOptions(method=method, model=record.model),
                              f"The answer explained with {method_label(method)} is in this thread (or on its way).")

    def compare(self, answer_tag: str, clicker: str) -> blocks.Message | None:
        """Answer the same question with every model the service offers, in the thread."""
        record = self._record(answer_tag)
        return self._ask_once(f"compare:{record.tag}", record, clicker, JobOptions(method=record.method, compare=True),
                              "The models' answers are in this thread (or on their way).")

    def others(self, answer_tag: str, clicker: str) -> blocks.Message | None:
        """Post the pipeline's top answers, with their sentences, in the thread (once). Their
        sentences are more of the passage than the answer shows, so a passage given privately
        with `/explain` is the asker's to reveal: anyone else is told so."""
        record = self._record(answer_tag)
        if clicker != record.asker:
            self._documents.for_thread(record.team, record.channel, record.doc_ts, clicker)
        marker = f"others:{record.tag}"
        if not self._claim(marker, self._ttl_s):
            return blocks.notice("The other answers are in this thread already.")
        try:
            self._replier.post(record.channel, record.thread_ts,
                               blocks.other_answers(record.question, record.alternatives), tag(marker),
                               kind="others", window_s=min(LISTENER_RETRY_S, self._replier.window_s))
        except SlackFailed as exc:
            self._release(marker)
            raise InputError("cannot_post", f"I couldn't post the other answers: {exc.reason()}.") from None
        except BaseException:
            self._release(marker)  # stopped or broken before posting: the next click may try again
            raise
        return None

    def _record(self, answer_tag: str) -> AnswerRecord:
        try:
            record = self._answers.get(answer_tag)
        except redis.RedisError as exc:
            raise unavailable(exc) from None
        if record is None:
            raise InputError("answer_expired",
                             f"I keep what an answer's buttons need for {duration(self._ttl_s)}, and this answer is "
                             "older (or no longer known). Ask the question again to get an answer with fresh buttons.")
        return record

    def _ask_once(self, marker: str, record: AnswerRecord, clicker: str, options: JobOptions,
                  already: str) -> blocks.Message | None:
        """Queue the record's question again with `options`, unless a click did already."""
        document = self._documents.for_thread(record.team, record.channel, record.doc_ts, clicker)
        if not self._claim(marker, self._deadline_s):
            return blocks.notice(already)
        try:
            # A key of its own: once the marker has expired, asking again is a new question.
            queued = self._intake.submit(Ask(key=f"{marker}:{uuid.uuid4().hex[:12]}", team=record.team,
                                    channel=record.channel, user=clicker, question=record.question,
                                    passage=document.text, thread_ts=record.thread_ts, options=options,
                                    show_asker=True, sources=document.sources, doc_ts=record.doc_ts))
        except BaseException:
            self._release(marker)  # nothing was queued: the next click may try again
            raise
        if not queued:
            self._release(marker)  # refused in the placeholder (busy, a limit): the next click may try again
        return None

    def _claim(self, marker: str, ttl_s: int) -> bool:
        try:
            return self._queue.claim_once(f"click:{marker}", max(ttl_s, 1))
        except redis.RedisError as exc:
            raise unavailable(exc) from None

    def _release(self, marker: str) -> None:
        try:
            self._queue.release_once(f"click:{marker}")
        except redis.RedisError as exc:
            log.warning("could not release the click marker %s (%s); it expires", marker, exc)
