"""Slack's side of Socket Mode for tests: a WebSocket server on loopback that talks like Slack.

Attached to the Web API fake (`slack.socket_mode = SocketModeFake().start()`), it makes
`apps.connections.open` answer the right app-level token with a one-time
`ws://127.0.0.1:<port>/link/?ticket=...` URL (`invalid_auth` for any other token). The app's
own client (slack_sdk's built-in SocketModeClient, which Bolt's SocketModeHandler uses)
connects to it without TLS because the URL says `ws://`, so every byte goes through the same
code as in production.

Each connection is greeted with `hello`. A test then sends envelopes shaped like Slack's
(`slash_commands`, `events_api` with `retry_attempt`/`retry_reason`, `interactive`), each
with a fresh `envelope_id` and `accepts_response_payload`, or `disconnect` to make the app
reconnect, and reads back the acknowledgements the app sent (`envelope_id` + `payload`).
Shapes follow api.slack.com/apis/socket-mode and the mock servers of slack_sdk's and
bolt-python's own Socket Mode tests.
"""
from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

if TYPE_CHECKING:
    from tests.support.slack_fake import SlackFake

APP_TOKEN = "xapp-1-A0TEST-1-test-app-token"
APP_ID = "A0TEST"
MAX_MESSAGE_BYTES = 1 << 20  # an ack is a few kB; anything bigger is a bug in the app
CLOSE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Ack:
    """One acknowledgement the app sent: which envelope, what it carried, on which connection."""

    envelope_id: str
    payload: dict[str, Any] | None
    link: int


@dataclass
class Link:
    """One WebSocket connection the app opened (numbered from 1, in order)."""

    number: int
    ws: ServerConnection
    closed: bool = False


class SocketModeFake:
    """Start with `SocketModeFake().start()`, attach as `SlackFake.socket_mode`, `close()` at the end."""

    def __init__(self, app_token: str = APP_TOKEN, app_id: str = APP_ID, host: str = "127.0.0.1") -> None:
        """`host`: the address to listen on and to name in the WebSocket URLs it hands out."""
        self.host = host
        self.app_token = app_token
        self.app_id = app_id
        self._lock = threading.Lock()
        self._tickets: set[str] = set()  # issued by apps.connections.open, not used yet
        self._links: list[Link] = []
        self._acks: list[Ack] = []
        self._other: list[str] = []  # anything the app sent that is not an ack
        self._server = serve(self._serve, host, 0, process_request=self._check_ticket,
                             max_size=MAX_MESSAGE_BYTES, close_timeout=CLOSE_TIMEOUT_S)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ----- lifecycle
    def start(self) -> SocketModeFake:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop listening and close every connection (bounded by CLOSE_TIMEOUT_S each)."""
        self._server.shutdown()
        self._thread.join(timeout=10)

    @property
    def port(self) -> int:
        return int(self._server.socket.getsockname()[1])

    # ----- the Web API side (called by SlackFake)
    def connections_open(self, token: str | None) -> dict[str, Any]:
        """Slack's answer to `apps.connections.open`: a one-time WebSocket URL for the app token."""
        if token != self.app_token:
            return {"ok": False, "error": "not_authed" if not token else "invalid_auth"}
        ticket = uuid.uuid4().hex
        with self._lock:
            self._tickets.add(ticket)
        return {"ok": True, "url": f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"}

    # ----- what Slack sends
    def send(self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool, **fields: Any) -> str:
        """Send one envelope on the newest open connection; returns its envelope_id."""
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "payload": payload, "type": kind,
                    "accepts_response_payload": accepts_response_payload, **fields}
        self.current().ws.send(json.dumps(envelope))
        return envelope_id

    def slash_command(self, payload: dict[str, Any]) -> str:
        """A slash command: the ack may carry the reply (help, errors)."""
        return self.send("slash_commands", payload, accepts_response_payload=True)

    def event(self, payload: dict[str, Any], *, retry_attempt: int = 0, retry_reason: str = "") -> str:
        """An Events API `event_callback`; Slack re-sends it with retry_attempt >= 1 when no ack came in time."""
        return self.send("events_api", payload, accepts_response_payload=False, retry_attempt=retry_attempt,
                         retry_reason=retry_reason)

    def interactive(self, payload: dict[str, Any]) -> str:
        """A shortcut, block action or view submission; only a submission's ack may answer (response_action)."""
        return self.send("interactive", payload, accepts_response_payload=payload.get("type") == "view_submission")

    def disconnect(self, reason: str = "refresh_requested") -> Link:
        """Tell the app to reconnect, as Slack does before it recycles a connection; returns that link."""
        link = self.current()
        link.ws.send(json.dumps({"type": "disconnect", "reason": reason,
                                 "debug_info": {"host": "applink-fake"}}))
        return link

    # ----- what the app did
    def links(self) -> list[Link]:
        with self._lock:
            return list(self._links)

    def current(self) -> Link:
        """The newest connection still open (the one Slack would deliver on)."""
        open_links = [link for link in self.links() if not link.closed]
        if not open_links:
            raise AssertionError("the app has no open Socket Mode connection")
        return open_links[-1]

    def acks(self, envelope_id: str | None = None) -> list[Ack]:
        with self._lock:
            return [a for a in self._acks if envelope_id is None or a.envelope_id == envelope_id]

    def other_messages(self) -> list[str]:
        with self._lock:
            return list(self._other)

    # ----- the WebSocket side
    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        """Accept each ticket once, as Slack does; anything else is refused before the upgrade."""
        ticket = parse_qs(urlparse(request.path).query).get("ticket", [""])[0]
        with self._lock:
            if ticket in self._tickets:
                self._tickets.remove(ticket)
                return None
        return connection.respond(HTTPStatus.FORBIDDEN, "invalid or used ticket\n")

    def _serve(self, ws: ServerConnection) -> None:
        with self._lock:
            link = Link(len(self._links) + 1, ws)
            open_count = sum(not other.closed for other in self._links) + 1
            ws.send(json.dumps({"type": "hello", "num_connections": open_count,
                                "debug_info": {"host": "applink-fake", "build_number": 1,
                                               "approximate_connection_time": 18060},
                                "connection_info": {"app_id": self.app_id}}))
            self._links.append(link)
        try:
            for raw in ws:
                self._receive(link, raw)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                link.closed = True

    def _receive(self, link: Link, raw: str | bytes) -> None:
        text = raw.decode() if isinstance(raw, bytes) else raw
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        with self._lock:
            if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
                self._acks.append(Ack(message["envelope_id"], message.get("payload"), link.number))
            else:
                self._other.append(text)


@contextmanager
def attached(slack: SlackFake) -> Iterator[SocketModeFake]:
    """A running SocketModeFake whose URLs `slack`'s apps.connections.open hands out; closed after."""
    server = SocketModeFake().start()
    slack.socket_mode = server
    try:
        yield server
    finally:
        slack.socket_mode = None
        server.close()
