"""HTTP mode against what issue 10 tried: slow clients, huge and malformed unsigned requests.

Most tests drive the shipped entry point (`qa-bot`, BOT_MODE=http) as a subprocess on a
loopback port, with raw sockets where a client must misbehave (trickle bytes, claim a
200 MB body, send bytes that are not UTF-8), and read the process's own RSS and log. The
deadline and budget tests use `BotUnderTest`, which serves the same front with the same
Hypercorn configuration in a thread, so that they can set short limits.
"""
from __future__ import annotations

import logging
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlparse

import pytest
import requests
from slack_sdk.signature import SignatureVerifier

from bot.ui import blocks
from tests.support.bot_harness import (
    SIGNING_SECRET,
    BotUnderTest,
    command_payload,
    http_bot_process,
    module_redis,
    settings_for,
    slack,
    unique,
)
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import BOT_TOKEN, SlackFake

# xdist: the whole module runs in one test process, so the qa-bot process starts once.
pytestmark = pytest.mark.xdist_group("bot.test_http_server")

__all__ = ["module_redis", "slack"]

SLOW_CLIENTS = 80  # half trickle their headers, half their body; the issue asks for at least 64
TRICKLE_EVERY_S = 0.5
SLACK_ACK_S = 3.0  # what Slack waits for an answer
FORM = "application/x-www-form-urlencoded"
MARKER = "BODY-MARKER-7c1e"  # never in a log


@dataclass
class BotProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    fake: SlackFake

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def bot(slack: SlackFake, module_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    """`qa-bot` in HTTP mode, limits as shipped except a long deadline, so that slow clients
    stay connected for the whole of a test (the deadline has tests of its own below)."""
    log_path = tmp_path_factory.mktemp("qa-bot") / "bot.log"
    with http_bot_process(slack, module_redis.url, unique("http"), log_path, BIND_HOST="127.0.0.1",
                          QA_HTTP_TIMEOUT_S="60") as (proc, url):
        yield BotProcess(proc, int(urlparse(url).port or 0), log_path, slack)


# -- helpers ------------------------------------------------------------------------------------
def signed_headers(body: str | bytes, content_type: str = FORM) -> dict[str, str]:
    stamp = str(int(time.time()))
    text = body.decode() if isinstance(body, bytes) else body
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=text)}


def plausible_headers(length: int, content_type: str = FORM) -> dict[str, str]:
    """What a forger can send: Slack's header names and forms, a signature that is not valid."""
    return {"Content-Type": content_type, "Content-Length": str(length),
            "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}


def head(headers: dict[str, str], method: str = "POST", path: str = "/slack/events") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def status_of(sock: socket.socket) -> int:
    """The status code of the response on `sock` (its first line)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed without a response (got {data!r})")
        data += chunk
    return int(data.split(b" ", 2)[1])


def exchange(port: int, raw: bytes) -> int:
    with connect(port) as sock:
        sock.sendall(raw)
        return status_of(sock)


def help_command(bot: BotProcess) -> float:
    """Send a signed `/explain help`; check the ack carries the help; return the seconds it took."""
    body = urlencode(command_payload(bot.fake, "help", channel=unique("C")))
    started = time.perf_counter()
    reply = requests.post(bot.url, data=body, headers=signed_headers(body), timeout=10)
    elapsed = time.perf_counter() - started
    assert reply.status_code == 200, reply.text
    assert reply.json()["text"] == blocks.help_message().kwargs()["text"]
    return elapsed


def is_open(sock: socket.socket) -> bool:
    """Whether the server still holds this connection (it has neither closed nor answered it)."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"": closed; bytes: answered
    except BlockingIOError:
        return True
    except OSError:
        pass
    return False


class Tricklers:
    """Slow clients: each sends one more byte every TRICKLE_EVERY_S from a single thread."""

    def __init__(self, port: int, count: int) -> None:
        self.socks: list[socket.socket] = []
        self._pending: list[bytes] = []
        for i in range(count):
            sock = connect(port)
            if i % 2:  # headers sent in full; the body (which would make the request complete) trickles
                sock.sendall(head(plausible_headers(10_000)))
                self._pending.append(b"x" * 10_000)
            else:  # the request line, then header bytes that never end
                sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                self._pending.append(b"a" * 10_000)
            sock.setblocking(False)
            self.socks.append(sock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TRICKLE_EVERY_S):
            for i, sock in enumerate(self.socks):
                try:
                    sock.send(self._pending[i][:1])
                    self._pending[i] = self._pending[i][1:]
                except OSError:
                    pass

    def open(self) -> int:
        return sum(is_open(sock) for sock in self.socks)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self.socks:
            sock.close()


# -- slow clients -------------------------------------------------------------------------------
@pytest.mark.slow
def test_signed_requests_are_answered_within_3s_while_80_slow_clients_hold_connections(bot: BotProcess) -> None:
    """Gunicorn's 8 threads were taken by 8 trickling clients; an event loop holds them all."""
    slow = Tricklers(bot.port, SLOW_CLIENTS)
    try:
        time.sleep(2 * TRICKLE_EVERY_S)  # every slow client has sent more than its first bytes
        latencies = []
        for _ in range(40):
            latencies.append(help_command(bot))
            time.sleep(0.1)
        held = slow.open()
    finally:
        slow.close()
    p50, p99 = statistics.median(latencies), statistics.quantiles(latencies, n=100, method="inclusive")[98]
    print(f"\n{held} slow connections held; signed /explain help: p50 {p50 * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms over {len(latencies)}")
    assert held == SLOW_CLIENTS  # none was dropped: the server held them all and still answered
    assert max(latencies) < SLACK_ACK_S


# -- oversized bodies ---------------------------------------------------------------------------
CLAIMED = 200_000_000


def push_oversized(port: int, headers: dict[str, str], statuses: list[int], sent: list[int]) -> None:
    """Claim a 200 MB body, read the answer, then try to send the 200 MB anyway."""
    with connect(port) as sock:
        sock.sendall(head({**headers, "Content-Length": str(CLAIMED)}))
        statuses.append(status_of(sock))
        chunk, total = b"z" * (1 << 20), 0
        try:
            while total < CLAIMED:
                total += sock.send(chunk)
        except OSError:  # the server closed the connection: the rest is refused by the kernel
            pass
        sent.append(total)


def test_oversized_bodies_are_refused_before_reading_and_memory_stays_flat(bot: BotProcess) -> None:
    """4 unsigned 200 MB bodies took the bot from 44 MB to 1 GB; now they are refused unread."""
    help_command(bot)  # everything a request touches is loaded before measuring
    before = bot.rss_kb()
    statuses: list[int] = []
    sent: list[int] = []
    cases = [{"Content-Type": FORM}] * 4 + [plausible_headers(0)] * 4  # unsigned, and forged-looking
    threads = [threading.Thread(target=push_oversized, args=(bot.port, headers, statuses, sent)) for headers in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    after = bot.rss_kb()
    print(f"\nRSS {before / 1024:.1f} MB before, {after / 1024:.1f} MB after {len(cases)} claimed 200 MB bodies; "
          f"bytes the clients got onto the wire before the server closed: {max(sent) / 2**20:.1f} MB at most")
    assert statuses == [413] * len(cases)
    assert after - before < 10 * 1024
    assert max(sent) < 64 * 2**20  # socket buffers at most: the server stopped reading at once
    help_command(bot)  # and still answers


# -- malformed requests -------------------------------------------------------------------------
def _forged(body: bytes, content_type: str = FORM, **extra: str) -> bytes:
    return head({**plausible_headers(len(body), content_type), **extra}) + body


def _signed(body: bytes, content_type: str) -> bytes:
    return head({**signed_headers(body, content_type), "Content-Length": str(len(body))}) + body


def _chunked(body: bytes) -> bytes:
    headers = {k: v for k, v in plausible_headers(0).items() if k != "Content-Length"}
    return head({**headers, "Transfer-Encoding": "chunked"}) + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


WEBSOCKET = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
# Built when the test runs, so that timestamps and signatures are fresh.
MALFORMED: dict[str, tuple[Callable[[], bytes], int]] = {
    "non-numeric timestamp": (lambda: _forged(b"a=1", **{"X-Slack-Request-Timestamp": "soon"}), 401),
    "non-ASCII digits as timestamp": (lambda: _forged(b"a=1", **{"X-Slack-Request-Timestamp": "\u00b2\u00b3"}), 401),
    "stale timestamp": (lambda: _forged(b"a=1", **{"X-Slack-Request-Timestamp": str(int(time.time()) - 3600)}), 401),
    "no Slack headers": (lambda: head({"Content-Type": FORM, "Content-Length": "3"}) + b"a=1", 401),
    "a signature not in v0 form": (lambda: _forged(b"a=1", **{"X-Slack-Signature": "v1=abc"}), 401),
    "a wrong signature": (lambda: _forged(b"command=%2Fexplain&text=help"), 401),
    "a body that is not UTF-8": (lambda: _forged(b"text=\xff\xfe\xc3\x28"), 400),
    "a form body labelled JSON": (lambda: _forged(b"command=%2Fexplain&text=x", "application/json"), 401),
    "a signed form body labelled JSON": (lambda: _signed(b"command=%2Fexplain&text=x", "application/json"), 400),
    "signed JSON that is not an object": (lambda: _signed(b"[1, 2]", "application/json"), 400),
    "signed JSON that does not parse": (lambda: _signed(b'{"type": ', "application/json"), 400),
    "no Content-Length (chunked)": (lambda: _chunked(b"a=1"), 411),
    "a 5,000-digit Content-Length": (lambda: head({**plausible_headers(0), "Content-Length": "9" * 5000}), 400),
    "not Slack's content type": (lambda: _forged(b"a=1", "text/plain"), 415),
    "GET": (lambda: head({}, method="GET"), 405),
    "another path": (lambda: head(plausible_headers(0), path="/admin"), 404),
    "a WebSocket upgrade": (lambda: head(WEBSOCKET, method="GET"), 403),
    "not HTTP": (lambda: b"HELLO THERE\r\n\r\n", 400),
}


@pytest.mark.parametrize("raw, status", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_get_a_4xx_and_no_traceback(bot: BotProcess, raw: Callable[[], bytes],
                                                        status: int) -> None:
    assert exchange(bot.port, raw()) == status
    log = bot.log()
    assert "Traceback" not in log and " ERROR " not in log, log


def test_request_bodies_never_reach_the_log(bot: BotProcess) -> None:
    """A forged 10 MB form body was written to the log as one line (Bolt logs a body whose
    signature fails, at INFO). Nothing the bot is sent, signed or not, is logged."""
    padding = urlencode({"text": MARKER * 50_000})  # ~0.9 MB: read in full, then refused
    assert exchange(bot.port, _forged(padding.encode())) == 401
    big = urlencode({"text": MARKER * 700_000}).encode()  # ~11 MB, as in the issue: refused unread
    assert exchange(bot.port, head(plausible_headers(len(big))) + big[:65536]) == 413
    unhandled = urlencode({"command": "/not-ours", "text": MARKER, "team_id": "T0TEST"})
    assert exchange(bot.port, _signed(unhandled.encode(), FORM)) == 404  # Bolt: no listener
    assert exchange(bot.port, _signed(f'{{"{MARKER}": '.encode(), "application/json")) == 400
    help_command(bot)  # the log is flushed up to here
    assert MARKER not in bot.log()


# -- deadlines and the shared budget (the same front, short limits) ----------------------------
@pytest.fixture()
def short_limits(slack: SlackFake, module_redis: RedisServer) -> Iterator[BotUnderTest]:
    settings = settings_for(slack, module_redis.url, unique("ns"), http_timeout_s=1.0,
                            http_max_body_bytes=64 * 1024, http_buffer_bytes=100 * 1024)
    bot = BotUnderTest(slack, settings)
    yield bot
    bot.close()


def port_of(bot: BotUnderTest) -> int:
    return int(urlparse(bot.url).port or 0)


def closed_within(sock: socket.socket, seconds: float, trickle: bytes) -> tuple[float, bytes]:
    """Trickle `trickle` a byte at a time until the server answers or closes; (seconds, what it sent)."""
    sock.settimeout(0.2)
    started = time.monotonic()
    received = b""
    for byte in trickle:
        if time.monotonic() - started > seconds:
            raise AssertionError(f"still open after {seconds} s")
        try:
            sock.send(bytes([byte]))
            chunk = sock.recv(4096)
            received += chunk
            if not chunk or received:
                break
        except TimeoutError:
            continue
        except OSError:
            break
    return time.monotonic() - started, received


def test_headers_that_trickle_are_cut_at_the_deadline(short_limits: BotUnderTest) -> None:
    with connect(port_of(short_limits)) as sock:
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        elapsed, _ = closed_within(sock, 5.0, b"X-Slow: " + b"a" * 1000)
    assert elapsed < 1.0 + 1.5
    with connect(port_of(short_limits)) as idle:  # connects and sends nothing
        idle.settimeout(5)
        started = time.monotonic()
        assert idle.recv(1) == b""
        assert time.monotonic() - started < 1.0 + 1.5


def test_a_body_that_trickles_gets_408_at_the_deadline(short_limits: BotUnderTest) -> None:
    with connect(port_of(short_limits)) as sock:
        sock.sendall(head(plausible_headers(1000)))
        elapsed, received = closed_within(sock, 5.0, b"x" * 1000)
    assert received.startswith(b"HTTP/1.1 408"), received
    assert elapsed < 1.0 + 1.5


def test_bodies_in_progress_share_one_budget(short_limits: BotUnderTest) -> None:
    """Bodies being read are held in memory; together they may not exceed QA_HTTP_BUFFER_BYTES."""
    size = 60 * 1024  # under the 64 KiB cap; two of them exceed the 100 KiB budget
    with connect(port_of(short_limits)) as first, connect(port_of(short_limits)) as second:
        first.sendall(head(plausible_headers(size)) + b"x" * (size - 1))  # all but the last byte: held
        time.sleep(0.3)
        second.sendall(head(plausible_headers(size)) + b"x" * (size - 1))
        assert status_of(second) == 503
        assert short_limits.command("help", channel=unique("C")).status == 200  # small ones still fit
        first.sendall(b"x")
        assert status_of(first) == 401  # read in full, then its signature failed
    with connect(port_of(short_limits)) as third:  # the first one's bytes were given back
        third.sendall(head(plausible_headers(size)) + b"x" * size)
        assert status_of(third) == 401


def test_no_warning_from_bolt_when_the_app_is_built(slack: SlackFake, module_redis: RedisServer,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Bolt warned "`token` will be unused" at every start: it reads SLACK_BOT_TOKEN itself."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    caplog.set_level(logging.DEBUG)
    bot = BotUnderTest(slack, settings_for(slack, module_redis.url, unique("ns")))
    try:
        assert bot.command("help", channel=unique("C")).status == 200  # Bolt's auth.test, through the fake
    finally:
        bot.close()
    bolt = [r for r in caplog.records if r.name.startswith("slack_bolt") and r.levelno >= logging.WARNING]
    assert bolt == []
