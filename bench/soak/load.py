"""What people do, played as Slack plays it: seeded questions at Poisson times, through both bots.

Each question gets a channel (or DM) of its own, so everything the bot shows there is that
question's story. Deliveries follow Slack's rules: a request unacknowledged within 3 s is a
failure; an event is then retried (X-Slack-Retry-Num / retry_attempt, to either bot, as Slack
picks any connection), and some events are delivered twice anyway (Slack's duplicates);
commands and interactions are not retried (the person sees Slack's error and may ask again).
"""
from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests

from bench.soak.fleet import BotProcess
from tests.support.bot_harness import (
    block_action_payload,
    command_payload,
    direct_message_event,
    event_callback,
    mention_event,
    message_shortcut_payload,
    opened_view,
    signed_headers,
    view_submission_payload,
)
from tests.support.pdfs import make_pdf
from tests.support.slack_fake import SlackFake
from tests.support.tiny_models import CORPUS

ACK_S = 3.0  # Slack's limit for an acknowledgement
EVENT_RETRY_DELAYS_S = (1.0, 5.0, 15.0)  # Slack's are immediate, 1 min, 5 min: shortened like the deadlines
KINDS = {  # what people do, by weight
    "command": 22, "mention_pasted": 12, "mention_txt": 8, "mention_md": 6, "mention_pdf": 6, "dm": 12,
    "shortcut": 8, "long": 4, "bad_too_long": 3, "bad_no_passage": 2, "bad_file": 2, "bad_pdf": 2, "flood": 1,
}
FLOOD_SIZE = 8
USERS = 300
_PLAIN = re.compile(r"^[A-Za-z0-9 ,.;:'()-]+$")  # no mrkdwn, no entities: the passage is seen exactly as sent


def sentences() -> list[str]:
    """Plain sentences of the tiny models' corpus (the words their vocabulary knows)."""
    text = CORPUS.read_text(encoding="utf-8")
    found = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text)]
    return [s for s in found if 20 <= len(s) <= 300 and _PLAIN.match(s)]


@dataclass
class Question:
    """One thing a person asked, and everything the soak saw of it."""

    qid: int
    kind: str
    user: str
    channel: str
    question: str
    passage: str | None  # what the worker answers from (None: bad input, refused at once)
    marker: str  # a word in this question's passage and nowhere else
    via: str = ""
    asked_at: float = 0.0
    acked: bool = False
    delivered: bool = False  # the bot got it (an ack, or a placeholder shows it did)
    story: list[tuple[float, str]] = field(default_factory=list)
    response_ids: list[str] = field(default_factory=list)
    ack_texts: list[str] = field(default_factory=list)
    pdf: bytes | None = None
    score: float | None = None  # the answer record's exact confidence, read from Redis
    clicks: list[Click] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.story.append((time.time(), what))

    @property
    def expects_answer(self) -> bool:
        return self.passage is not None


@dataclass
class Click:
    """A click on an answer's button, by a reader (not the asker)."""

    action_id: str
    user: str
    response_id: str
    at: float
    acked: bool = False


class Slack:
    """Slack's side of the two bots: delivers payloads to Socket Mode or to the HTTP server."""

    def __init__(self, fake: SlackFake, socket_bot: BotProcess, http_bot: BotProcess) -> None:
        self.fake = fake
        self.socket_bot = socket_bot
        self.http_bot = http_bot
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def deliver(self, q: Question, kind: str, payload: dict[str, Any], via: str, retry: int = 0) -> bool:
        """One delivery; True when the bot acknowledged it in time."""
        q.note(f"deliver {kind} via {via}" + (f" (retry {retry})" if retry else ""))
        ok, text = (self._http if via == "http" else self._socket)(kind, payload, retry)
        q.note(f"ack {'ok' if ok else 'MISSING'}" + (f": {text[:80]!r}" if text else ""))
        if ok and text:
            q.ack_texts.append(text)
        return ok

    def _http(self, kind: str, payload: dict[str, Any], retry: int) -> tuple[bool, str]:
        if kind == "command":
            body, content_type = urlencode(payload), "application/x-www-form-urlencoded"
        elif kind == "event":
            body, content_type = json.dumps(payload), "application/json"
        else:
            body, content_type = urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        headers = signed_headers(body, content_type)
        if retry:
            headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
        try:
            response = self._session().post(self.http_bot.url, data=body.encode(), headers=headers, timeout=ACK_S)
        except requests.RequestException:
            return False, ""
        return response.status_code == 200, _ack_text(response.text)

    def _socket(self, kind: str, payload: dict[str, Any], retry: int) -> tuple[bool, str]:
        server = self.fake.socket_mode
        assert server is not None
        try:
            if kind == "command":
                envelope = server.slash_command(payload)
            elif kind == "event":
                envelope = server.event(payload, retry_attempt=retry, retry_reason="timeout" if retry else "")
            else:
                envelope = server.interactive(payload)
        except Exception:  # no open connection (the bot is down), or it closed while sending
            return False, ""
        deadline = time.monotonic() + ACK_S
        while time.monotonic() < deadline:
            if acks := server.acks(envelope):
                return True, _ack_text(json.dumps(acks[0].payload) if acks[0].payload else "")
            time.sleep(0.05)
        return False, ""


def _ack_text(body: str) -> str:
    """The text an acknowledgement shows the person (a slash command's reply), if any."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return body.strip()
    if isinstance(data, dict):
        return str(data.get("text") or "")
    return ""


class People:
    """The seeded workload: builds each question and plays it (in its own thread)."""

    def __init__(self, rng: random.Random, fake: SlackFake, slack: Slack, long_chars: int = 12000) -> None:
        self.rng = rng
        self.fake = fake
        self.slack = slack
        self.sentences = sentences()
        self.long_chars = long_chars
        self.questions: list[Question] = []
        self._lock = threading.Lock()
        self._qid = 0

    # -- building -------------------------------------------------------------------------
    def _new(self, kind: str, user: str, *, passage: bool = True, long: bool = False) -> Question:
        with self._lock:
            self._qid += 1
            qid = self._qid
        rng = self.rng
        marker = f"Zq{qid}x"
        text = ""
        if passage:
            target = self.long_chars if long else rng.randint(150, 900)
            parts: list[str] = []
            while sum(len(p) + 1 for p in parts) < target:
                parts.append(rng.choice(self.sentences))
            parts.insert(rng.randrange(len(parts) + 1), f"The file code is {marker}.")
            text = " ".join(parts)
        words = rng.choice(self.sentences).rstrip(".!?").split()
        opener = rng.choice(("What", "Who", "Where", "When", "Which"))
        question = f"{opener} {' '.join(words[:rng.randint(3, 8)])}?"
        channel = f"{'D' if kind == 'dm' else 'C'}SK{qid:06d}"
        q = Question(qid, kind, user, channel, question, text if passage else None, marker)
        with self._lock:
            self.questions.append(q)
        return q

    def person(self) -> str:
        return f"U{self.rng.randrange(USERS):05d}"

    def plan(self) -> list[tuple[str, str]]:
        """The next arrival: (kind, person); drawn now, so the same seed gives the same load."""
        kinds = list(KINDS)
        return [(self.rng.choices(kinds, weights=[KINDS[k] for k in kinds])[0], self.person())]

    # -- playing ---------------------------------------------------------------------------
    def ask(self, kind: str, user: str) -> list[Question]:
        """Build the question(s) of one arrival (seeded) and return them with a player each."""
        if kind == "flood":
            return [self._new("command", "UFLOOD") for _ in range(FLOOD_SIZE)]
        if kind.startswith("bad_"):
            return [self._new(kind, user, passage=False)]
        return [self._new(kind, user, long=kind == "long")]

    def play(self, q: Question, via: str, duplicate: bool, duplicate_delay: float) -> None:
        """What the person and Slack do for `q` (runs in a thread of its own)."""
        q.via = via
        q.asked_at = time.time()
        try:
            getattr(self, f"_play_{_player(q.kind)}")(q, via, duplicate, duplicate_delay)
        except Exception as exc:  # the soak's own trouble is part of the story, never a crash
            q.note(f"soak could not play it: {exc!r}")

    def _command(self, q: Question, text: str, via: str) -> None:
        form = command_payload(self.fake, text, channel=q.channel, user=q.user)
        q.response_ids.append(form["response_url"].rsplit("/", 1)[1])
        q.acked = self.slack.deliver(q, "command", form, via)

    def _play_command(self, q: Question, via: str, duplicate: bool, delay: float) -> None:
        if q.kind == "bad_too_long":  # over QA_MAX_PASSAGE_CHARS (200,000)
            self._command(q, f"{q.question} | {q.marker} " + "word " * 41_000, via)
        elif q.kind == "bad_no_passage":
            self._command(q, f"| just some words {q.marker}", via)
        else:
            self._command(q, f"{q.question} | {q.passage}", via)

    def _event(self, q: Question, event: dict[str, Any], via: str, duplicate: bool, delay: float) -> None:
        envelope = event_callback(event)
        q.acked = self.slack.deliver(q, "event", envelope, via)
        other = "socket" if via == "http" else "http"
        retry = 0
        while not q.acked and retry < len(EVENT_RETRY_DELAYS_S):
            time.sleep(EVENT_RETRY_DELAYS_S[retry])
            retry += 1
            q.acked = self.slack.deliver(q, "event", envelope, other if retry % 2 else via, retry)
        if duplicate and retry < len(EVENT_RETRY_DELAYS_S):
            time.sleep(delay)
            self.slack.deliver(q, "event", envelope, other, retry + 1)

    def _play_mention(self, q: Question, via: str, duplicate: bool, delay: float) -> None:
        assert q.passage is not None or q.kind.startswith("bad_")
        files = None
        root_text = ""
        if q.kind == "mention_pasted":
            root_text = q.passage or ""
        elif q.kind in ("mention_txt", "mention_md"):
            ext = q.kind[-2:] if q.kind == "mention_md" else "txt"
            files = [self.fake.add_file(f"notes{q.qid}.{ext}", (q.passage or "").encode(), mimetype="text/plain")]
        elif q.kind == "mention_pdf":
            q.pdf = make_pdf(_pages(q.passage or ""))
            files = [self.fake.add_file(f"report{q.qid}.pdf", q.pdf, mimetype="application/pdf")]
        elif q.kind == "bad_file":
            files = [self.fake.add_file(f"sheet{q.qid}.docx", b"PK\x03\x04" + q.marker.encode() * 40,
                                        mimetype="application/vnd.openxmlformats-officedocument")]
        elif q.kind == "bad_pdf":
            files = [self.fake.add_file(f"broken{q.qid}.pdf", b"%PDF-1.4\n" + random.Random(q.qid).randbytes(3000),
                                        mimetype="application/pdf")]
        root = self.fake.add_message(q.channel, {"user": "UAUTHOR", "text": root_text,
                                                 **({"files": files} if files else {})})
        event = mention_event(self.fake, q.channel, q.question, thread_ts=root["ts"], user=q.user)
        self._event(q, event, via, duplicate, delay)

    def _play_dm(self, q: Question, via: str, duplicate: bool, delay: float) -> None:
        event = direct_message_event(self.fake, q.channel, f"{q.question} | {q.passage}", user=q.user)
        self._event(q, event, via, duplicate, delay)

    def _play_shortcut(self, q: Question, via: str, duplicate: bool, delay: float) -> None:
        message = self.fake.add_message(q.channel, {"user": "UAUTHOR", "text": q.passage})
        payload = message_shortcut_payload(self.fake, q.channel, message, q.user)
        if not self.slack.deliver(q, "interactive", payload, via):
            return  # the person saw Slack's error; nothing was asked
        view_id, view = opened_view(self.fake, payload["trigger_id"])
        q.note("modal opened")
        submission = view_submission_payload(view_id, view, {"question": q.question}, q.user)
        q.acked = self.slack.deliver(q, "interactive", submission, via)

    # -- clicks on an answer ----------------------------------------------------------------
    def click(self, q: Question, message: dict[str, Any], action_id: str, via: str) -> None:
        """A reader clicks `action_id` on the answer `message` (Other answers, or a feedback button)."""
        reader = f"UREAD{q.qid:05d}"
        value = _button_value(message, action_id)
        if value is None:
            return
        payload = block_action_payload(self.fake, q.channel, message, action_id, value, user=reader)
        click = Click(action_id, reader, payload["response_url"].rsplit("/", 1)[1], time.time())
        q.clicks.append(click)
        q.note(f"click {action_id} by {reader}")
        click.acked = self.slack.deliver(q, "interactive", payload, via)


def _player(kind: str) -> str:
    if kind in ("command", "long", "bad_too_long", "bad_no_passage"):
        return "command"
    if kind in ("dm",):
        return "dm"
    if kind == "shortcut":
        return "shortcut"
    return "mention"


def _pages(text: str) -> list[str]:
    """The passage as PDF lines: one page per sentence group (one line each, as make_pdf draws)."""
    words = text.split(" ")
    pages, line = [], ""
    for word in words:
        if len(line) + len(word) > 400:
            pages.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*pages, line]


def _button_value(message: dict[str, Any], action_id: str) -> str | None:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                if element["type"] == "feedback_buttons":
                    return str(element["positive_button"]["value"])
                return str(element.get("value"))
    return None

