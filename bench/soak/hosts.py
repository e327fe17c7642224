"""The soak's test hosts: network namespaces on one bridge, or loopback with a fault-injecting proxy.

With root and iproute2, every process of the soak (Redis, each bot, each worker) runs in a
network namespace of its own, joined to one bridge (in a namespace of its own, so the machine's
own network is untouched but for one veth into it, where the Slack fake and the soak listen).
Traffic between two hosts then crosses a real network the soak can break:

- `partition(host)`: the host and Redis stop hearing each other (both sides get a static
  neighbour entry for the other with a MAC address nobody has: frames vanish on the bridge,
  silently, like a cut cable between two switches; the host still reaches Slack);
- `slow(host)`: the host's link is shaped to a trickle (tbf), so large replies take seconds.
  (netem, for random delay and loss, is not in every kernel; this machine's lacks it.)

Without namespaces (not root, no `ip`), every process runs on loopback and reaches Redis
through a `FaultProxy` of its own, which `partition` makes swallow traffic; `slow` is not
available there and is skipped (the report says so).
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

NOBODY_MAC = "02:00:00:5e:00:01"  # locally administered: no interface on the bridge has it
SLOW_RATE = "64kbit"


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["ip", *(("netns", "exec", ns, "ip") if ns else ()), *args]
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=30)


def namespaces_unavailable() -> str | None:
    """Why this machine cannot make test hosts (None when it can)."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no iproute2 (ip)"
    probe = f"qaprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"ip netns add failed: {exc.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    """One test host: where its processes run (`wrap`, a command prefix) and its address."""

    name: str
    ip: str
    wrap: tuple[str, ...] = ()
    ns: str | None = None
    proxy: FaultProxy | None = None  # loopback mode: this host's way to Redis


class Network:
    """The hosts of one soak run; `close()` removes every namespace and link it made."""

    kind = "namespaces"

    def __init__(self, tag: str) -> None:
        self.tag = tag  # short: interface names have at most 15 characters
        self.subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
        self.switch = f"{tag}-sw"
        self.hosts: dict[str, Host] = {}
        self.redis_hosts: list[Host] = []  # Redis's and the sentinels' hosts: what a partition cuts off
        self._made: list[str] = []  # namespaces, for close()
        self._root_link = f"{tag}r"
        self._shaped: set[str] = set()
        _ip("netns", "add", self.switch)
        self._made.append(self.switch)
        _ip("link", "add", "br0", "type", "bridge", ns=self.switch)
        _ip("link", "set", "br0", "up", ns=self.switch)
        # the machine's own side: the Slack fake and the soak itself listen on .1
        _ip("link", "add", self._root_link, "type", "veth", "peer", "name", f"{tag}rp")
        _ip("link", "set", f"{tag}rp", "netns", self.switch)
        _ip("link", "set", f"{tag}rp", "master", "br0", "up", ns=self.switch)
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self._root_link)
        _ip("link", "set", self._root_link, "up")
        self.root_ip = f"{self.subnet}.1"

    def add(self, name: str) -> Host:
        number = len(self.hosts) + 2
        ns = f"{self.tag}-{name}"
        inside, outside = f"{self.tag}h{number}", f"{self.tag}s{number}"
        _ip("netns", "add", ns)
        self._made.append(ns)
        _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
        _ip("link", "set", outside, "netns", self.switch)
        _ip("link", "set", outside, "master", "br0", "up", ns=self.switch)
        _ip("link", "set", inside, "netns", ns)
        _ip("link", "set", inside, "name", "eth0", ns=ns)
        _ip("addr", "add", f"{self.subnet}.{number}/24", "dev", "eth0", ns=ns)
        _ip("link", "set", "eth0", "up", ns=ns)
        _ip("link", "set", "lo", "up", ns=ns)
        host = Host(name, f"{self.subnet}.{number}", ("ip", "netns", "exec", ns), ns)
        self.hosts[name] = host
        return host

    def set_redis_hosts(self, hosts: list[Host]) -> None:
        self.redis_hosts = hosts

    def partition(self, host: Host) -> None:
        """`host` and the Redis hosts stop hearing each other."""
        assert host.ns
        for other in self.redis_hosts:
            assert other.ns
            _ip("neigh", "replace", other.ip, "lladdr", NOBODY_MAC, "dev", "eth0", "nud", "permanent", ns=host.ns)
            _ip("neigh", "replace", host.ip, "lladdr", NOBODY_MAC, "dev", "eth0", "nud", "permanent", ns=other.ns)

    def heal(self, host: Host) -> None:
        assert host.ns
        for other in self.redis_hosts:
            assert other.ns
            _ip("neigh", "del", other.ip, "dev", "eth0", ns=host.ns, check=False)
            _ip("neigh", "del", host.ip, "dev", "eth0", ns=other.ns, check=False)

    @property
    def can_slow(self) -> bool:
        return True

    def slow(self, host: Host) -> None:
        assert host.ns
        subprocess.run(["ip", "netns", "exec", host.ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
                        "rate", SLOW_RATE, "burst", "4kb", "latency", "2s"], check=True, capture_output=True)
        self._shaped.add(host.ns)

    def unslow(self, host: Host) -> None:
        assert host.ns
        subprocess.run(["ip", "netns", "exec", host.ns, "tc", "qdisc", "del", "dev", "eth0", "root"],
                       check=False, capture_output=True)
        self._shaped.discard(host.ns)

    def close(self) -> None:
        """Delete every namespace (their veths go with them) and the machine's veth; idempotent."""
        for pid in _pids_in(self._made):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for ns in reversed(self._made):
            _ip("netns", "del", ns, check=False)
        self._made.clear()
        _ip("link", "del", self._root_link, check=False)


def _pids_in(namespaces: list[str]) -> list[int]:
    """Processes still running inside the soak's namespaces (a namespace outlives `ip netns del`
    while a process holds it)."""
    pids: list[int] = []
    for ns in namespaces:
        done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
        pids += [int(p) for p in done.stdout.split()]
    return pids


class Loopback:
    """The same interface on loopback: every host reaches Redis through a FaultProxy of its own."""

    kind = "loopback+proxy"

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.root_ip = "127.0.0.1"
        self.hosts: dict[str, Host] = {}
        self.redis_host: Host | None = None
        self._port = 0

    def add(self, name: str) -> Host:
        host = Host(name, "127.0.0.1")
        self.hosts[name] = host
        return host

    def set_redis(self, host: Host, port: int) -> None:
        self.redis_host, self._port = host, port

    def redis_url(self, host: Host, port: int) -> str:
        if host is self.redis_host:
            return f"redis://127.0.0.1:{port}/0"
        if host.proxy is None:
            host.proxy = FaultProxy(("127.0.0.1", port)).start()
        return f"redis://127.0.0.1:{host.proxy.port}/0"

    def partition(self, host: Host) -> None:
        if host.proxy is not None:
            host.proxy.cut = True

    def heal(self, host: Host) -> None:
        if host.proxy is not None:
            host.proxy.cut = False

    @property
    def can_slow(self) -> bool:
        return False

    def slow(self, host: Host) -> None:
        raise RuntimeError("loopback hosts cannot be slowed")

    def unslow(self, host: Host) -> None:
        pass

    def close(self) -> None:
        for host in self.hosts.values():
            if host.proxy is not None:
                host.proxy.close()


@dataclass
class FaultProxy:
    """A TCP proxy to `target`; while `cut`, bytes in both directions are swallowed (a silent partition)."""

    target: tuple[str, int]
    cut: bool = False
    _listener: socket.socket = field(init=False)
    _closed: bool = False

    def start(self) -> FaultProxy:
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self.cut and not self._closed:
                    time.sleep(0.1)  # held, then dropped: what was sent during a partition never arrives
                    data = b""
                if data:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def make_network(tag: str, *, loopback: bool = False) -> Network | Loopback:
    """Namespaces when the machine can make them (and `loopback` does not ask otherwise); else
    loopback, said in one line."""
    why = "asked for (--loopback)" if loopback else namespaces_unavailable()
    if why is None:
        return Network(tag)
    print(f"soak: no network namespaces ({why}): hosts share loopback, Redis behind a fault-injecting proxy",
          flush=True)
    return Loopback(tag)
