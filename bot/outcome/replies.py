"""Reaching the asker through Slack whatever Slack does: retries, fallbacks, no double posts.

- Transient failures (HTTP 5xx and Slack's internal errors, timeouts and dropped
  connections, 429 rate limits) are retried with capped exponential backoff for a window
  (`slack_retry_s`, 10 minutes by default); a 429 waits at least its Retry-After. slack_sdk's
  own retry handlers are off on this client, so this is the one policy, and a wait holds
  only its own thread: replies run on `Lanes`, one lane per channel.
- Nothing counts as posted before Slack said ok. A call that cannot be repeated safely
  (posting a message, uploading a picture) and whose effect is unknown (a timeout, a 5xx
  after the request was sent) is looked up before it is repeated: a message by the metadata
  the bot puts on it, a picture by its file name, unique per job, in the thread.
- A permanent failure moves to the next way still open: update the placeholder -> post in
  the thread -> an ephemeral message to the asker -> the slash command's or shortcut's
  `response_url`. The message says the true reason: an outage is not "invite me".
- Every attempt is counted by the client (`bot.services.SlackClient`; here only the
  response_url posts, which do not go through it) and every repetition here
  (`qa_bot_slack_retries_total`).
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.error import URLError
from urllib.parse import urlparse

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.webhook import WebhookClient

from bot.metrics import BotMetrics
from bot.ui import blocks
from explain_core.queue import ReplyTo

log = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 30  # a slow Slack that still answers is waited for, rather than asked twice

T = TypeVar("T")

MAX_BACKOFF_S = 30.0
# After an attempt whose effect is unclear, Slack gets this long to finish what it may still be
# doing before the bot looks for the effect (and repeats the call if it finds none).
UNCLEAR_PAUSE_S = 2.0
LOOKBACK_S = 120.0  # how far back a lookup searches for a message or file an unclear attempt may have posted
RESPONSE_URL_HOST = "hooks.slack.com"
METADATA_EVENT = "explain_reply"

# Slack errors that Slack itself may stop repeating: its own failures and rate limits.
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout",
                              "ratelimited"})
# Errors that close the conversation to the bot: another message there would fail the same way.
CLOSED_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived", "restricted_action",
                           "restricted_action_read_only_channel", "restricted_action_thread_only_channel",
                           "restricted_action_non_threadable_channel", "team_access_not_granted",
                           "access_denied", "ekm_access_denied", "missing_scope", "invalid_auth",
                           "account_inactive", "token_revoked"})
_EXPLAINED = {
    "not_in_channel": "I'm not a member of this conversation. Invite me with `/invite @explain`, "
                      "or ask me in a direct message",
    "channel_not_found": "I can't see this conversation (it is private, or a direct message I'm not part of). "
                         "Invite me with `/invite @explain`, or ask me in a direct message",
    "is_archived": "this channel is archived",
    "message_not_found": "my “Explaining…” message was deleted",
    "cant_update_message": "Slack no longer lets me edit my “Explaining…” message",
    "edit_window_closed": "Slack no longer lets me edit my “Explaining…” message",
    "method_not_supported_for_channel_type": "I can't join this conversation by myself (it is private). "
                                             "Invite me with `/invite @explain`",
}


@dataclass(frozen=True)
class Failure:
    """Why Slack did not take a call. `sent` means the request may have had its effect anyway
    (a timeout, a 5xx), so a non-idempotent call must be looked up before it is repeated."""

    error: str
    transient: bool
    sent: bool
    status: int | None = None
    retry_after: float | None = None

    @property
    def closed(self) -> bool:
        return self.error in CLOSED_ERRORS

    def reason(self, tried_for_s: float = 0.0) -> str:
        """What happened, written for the asker (with Slack's own word for it)."""
        if self.transient:
            what = {"ratelimited": "rate limits"}.get(self.error) or (
                f"HTTP {self.status}" if self.status else self.error.replace("_", " "))
            span = f" for {tried_for_s / 60:.0f} minutes" if tried_for_s >= 90 else ""
            return f"Slack kept failing ({what}){span}"
        explained = _EXPLAINED.get(self.error)
        return f"{explained} (Slack said: {self.error})" if explained else f"Slack refused it ({self.error})"


class SlackFailed(Exception):
    """A Slack call that failed for good: permanently, or transiently for the whole window."""

    def __init__(self, failure: Failure, what: str, tried_for_s: float = 0.0) -> None:
        super().__init__(f"{what}: {failure.error}")
        self.failure = failure
        self.tried_for_s = tried_for_s

    def reason(self) -> str:
        return self.failure.reason(self.tried_for_s)


class HookRejected(Exception):
    """A response_url that answered with an HTTP error (expired, used up, or Slack failing)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"response_url answered HTTP {status}: {body}")
        self.status = status
        self.error = body.strip()[:100] or f"http_{status}"


class Stopped(Exception):
    """The process is stopping: leave the work for another consumer (results stay unacked)."""


def classify(exc: BaseException) -> Failure | None:
    """A Slack client exception as a Failure; None for anything else (a bug, re-raised)."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = response.status_code
        error = str(response.get("error") or f"http_{status}")
        if status == 429 or error == "ratelimited":
            after = response.headers.get("Retry-After") or response.headers.get("retry-after")
            return Failure("ratelimited", True, False, status, float(after) if after else None)
        if status >= 500 or error in TRANSIENT_ERRORS:
            return Failure(error, True, True, status)
        return Failure(error, False, False, status)
    if isinstance(exc, HookRejected):
        transient = exc.status >= 500 or exc.status == 429
        return Failure(exc.error, transient, transient, exc.status)
    if isinstance(exc, SlackRequestError) and str(exc).startswith("Failed to upload a file"):
        return Failure("upload_failed", True, False)  # files_upload_v2's upload step: nothing shared yet
    if isinstance(exc, URLError) and not isinstance(exc.reason, TimeoutError):
        return Failure("connection_error", True, False)  # refused or unresolved: nothing was sent
    if isinstance(exc, TimeoutError | URLError):
        return Failure("timeout", True, True)
    if isinstance(exc, OSError | http.client.HTTPException):  # reset or closed after sending
        return Failure("connection_error", True, True)
    return None


def call_result(exc: BaseException | None) -> str:
    """What `qa_bot_slack_calls_total` records of one attempt that ended with `exc` (None: it
    worked): ok, rate_limited, or the error (Slack's code, http_<status>, timeout, connection_error)."""
    if exc is None:
        return "ok"
    failure = classify(exc)
    if failure is None:
        return "error"
    return "rate_limited" if failure.error == "ratelimited" else failure.error


def tag(key: str) -> str:
    """A short, stable name for a job in what the bot posts (message metadata, file names):
    the job key itself holds Slack ids that have no business in a channel."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class Landing:
    """Where a message ended up: `how` is updated, posted, ephemeral, response_url or nowhere;
    `ts` is the message's (for the first two), `reason` why it is not where it was meant to go."""

    how: str
    ts: str | None = None
    reason: str | None = None

    @property
    def in_channel(self) -> bool:
        return self.how in ("updated", "posted")


class Replier:
    """Every Slack call of the reply flow, with the retry policy and the fallbacks (module doc)."""

    def __init__(self, client: WebClient, api_url: str, window_s: float, stopping: threading.Event,
                 metrics: BotMetrics) -> None:
        self.client = client
        self._metrics = metrics
        self._api_origin = urlparse(api_url)[:2]
        self.window_s = window_s
        self.first_backoff_s = 1.0  # doubled after each failure, up to MAX_BACKOFF_S
        self._stopping = stopping

    # -- the retry engine -------------------------------------------------------------------
    def _retry(self, method: str, where: str, call: Callable[[], T], *, window_s: float | None = None,
               lookup: Callable[[], T | None] | None = None, heartbeat: Callable[[], None] | None = None) -> T:
        """`call()` (Slack's `method`, on `where`) under the retry policy (module doc)."""
        what = f"{method} {where}".rstrip()
        window = self.window_s if window_s is None else window_s
        started = time.monotonic()
        delay = self.first_backoff_s
        unclear = False
        while True:
            if unclear and lookup is not None:
                found = lookup()
                if found is not None:
                    log.info("%s: the earlier attempt had worked after all", what)
                    return found
            try:
                return call()
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
                elapsed = time.monotonic() - started
                if not failure.transient:
                    raise SlackFailed(failure, what) from None
                wait = max(delay, failure.retry_after or 0.0, UNCLEAR_PAUSE_S if failure.sent and lookup else 0.0)
                if elapsed + wait > window:
                    if (failure.sent or unclear) and lookup is not None and (found := lookup()) is not None:
                        log.info("%s: the last attempt had worked after all", what)
                        return found  # else the caller would say it failed beside what it posted
                    log.warning("%s: giving up after %.0f s (%s)", what, elapsed, failure.error)
                    raise SlackFailed(failure, what, elapsed) from None
                self._metrics.slack_retries.labels(method).inc()
                unclear = unclear or failure.sent
                log.warning("%s failed (%s, HTTP %s); retrying in %.1f s", what, failure.error, failure.status, wait)
                self.sleep(wait, heartbeat)
                delay = min(delay * 2, MAX_BACKOFF_S)

    def sleep(self, seconds: float, heartbeat: Callable[[], None] | None = None) -> None:
        """Wait, renewing `heartbeat` at least every 30 s; raise Stopped if the process stops."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if heartbeat is not None:
                heartbeat()
            if self._stopping.wait(min(left, MAX_BACKOFF_S)):
                raise Stopped()

    # -- single calls -------------------------------------------------------------------------
    def post(self, channel: str, thread_ts: str | None, message: blocks.Message, job_tag: str, *,
             kind: str = "reply", window_s: float | None = None, look_first: bool = False,
             heartbeat: Callable[[], None] | None = None, since: float | None = None) -> str:
        """Post once (looked up by its metadata, the job's tag and `kind`, when an attempt's
        effect is unclear); returns the ts. `kind` tells a placeholder from a reply posted
        in its place. `since`: how far back a lookup searches (an earlier attempt, by a process
        that died, may be older than LOOKBACK_S)."""
        since = time.time() - LOOKBACK_S if since is None else min(since, time.time() - LOOKBACK_S)
        payload = {"job": job_tag, "kind": kind}

        def find() -> str | None:
            found = self.find_message(channel, thread_ts, payload, since)
            return None if found is None else str(found["ts"])

        if look_first and (found := find()) is not None:
            return found

        def call() -> str:
            response = self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, **message.kwargs(),
                metadata={"event_type": METADATA_EVENT, "event_payload": payload})
            return str(response["ts"])

        return self._retry("chat.postMessage", f"in {channel}", call, window_s=window_s, lookup=find,
                           heartbeat=heartbeat)

    def update(self, channel: str, ts: str, message: blocks.Message, *, window_s: float | None = None,
               heartbeat: Callable[[], None] | None = None) -> None:
        """Replace a message; idempotent, so simply retried."""
        self._retry("chat.update", f"of {channel}/{ts}",
                    lambda: self.client.chat_update(channel=channel, ts=ts, **message.kwargs()),
                    window_s=window_s, heartbeat=heartbeat)

    def status(self, channel: str, thread_ts: str, status: str, client: WebClient | None = None) -> None:
        """Slack's assistant status under a thread ("is explaining…"; "" clears it), for a
        question asked in a thread, through `client` (default: the reply flow's). A nicety: one
        attempt, and a failure (a thread where Slack shows no status, a rate limit) is logged
        and ignored."""
        try:
            (client or self.client).assistant_threads_setStatus(channel_id=channel, thread_ts=thread_ts,
                                                                status=status)
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            log.debug("assistant status in %s/%s not set: %s", channel, thread_ts, failure.error)

    def tell(self, channel: str, user: str | None, thread_ts: str | None, message: blocks.Message,
             response_url: str | None = None, *, window_s: float | None = None,
             heartbeat: Callable[[], None] | None = None) -> str:
        """A message only `user` sees: ephemeral, else through `response_url`. Returns how it
        went ("ephemeral", "response_url"), or raises SlackFailed with the first path's reason."""
        first: SlackFailed | None = None
        if user:
            try:
                self._retry("chat.postEphemeral", f"in {channel}", lambda: self.client.chat_postEphemeral(
                    channel=channel, user=user, thread_ts=thread_ts, **message.kwargs()),
                    window_s=window_s, heartbeat=heartbeat)
                return "ephemeral"
            except SlackFailed as exc:
                first = exc
        if response_url and self._trusted(response_url):
            try:
                self.respond(response_url, message, window_s=window_s, heartbeat=heartbeat)
                return "response_url"
            except SlackFailed as exc:
                first = first or exc
        raise first or SlackFailed(Failure("no_way_to_reach_the_asker", False, False), "tell")

    def respond(self, response_url: str, message: blocks.Message, *, window_s: float | None = None,
                heartbeat: Callable[[], None] | None = None) -> None:
        """A message only the asker sees, through their command's or shortcut's `response_url`
        (Slack's hook host only); raises SlackFailed."""
        if not self._trusted(response_url):
            raise SlackFailed(Failure("untrusted_response_url", False, False), "response_url")
        self._retry("response_url", "", lambda: self._respond(response_url, message), window_s=window_s,
                    heartbeat=heartbeat)

    def _respond(self, url: str, message: blocks.Message) -> None:
        try:
            response = WebhookClient(url, timeout=30).send(response_type="ephemeral", replace_original=False,
                                                           **message.kwargs())
            if response.status_code != 200:
                raise HookRejected(response.status_code, response.body or "")
        except Exception as exc:  # Slack's body names the error, but in words of its choosing: the status
            result = f"http_{exc.status}" if isinstance(exc, HookRejected) else call_result(exc)
            self._metrics.slack_calls.labels("response_url", result).inc()
            raise
        self._metrics.slack_calls.labels("response_url", "ok").inc()

    def _trusted(self, url: str) -> bool:
        """Only Slack's hook host (or the API's own origin: a test fake, a proxy) gets a POST."""
        parsed = urlparse(url)
        return (parsed.scheme, parsed.netloc) in {("https", RESPONSE_URL_HOST), self._api_origin}

    def join(self, channel: str, *, heartbeat: Callable[[], None] | None = None) -> None:
        """Join a public channel (scope channels:join); raises SlackFailed if Slack says no."""
        self._retry("conversations.join", channel, lambda: self.client.conversations_join(channel=channel),
                    heartbeat=heartbeat)

    def upload(self, channel: str, thread_ts: str, png: bytes, filename: str, title: str, alt_text: str, *,
               look_first: bool, heartbeat: Callable[[], None] | None = None) -> None:
        """Upload one picture into a thread, once. `look_first`: an earlier attempt (before a
        crash) may have uploaded it; it is looked for by its file name first. A public channel
        that refuses it (not_in_channel) is joined once, and the upload tried again. The lookup
        searches the whole thread, however long ago a process that died may have uploaded."""
        since = min(float(thread_ts), time.time() - LOOKBACK_S)

        def find() -> bool | None:
            return True if self._find_file(channel, thread_ts, filename, since) else None

        if look_first and find():
            return

        def call() -> bool:
            self.client.files_upload_v2(channel=channel, thread_ts=thread_ts, content=png, filename=filename,
                                         title=title, alt_txt=alt_text)
            return True

        where = f"{filename} into {channel}"
        try:
            self._retry("files_upload_v2", where, call, lookup=find, heartbeat=heartbeat)
        except SlackFailed as exc:
            if exc.failure.error != "not_in_channel":
                raise
            log.info("joining %s to post a picture there", channel)
            self.join(channel, heartbeat=heartbeat)
            self._retry("files_upload_v2", where, call, lookup=find, heartbeat=heartbeat)

    # -- the chain ----------------------------------------------------------------------------
    def settle(self, reply_to: ReplyTo, job_tag: str, message: blocks.Message, *, window_s: float | None = None,
               heartbeat: Callable[[], None] | None = None) -> Landing:
        """Put a question's final message where the asker sees it, in the best way still open
        (module doc). Never raises SlackFailed: `Landing.how` is "nowhere" if all ways failed."""
        channel = reply_to.channel or ""
        window = self.window_s if window_s is None else window_s
        failed: SlackFailed | None = None
        if reply_to.ts:
            try:
                self.update(channel, reply_to.ts, message, window_s=window, heartbeat=heartbeat)
                return Landing("updated", reply_to.ts)
            except SlackFailed as exc:
                failed = exc
                log.warning("could not update the placeholder %s in %s: %s", reply_to.ts, channel, exc.reason())
                if exc.failure.sent and self._shows(channel, reply_to, job_tag, message):
                    return Landing("updated", reply_to.ts)  # it landed after all: a second post would repeat it
        if failed is not None and failed.failure.transient:
            window = 0.0  # Slack has been failing for the whole window: one attempt at each other way
        if failed is None or not failed.failure.closed:
            note = None if failed is None else f"I couldn't update my “Explaining…” message ({failed.reason()})."
            try:
                ts = self.post(channel, reply_to.thread_ts, message.with_note(note) if note else message, job_tag,
                               window_s=window, look_first=True, heartbeat=heartbeat,
                               since=float(reply_to.ts) if reply_to.ts else None)
                return Landing("posted", ts, failed.reason() if failed else None)
            except SlackFailed as exc:
                failed = failed or exc
                log.warning("could not post the reply in %s: %s", channel, exc.reason())
        assert failed is not None
        reason = failed.reason()
        try:
            how = self.tell(channel, reply_to.user, reply_to.thread_ts,
                            message.with_note(f"Only you can see this: {reason}."), reply_to.response_url,
                            window_s=window, heartbeat=heartbeat)
            return Landing(how, None, reason)
        except SlackFailed as exc:
            log.error("could not reach the asker %s in %s in any way: %s; then %s", reply_to.user, channel,
                      reason, exc.reason())
            return Landing("nowhere", None, reason)

    # -- lookups ------------------------------------------------------------------------------
    def _shows(self, channel: str, reply_to: ReplyTo, job_tag: str, message: blocks.Message) -> bool:
        """Whether the placeholder shows `message` already (an update whose answer never came)."""
        assert reply_to.ts
        found = self.find_message(channel, reply_to.thread_ts, {"job": job_tag, "kind": "placeholder"},
                                  since=float(reply_to.ts) - 1)
        return found is not None and found.get("text") == message.text

    def _history(self, channel: str, thread_ts: str | None, since: float) -> list[dict[str, Any]]:
        oldest = f"{since:.6f}"
        if thread_ts:
            response = self.client.conversations_replies(channel=channel, ts=thread_ts, oldest=oldest, limit=200,
                                                          include_all_metadata=True)
        else:
            response = self.client.conversations_history(channel=channel, oldest=oldest, limit=200,
                                                          include_all_metadata=True)
        return list(response.get("messages") or [])

    def find_message(self, channel: str, thread_ts: str | None, payload: dict[str, str],
                     since: float) -> dict[str, Any] | None:
        """The bot's message posted since `since` with the metadata `payload` ({"job": tag, "kind": ...});
        None if there is none or Slack cannot say."""
        try:
            for message in self._history(channel, thread_ts, since):
                if (message.get("metadata") or {}).get("event_payload") == payload:
                    return message
        except Exception as exc:  # a lookup is best effort: any failure means "not found"
            if classify(exc) is None:
                raise
            log.warning("could not look for an earlier post in %s: %s", channel, exc)
        return None

    def _find_file(self, channel: str, thread_ts: str, filename: str, since: float) -> bool:
        try:
            return any(f.get("name") == filename for m in self._history(channel, thread_ts, since)
                       for f in m.get("files") or [])
        except Exception as exc:
            if classify(exc) is None:
                raise
            log.warning("could not look for an earlier upload in %s: %s", channel, exc)
            return False


class Lanes:
    """Tasks on a bounded thread pool, in order within a lane (a channel), concurrently across
    lanes: one channel's slow or rate-limited replies never hold up another channel's."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="reply")
        self._lock = threading.Lock()
        self._lanes: dict[str, deque[Callable[[], None]]] = {}
        self._pending = 0

    def submit(self, lane: str, task: Callable[[], None]) -> None:
        with self._lock:
            self._pending += 1
            queue = self._lanes.get(lane)
            if queue is not None:  # a runner is draining this lane; it will take this task in turn
                queue.append(task)
                return
            self._lanes[lane] = deque([task])
        self._pool.submit(self._drain, lane)

    def pending(self) -> int:
        """Tasks submitted and not finished."""
        with self._lock:
            return self._pending

    def _drain(self, lane: str) -> None:
        while True:
            with self._lock:
                queue = self._lanes[lane]
                if not queue:
                    del self._lanes[lane]
                    return
                task = queue[0]
            try:
                task()
            except Exception:
                log.exception("a reply task failed")
            finally:
                with self._lock:
                    self._lanes[lane].popleft()
                    self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
