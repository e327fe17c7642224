"""A small fake of the Slack Web API: a real HTTP server on loopback that records calls.

The bot talks to it through `SLACK_API_URL`, so every byte goes through slack_sdk's real
HTTP client, retry handlers and the files_upload_v2 flow. It answers like Slack does
(HTTP 200 with `{"ok": false, "error": ...}` for API errors, 429 with `Retry-After` for rate
limits), serves file downloads that need the bot token, and can be told to fail the next
calls of a method, so tests can check what the bot posted, where, and how many times.

Many workspaces: `approve()` is a person pressing "Allow" on Slack's install screen (it returns
the code Slack hands the redirect), `oauth.v2.access` trades the code (once) for a workspace's
bot token, and with token rotation for a token that expires and a refresh token. Each call is
answered for the workspace of its token (auth.test says which), and `Call.token` records it, so
tests check that team A's replies went with team A's token. `expire()` and `revoke()` end a
workspace's token as Slack would.
"""
from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

if TYPE_CHECKING:
    from tests.support.socket_mode_fake import SocketModeFake

BOT_TOKEN = "xoxb-test-token"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T0TEST"
CLIENT_ID = "111.222"
CLIENT_SECRET = "test-client-secret"
APP_ID = "A0TEST"

# Fields that slack_sdk sends JSON-encoded inside form bodies.
_JSON_FIELDS = ("blocks", "attachments", "view", "files", "metadata")


@dataclass
class Call:
    """One recorded Web API call: method name and its arguments, JSON fields decoded."""

    method: str
    args: dict[str, Any]
    token: str | None
    status: int
    at: float = field(default_factory=time.time)  # when the fake answered it (the soak's latencies)
    answer: dict[str, Any] | None = None  # what the fake answered (with status 200)


@dataclass
class _Fault:
    status: int  # 0: answer normally, after `delay_s`
    retry_after: int | None
    times: int
    channel: str | None
    delay_s: float = 0.0
    until: float | None = None  # an outage: every call fails until this time.monotonic()
    late: bool = False  # the call takes effect at once; only its answer waits `delay_s`


@dataclass
class UploadedFile:
    """A file that went through getUploadURLExternal -> upload -> completeUploadExternal."""

    file_id: str
    filename: str
    alt_txt: str | None
    length: int
    data: bytes = b""
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    completed: bool = False
    ts: str = ""  # of the message that shared it


@dataclass
class Grant:
    """A workspace's installation as Slack keeps it: the current bot token and its refresh token."""

    team_id: str | None
    enterprise_id: str | None
    token: str
    refresh_token: str | None = None
    lifetime: int | None = None  # seconds a token lives; None: tokens that do not expire (no rotation)
    expires_at: float | None = None  # time.time()
    revoked: bool = False


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    faults: dict[str, list[_Fault]] = field(default_factory=dict)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # channel -> messages
    files: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)  # id -> (info, bytes)
    downloads: list[str] = field(default_factory=list)
    uploads: dict[str, UploadedFile] = field(default_factory=dict)
    responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (response_url id, body)
    download_delay_s: float = 0.0
    joined: set[str] = field(default_factory=set)  # channels the bot joined (conversations.join)
    closed: dict[str, str] = field(default_factory=dict)  # channel -> the error every chat.* call gets
    deleted: set[tuple[str, str]] = field(default_factory=set)  # (channel, ts) of deleted messages


class SlackFake:
    """Start with `SlackFake().start()`; `api_url` is what `SLACK_API_URL` should be."""

    def __init__(self, token: str = BOT_TOKEN, host: str = "127.0.0.1") -> None:
        """`host`: the address to listen on, which its URLs name (the soak's hosts reach it on a bridge)."""
        self.token = token
        self.grants: dict[str, Grant] = {token: Grant(TEAM_ID, None, token)}  # by access token
        self._codes: dict[str, tuple[str | None, str | None, int | None]] = {}  # code -> team, org, expires_in
        self.socket_mode: SocketModeFake | None = None  # set it to answer apps.connections.open
        self._state = _State()
        self._lock = threading.Condition()
        self._ts_lock = threading.Lock()
        self._last_ts = 0.0
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ----- lifecycle
    def start(self) -> SlackFake:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    # ----- seeding
    def next_ts(self) -> str:
        """A message timestamp like Slack's ("1754000000.123456"): the time of posting, as
        Slack's is (history calls filter by it), and strictly increasing."""
        with self._ts_lock:
            self._last_ts = max(time.time(), self._last_ts + 1e-6)
            return f"{self._last_ts:.6f}"

    def add_message(self, channel: str, message: dict[str, Any]) -> dict[str, Any]:
        """Store a message so conversations.replies can return it; fills `ts` if missing."""
        message = {"type": "message", **message}
        message.setdefault("ts", self.next_ts())
        with self._lock:
            self._state.messages.setdefault(channel, []).append(message)
        return message

    def add_file(self, name: str, data: bytes, *, size: int | None = None,
                 mimetype: str = "application/octet-stream", host_url: str | None = None,
                 redirect_to: str | None = None) -> dict[str, Any]:
        """Store a downloadable file and return its Slack file object.

        `size` lets a test claim a size different from the bytes (Slack reports it in the
        event; the bot must check it before downloading). `host_url` points the download URL
        somewhere else, and `redirect_to` makes the download answer 302 to that URL, to test
        that the token never goes to a foreign host.
        """
        file_id = f"F{next(self._ids):06d}"
        base = host_url or self.url
        info = {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1] if "." in name else "",
            "size": len(data) if size is None else size,
            "url_private": f"{base}/files-pri/{file_id}/{name}",
            "url_private_download": f"{base}/files-pri/{file_id}/download/{name}",
        }
        if redirect_to is not None:
            info["redirect_to"] = redirect_to
        with self._lock:
            self._state.files[file_id] = (info, data)
        return dict(info)

    def fail_next(self, method: str, status: int, *, channel: str | None = None, times: int = 1,
                  retry_after: int | None = None) -> None:
        """Answer the next `times` calls of `method` (in `channel`, if given: tests sharing the
        fake stay apart) with HTTP `status`; `retry_after` adds the Retry-After header."""
        with self._lock:
            self._state.faults.setdefault(method, []).append(_Fault(status, retry_after, times, channel))

    def delay_next(self, method: str, seconds: float, *, channel: str | None = None, times: int = 1,
                   status: int = 0) -> None:
        """Answer the next `times` calls of `method` (in `channel`, if given) after `seconds`:
        normally, or with HTTP `status` if given (a slow failure, as a timeout-bound outage)."""
        with self._lock:
            self._state.faults.setdefault(method, []).append(_Fault(status, None, times, channel, seconds))

    def answer_late(self, method: str, seconds: float, *, channel: str | None = None, times: int = 1) -> None:
        """The next `times` calls of `method` take effect at once and are answered after `seconds`
        (a caller that gives up first cannot know that its call landed)."""
        with self._lock:
            self._state.faults.setdefault(method, []).append(_Fault(0, None, times, channel, seconds, late=True))

    def fail_for(self, method: str, status: int, seconds: float, *, channel: str | None = None) -> None:
        """An outage: every call of `method` (in `channel`, if given) fails with HTTP `status`
        for the next `seconds`."""
        with self._lock:
            self._state.faults.setdefault(method, []).append(
                _Fault(status, None, 1, channel, until=time.monotonic() + seconds))

    def close_channel(self, channel: str, error: str = "is_archived") -> None:
        """From now on every chat.* call in `channel` answers `error` (archived, bot removed)."""
        with self._lock:
            self._state.closed[channel] = error

    def delete_message(self, channel: str, ts: str) -> None:
        """A person deleted a message: chat.update answers message_not_found for it."""
        with self._lock:
            self._state.deleted.add((channel, ts))
            self._state.messages[channel] = [m for m in self._state.messages.get(channel, []) if m["ts"] != ts]

    def approve(self, team_id: str | None, *, enterprise_id: str | None = None, expires_in: int | None = None) -> str:
        """A person allowed the install for `team_id` (None with `enterprise_id`: org-wide, on
        Enterprise Grid): the one-use code Slack adds to the redirect. `expires_in` turns on token
        rotation: tokens that expire after that many seconds, and a refresh token."""
        code = f"code-{next(self._ids):06d}"
        with self._lock:
            self._codes[code] = (team_id, enterprise_id, expires_in)
        return code

    def grant_of(self, team_id: str | None, enterprise_id: str | None = None) -> Grant:
        """The workspace's current grant (its newest token)."""
        with self._lock:
            return next(g for g in reversed(list(self.grants.values()))
                        if (g.team_id, g.enterprise_id) == (team_id, enterprise_id))

    def expire(self, team_id: str | None, enterprise_id: str | None = None) -> None:
        """The workspace's current token expires now (a rotating token's 12 hours are over)."""
        with self._lock:
            self.grant_of(team_id, enterprise_id).expires_at = time.time() - 1

    def revoke(self, team_id: str | None, enterprise_id: str | None = None) -> None:
        """Every token of the workspace stops working (the app was uninstalled, or tokens revoked)."""
        with self._lock:
            for grant in self.grants.values():
                if (grant.team_id, grant.enterprise_id) == (team_id, enterprise_id):
                    grant.revoked = True

    def set_download_delay(self, seconds: float) -> None:
        with self._lock:
            self._state.download_delay_s = seconds

    # ----- inspection
    def calls(self, method: str | None = None, **match: Any) -> list[Call]:
        """Recorded successful-or-not calls, filtered by method and by equal argument values."""
        with self._lock:
            calls = list(self._state.calls)
        return [
            c for c in calls
            if (method is None or c.method == method)
            and all(c.args.get(k) == v for k, v in match.items())
        ]

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """Messages stored in `channel`: seeded by the test or posted by the bot."""
        with self._lock:
            return list(self._state.messages.get(channel, []))

    @property
    def downloads(self) -> list[str]:
        with self._lock:
            return list(self._state.downloads)

    def responses(self, response_id: str) -> list[dict[str, Any]]:
        """Messages posted to the response_url `{url}/response/{response_id}`."""
        with self._lock:
            return [body for rid, body in self._state.responses if rid == response_id]

    def uploads(self, channel: str | None = None) -> list[UploadedFile]:
        """Completed uploads (all three steps done), optionally only those shared to `channel`."""
        with self._lock:
            done = [u for u in self._state.uploads.values() if u.completed]
        return [u for u in done if channel is None or u.channel == channel]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
        """Block until `predicate()` is truthy (re-checked on every call); return its value."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self._lock.wait(min(remaining, 0.2))

    # ----- the HTTP side
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                try:
                    fake._download(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the bot hung up on purpose (size cap, timeout)

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                try:
                    self._post()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the bot gave up waiting (its timeout, in a test of slow answers)

            def _post(self) -> None:
                path = urlparse(self.path).path
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if path.startswith("/api/"):
                    fake._api(self, path[len("/api/"):], body)
                elif path.startswith("/upload/"):
                    fake._upload(self, path[len("/upload/"):], body)
                elif path.startswith("/response/"):
                    fake._response_url(self, path[len("/response/"):], body)
                else:
                    _send(self, 404, b"not found", "text/plain")

        return Handler

    def _api(self, handler: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        args = _parse_args(handler, body)
        auth = handler.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else args.get("token")
        with self._lock:
            fault = self._take_fault(method, args.get("channel"))
        if fault is not None and fault.delay_s and not fault.late:
            time.sleep(fault.delay_s)
        if fault is not None and fault.status:
            self._record(Call(method, args, token, fault.status))
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            payload = {"ok": False, "error": "ratelimited" if fault.status == 429 else "internal_error"}
            _send_json(handler, fault.status, payload, headers)
            return
        if method == "apps.connections.open" and self.socket_mode is not None:
            result: dict[str, Any] = self.socket_mode.connections_open(token)  # the app-level token's call
        elif method == "oauth.v2.access":
            result = self._oauth_access(handler, args)
        elif (refused := self._refused(token)) is not None:
            result = {"ok": False, "error": refused}
        else:
            result = self._answer(method, args, self.grants[token or ""])
        self._record(Call(method, args, token, 200, answer=result))
        if fault is not None and fault.late:
            time.sleep(fault.delay_s)
        _send_json(handler, 200, result)

    def _take_fault(self, method: str, channel: str | None = None) -> _Fault | None:
        queue = self._state.faults.get(method, [])
        now = time.monotonic()
        queue[:] = [f for f in queue if f.until is None or f.until > now]
        fault = next((f for f in queue if f.channel is None or f.channel == channel), None)
        if fault is None:
            return None
        if fault.until is not None:
            return fault
        fault.times -= 1
        if fault.times <= 0:
            queue.remove(fault)
        return fault

    def _record(self, call: Call) -> None:
        with self._lock:
            self._state.calls.append(call)
            self._lock.notify_all()

    def _refused(self, token: str | None) -> str | None:
        """Slack's error for a call with `token`, None for a token that works."""
        with self._lock:
            grant = self.grants.get(token or "")
        if grant is None:
            return "not_authed" if not token else "invalid_auth"
        if grant.revoked:
            return "token_revoked"
        if grant.expires_at is not None and grant.expires_at <= time.time():
            return "token_expired"
        return None

    def _oauth_access(self, handler: BaseHTTPRequestHandler, args: dict[str, Any]) -> dict[str, Any]:
        """oauth.v2.access: a code for a new installation, or a refresh token for a fresh token."""
        basic = handler.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if basic != expected and (args.get("client_id"), args.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return {"ok": False, "error": "invalid_client_id"}
        with self._lock:
            if args.get("grant_type") == "refresh_token":
                refresh = args.get("refresh_token")
                old = next((g for g in self.grants.values()
                            if refresh and g.refresh_token == refresh and not g.revoked), None)
                if old is None:
                    return {"ok": False, "error": "invalid_refresh_token"}
                grant = self._issue(old.team_id, old.enterprise_id, old.lifetime, old.refresh_token)
                return {"ok": True, "access_token": grant.token, "refresh_token": grant.refresh_token,
                        "expires_in": grant.lifetime, "token_type": "bot",
                        "team": {"id": grant.team_id}, "enterprise": {"id": grant.enterprise_id}}
            team_id, enterprise_id, expires_in = self._codes.pop(str(args.get("code")), (None, None, None))
            if team_id is None and enterprise_id is None:
                return {"ok": False, "error": "invalid_code"}
            grant = self._issue(team_id, enterprise_id, expires_in,
                                f"xoxe-1-refresh-{team_id or enterprise_id}" if expires_in else None)
        answer: dict[str, Any] = {
            "ok": True, "app_id": APP_ID, "authed_user": {"id": "UINSTALLER"}, "scope": "chat:write,commands",
            "token_type": "bot", "access_token": grant.token, "bot_user_id": BOT_USER_ID,
            "team": {"id": team_id, "name": f"Team {team_id}"} if team_id else None,
            "enterprise": {"id": enterprise_id, "name": f"Org {enterprise_id}"} if enterprise_id else None,
            "is_enterprise_install": team_id is None}
        if expires_in:
            answer.update(refresh_token=grant.refresh_token, expires_in=expires_in)
        return answer

    def _issue(self, team_id: str | None, enterprise_id: str | None, expires_in: int | None,
               refresh_token: str | None) -> Grant:
        """A new bot token for the workspace (with the lock held)."""
        prefix = "xoxe.xoxb" if expires_in else "xoxb"
        token = f"{prefix}-{team_id or enterprise_id}-{next(self._ids):06d}"
        grant = Grant(team_id, enterprise_id, token, refresh_token, expires_in,
                      time.time() + expires_in if expires_in else None)
        self.grants[token] = grant
        return grant

    def _answer(self, method: str, args: dict[str, Any], grant: Grant) -> dict[str, Any]:
        """Slack's answer to one authenticated call (only what the bot uses), in `grant`'s workspace."""
        closed = self._state.closed.get(str(args.get("channel")))
        if closed and method.startswith("chat."):
            return {"ok": False, "error": closed}
        if method == "auth.test":
            return {"ok": True, "url": "https://test.slack.com/", "team": "Test", "user": "explain",
                    "team_id": grant.team_id, "user_id": BOT_USER_ID, "bot_id": BOT_ID,
                    **({"enterprise_id": grant.enterprise_id} if grant.enterprise_id else {}),
                    **({"is_enterprise_install": True} if grant.team_id is None else {})}
        if method == "chat.postMessage":
            channel = args.get("channel")
            if not channel:
                return {"ok": False, "error": "channel_not_found"}
            if str(channel).startswith("CNOTIN"):
                return {"ok": False, "error": "not_in_channel"}
            message = self.add_message(channel, {"text": args.get("text", ""), "blocks": args.get("blocks"),
                                                 "user": BOT_USER_ID, "bot_id": BOT_ID,
                                                 "thread_ts": args.get("thread_ts"),
                                                 **({"metadata": args["metadata"]} if args.get("metadata") else {})})
            return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}
        if method == "chat.update":
            if (str(args.get("channel")), str(args.get("ts"))) in self._state.deleted:
                return {"ok": False, "error": "message_not_found"}
            with self._lock:  # what a person sees afterwards: the stored message, edited
                for message in self._state.messages.get(str(args.get("channel")), []):
                    if message["ts"] == args.get("ts"):
                        message.update({name: args[name] for name in ("text", "blocks") if name in args})
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts"), "text": args.get("text")}
        if method == "chat.delete":
            self.delete_message(str(args.get("channel")), str(args.get("ts")))
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "chat.postEphemeral":
            if str(args.get("channel")).startswith("CNOTIN"):
                return {"ok": False, "error": "not_in_channel"}
            return {"ok": True, "message_ts": self.next_ts()}
        if method == "conversations.join":  # CPUB...: public, not joined yet; CPRIV...: private
            if str(args.get("channel")).startswith("CPRIV"):
                return {"ok": False, "error": "method_not_supported_for_channel_type"}
            with self._lock:
                self._state.joined.add(str(args.get("channel")))
            return {"ok": True, "channel": {"id": args.get("channel")}}
        if method == "conversations.history":
            return self._history(args)
        if method == "views.open":
            if not args.get("trigger_id"):
                return {"ok": False, "error": "invalid_trigger_id"}
            return {"ok": True, "view": {"id": f"V{next(self._ids):06d}", **(args.get("view") or {})}}
        if method == "conversations.replies":
            return self._replies(args)
        if method == "files.info":
            with self._lock:
                stored = self._state.files.get(str(args.get("file")))
            return {"ok": True, "file": stored[0]} if stored else {"ok": False, "error": "file_not_found"}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ids):06d}"
            upload = UploadedFile(file_id=file_id, filename=str(args.get("filename")),
                                  alt_txt=args.get("alt_txt"), length=int(args.get("length") or 0))
            with self._lock:
                self._state.uploads[file_id] = upload
            return {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            return self._complete_upload(args)
        if method == "views.publish":
            if not args.get("user_id") or not isinstance(args.get("view"), dict):
                return {"ok": False, "error": "invalid_arguments"}
            return {"ok": True, "view": {"id": f"V{next(self._ids):06d}", **args["view"]}}
        if method == "assistant.threads.setStatus":
            if not args.get("channel_id") or not args.get("thread_ts"):
                return {"ok": False, "error": "invalid_arguments"}
            return {"ok": True}
        if method == "chat.getPermalink":
            channel, ts = str(args.get("channel")), str(args.get("message_ts"))
            return {"ok": True, "channel": channel,
                    "permalink": f"https://test.slack.com/archives/{channel}/p{ts.replace('.', '')}"}
        return {"ok": False, "error": "unknown_method"}

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = args.get("channel"), args.get("ts")
        with self._lock:
            stored = list(self._state.messages.get(str(channel), []))
            shared = [u for u in self._state.uploads.values()
                      if u.completed and u.channel == channel and u.thread_ts == ts]
        thread = [m for m in stored if m["ts"] == ts or m.get("thread_ts") == ts]
        if not thread or thread[0]["ts"] != ts:
            return {"ok": False, "error": "thread_not_found"}
        # Shared pictures are messages of the thread too (what the bot looks for after an unclear upload).
        thread += [{"type": "message", "user": BOT_USER_ID, "ts": u.ts, "thread_ts": ts,
                    "files": [{"id": u.file_id, "name": u.filename, "title": u.title}]} for u in shared]
        oldest = float(args.get("oldest") or 0)
        thread = [thread[0]] + [m for m in thread[1:] if float(m["ts"]) > oldest]
        limit = int(args.get("limit") or 1000)
        return {"ok": True, "messages": [_with_metadata(m, args) for m in thread[:limit]],
                "has_more": len(thread) > limit}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages of a channel, newest first (as Slack returns them)."""
        with self._lock:
            stored = list(self._state.messages.get(str(args.get("channel")), []))
        oldest = float(args.get("oldest") or 0)
        top = [m for m in stored if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]
        top = [m for m in reversed(top) if float(m["ts"]) > oldest]
        limit = int(args.get("limit") or 100)
        return {"ok": True, "messages": [_with_metadata(m, args) for m in top[:limit]], "has_more": len(top) > limit}

    def _complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files") or []
        shared = []
        channel = str(args.get("channel_id"))
        if channel.startswith("CNOTIN") or (channel.startswith(("CPUB", "CPRIV"))
                                            and channel not in self._state.joined):
            return {"ok": False, "error": "not_in_channel"}
        with self._lock:
            for item in files:
                upload = self._state.uploads.get(item.get("id"))
                if upload is None or len(upload.data) != upload.length:
                    return {"ok": False, "error": "file_not_found"}
                upload.title = item.get("title")
                upload.channel = args.get("channel_id")
                upload.thread_ts = args.get("thread_ts")
                upload.completed = True
                upload.ts = self.next_ts()
                shared.append({"id": upload.file_id, "title": upload.title, "name": upload.filename})
            self._lock.notify_all()
        return {"ok": True, "files": shared}

    def _upload(self, handler: BaseHTTPRequestHandler, file_id: str, body: bytes) -> None:
        with self._lock:
            upload = self._state.uploads.get(file_id)
            fault = self._take_fault("upload")
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        if fault is not None and fault.status:
            _send(handler, fault.status, b"error", "text/plain")
            return
        if upload is None:
            _send(handler, 404, b"unknown upload", "text/plain")
            return
        upload.data = body  # slack_sdk posts the raw bytes
        _send(handler, 200, b"OK - " + str(len(upload.data)).encode(), "text/plain")

    def _response_url(self, handler: BaseHTTPRequestHandler, response_id: str, body: bytes) -> None:
        with self._lock:
            self._state.responses.append((response_id, json.loads(body or b"{}")))
            self._lock.notify_all()
        _send(handler, 200, b"ok", "text/plain")

    def _download(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlparse(handler.path).path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "files-pri":
            _send(handler, 404, b"not found", "text/plain")
            return
        with self._lock:
            stored = self._state.files.get(parts[1])
            delay = self._state.download_delay_s
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or self._refused(auth[len("Bearer "):]) is not None:
            # Slack answers an unauthenticated file URL with its HTML sign-in page.
            _send(handler, 200, b"<!DOCTYPE html><html>sign in</html>", "text/html")
            return
        if stored is None:
            _send(handler, 404, b"not found", "text/plain")
            return
        with self._lock:
            self._state.downloads.append(parts[1])
            self._lock.notify_all()
        if "redirect_to" in stored[0]:
            _send(handler, 302, b"", "text/plain", {"Location": stored[0]["redirect_to"]})
            return
        time.sleep(delay)
        _send(handler, 200, stored[1], stored[0]["mimetype"])


def _with_metadata(message: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """A message as a history call returns it: its metadata only when asked for."""
    if str(args.get("include_all_metadata")).lower() in ("true", "1"):
        return message
    return {k: v for k, v in message.items() if k != "metadata"}


def _parse_args(handler: BaseHTTPRequestHandler, body: bytes) -> dict[str, Any]:
    """Arguments from the query string, a form body or a JSON body, like Slack accepts them."""
    args: dict[str, Any] = {k: v[0] for k, v in parse_qs(urlparse(handler.path).query).items()}
    content_type = handler.headers.get("Content-Type", "")
    if body and content_type.startswith("application/json"):
        args.update(json.loads(body))
    elif body:
        args.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
    for name in _JSON_FIELDS:
        if isinstance(args.get(name), str):
            try:
                args[name] = json.loads(args[name])
            except ValueError:
                pass
    return args


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str,
          headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def _send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
               headers: dict[str, str] | None = None) -> None:
    _send(handler, status, json.dumps(payload).encode(), "application/json; charset=utf-8", headers)
