"""Shared set-up for the node-on-the-wire benches: a private hub, signed bulletins, node processes, events.

A :class:`Hub` is a temporary directory with its own Mosquitto (``radiod.hub.localbroker.Broker``), an Ed25519 key
pair the nodes trust, a firmware profile directory (the mock board, and ``instant``: the mock board with no
warm-up or hold) and one MQTT client that both publishes (so a publish instant is not blurred by a connect) and
records every node event and state message with the time it arrived. Nodes are real ``radiod run --config F``
processes, started under ``setpriv --pdeathsig TERM`` so that even a killed bench leaves none behind; leaving
the ``with`` block stops them (SIGTERM), stops the broker and removes the directory.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from radiod.clock import parse_rfc3339, rfc3339
from radiod.config import Config
from radiod.hub.localbroker import Broker, terminate
from radiod.hub.operator import Operator, PostRequest
from radiod.protocol.builders import tombstone_for
from radiod.protocol.jws import generate_keypair, sign

ROOT = Path(__file__).resolve().parent.parent
RADIOD = ROOT / ".venv" / "bin" / "radiod"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"  # shared/ lies beside the checkout
PREFIX = "radio/bench"
KID = "bench"
ZONE = "bench"


def machine() -> str:
    """The machine's state, printed first by every bench: its figures depend on what else runs."""
    one, five, fifteen = os.getloadavg()
    return f"machine: {os.cpu_count()} cores, load average {one:.2f} {five:.2f} {fifteen:.2f} before the bench"


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear between the closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values: Sequence[float]) -> str:
    """'median / p95 / max' of seconds, in milliseconds."""
    ms = [v * 1000 for v in values]
    return f"median {statistics.median(ms):7.1f}  p95 {percentile(ms, 95):7.1f}  max {max(ms):7.1f} ms"


def ratio(value: float, target: float, unit: str) -> str:
    verdict = "met" if value <= target else "MISSED"
    return f"{value:.1f} {unit} / target {target:g} {unit} = {value / target:.2f}x  ({verdict})"


def corpus_texts(length: int) -> list[str]:
    """Distinct pieces of corpus prose of at most ``length`` characters (and at least 90 % of it), cut at word
    boundaries, in corpus order: each is new text to the speech cache. The articles come first, then the
    bulletins; an article's leading "date YYYY-MM" line is left out."""
    files = sorted((CORPUS / "articles").glob("*.txt")) + sorted((CORPUS / "bulletins").glob("*.txt"))
    prose = " ".join(re.sub(r"^\s*date \S+\s*", "", f.read_text(encoding="utf-8")) for f in files)
    texts, current = [], ""
    for word in prose.split():
        if len(current) + 1 + len(word) > length:
            if len(current) >= length * 0.9:
                texts.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return texts


class NodeDied(RuntimeError):
    """A node process ended while the bench was waiting on it."""


@dataclass(frozen=True)
class Message:
    """A node message as the hub received it."""

    topic: str
    data: dict[str, Any]
    received: float  # time.time() when it arrived at the bench

    @property
    def node(self) -> str:
        return self.topic.split("/")[-2]

    @property
    def kind(self) -> str:
        return self.topic.rsplit("/", 1)[-1]

    def time(self, key: str) -> float:
        """An RFC 3339 field of the event (ts, amp_on, audio_start, ...) as seconds since the epoch."""
        return parse_rfc3339(self.data[key])


@dataclass
class Node:
    id: str
    config: Path
    state_dir: Path
    out_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0  # time.time() when the process was spawned

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def store_count(self) -> int:
        """Bulletins in the node's store (read-only, so it is safe while the node runs)."""
        db = self.state_dir / "radiod.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM bulletins").fetchone()[0])


@dataclass
class _Watch:
    """Messages for one waiter: a predicate and the queue it fills."""

    want: Callable[[Message], bool]
    box: queue.Queue[Message] = field(default_factory=queue.Queue)


class Hub:
    """A private commune hub for one bench run; use it as a context manager."""

    def __init__(self, name: str, *, verbose_nodes: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.broker = Broker(self.dir / "broker")
        self.private, self.public = generate_keypair(KID, self.dir / "keys")
        self.profiles = self.dir / "profiles"
        self._write_profiles()
        self.nodes: dict[str, Node] = {}
        self.log_level = "info" if verbose_nodes else "warning"
        self.messages: list[Message] = []
        self._watches: list[_Watch] = []
        self._lock = threading.Lock()
        self._client: paho.Client | None = None
        self.operator: Operator | None = None

    def _write_profiles(self) -> None:
        """``mock``: the repository's mock board; ``instant``: the same with no amplifier warm-up or hold."""
        self.profiles.mkdir()
        mock = ROOT / "firmware_profiles" / "mock.yaml"
        shutil.copy(mock, self.profiles / "mock.yaml")
        instant = yaml.safe_load(mock.read_text(encoding="utf-8"))
        instant["description"] = "mock board without amplifier warm-up or hold (latency benches)"
        instant["amplifier"].update(warmup_s=0, hold_s=0)
        (self.profiles / "instant.yaml").write_text(yaml.safe_dump(instant), encoding="utf-8")

    # ----- life cycle -----
    def __enter__(self) -> Hub:
        try:
            self.broker.start()
            mqtt = self.broker.mqtt_config(prefix=PREFIX)
            self.operator = Operator(Config(mqtt=mqtt), key=self.private, kid=KID)
            self._connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for node in self.nodes.values():
            self.stop_node(node)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self.broker.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _connect(self) -> None:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}", protocol=MQTTProtocolVersion.MQTTv5
        )
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        subscribed = threading.Event()
        client.on_message = lambda c, u, m: self._on_message(m.topic, bytes(m.payload))
        client.on_subscribe = lambda *args: subscribed.set()
        client.connect(self.broker.host, self.broker.port, keepalive=30, clean_start=True)
        client.loop_start()
        client.subscribe([(f"{PREFIX}/node/+/event", SubscribeOptions(qos=1)),
                          (f"{PREFIX}/node/+/state", SubscribeOptions(qos=1))])
        if not subscribed.wait(10):
            raise RuntimeError("the bench's own broker did not acknowledge the subscription")
        self._client = client

    def _on_message(self, topic: str, payload: bytes) -> None:
        received = time.time()
        if not payload:
            return
        msg = Message(topic, json.loads(payload), received)
        with self._lock:
            self.messages.append(msg)
            for watch in self._watches:
                if watch.want(msg):
                    watch.box.put(msg)

    # ----- waiting for node messages -----
    def wait(self, want: Callable[[Message], bool], count: int = 1, timeout: float = 60.0,
             since: int = 0) -> list[Message]:
        """The first ``count`` messages matching ``want`` (among those from index ``since`` on, and any arriving
        later); raises TimeoutError with what was seen when they do not come within ``timeout`` s."""
        watch = _Watch(want)
        with self._lock:
            found = [m for m in self.messages[since:] if want(m)]
            self._watches.append(watch)
        try:
            deadline = time.monotonic() + timeout
            while len(found) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"saw {len(found)} of {count} awaited node messages in {timeout:.0f} s")
                try:
                    found.append(watch.box.get(timeout=min(left, 0.5)))
                except queue.Empty:
                    self.check_alive()
            return found[:count]
        finally:
            with self._lock:
                self._watches.remove(watch)

    def check_alive(self) -> None:
        """Raise NodeDied, with the end of its log, if a started node process has exited."""
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is not None:
                tail = "\n".join(node.log_text().splitlines()[-15:])
                raise NodeDied(f"node {node.id} exited with status {node.proc.returncode}; its log ends:\n{tail}")

    def mark(self) -> int:
        """An index into ``messages``: pass it as ``since`` to wait only for what comes after now."""
        with self._lock:
            return len(self.messages)

    def wait_online(self, nodes: Iterable[Node], timeout: float = 90.0, since: int = 0) -> dict[str, float]:
        """Wait until every node has said it is online; returns when the hub heard each."""
        ids = {n.id for n in nodes}
        seen = self.wait(lambda m: m.kind == "state" and m.node in ids and m.data.get("online") is True,
                         count=len(ids), timeout=timeout, since=since)
        return {m.node: m.received for m in seen}

    # ----- nodes -----
    def add_node(self, node_id: str, *, profile: str = "mock", output: str = "null",
                 extra: dict[str, Any] | None = None) -> Node:
        """Write a node config (zone ``bench``, trusting the hub key) and return the node, not yet started.

        ``output``: "null" or "file" (a WAV per play under the node's own directory).
        """
        base = self.dir / node_id
        node = Node(node_id, base / "config.yaml", base / "state", base / "out", base / "radiod.log")
        config: dict[str, Any] = {
            "node": {"id": node_id, "zones": [ZONE]},
            "mqtt": {"host": self.broker.host, "port": self.broker.port, "prefix": PREFIX},
            "security": {"trusted_keys": {KID: str(self.public)}},
            "storage": {"dir": str(node.state_dir)},
            "audio": {"output": f"file:{node.out_dir}" if output == "file" else output},
            "gpio": {"profile": profile, "profiles_dir": str(self.profiles)},
            "log_level": self.log_level,
        }
        for section, values in (extra or {}).items():
            config.setdefault(section, {}).update(values)
        base.mkdir(parents=True)
        node.config.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        self.nodes[node_id] = node
        return node

    def start_node(self, node: Node) -> None:
        command = [str(RADIOD), "run", "--config", str(node.config)]
        setpriv = shutil.which("setpriv")
        if setpriv:
            command = [setpriv, "--pdeathsig", "TERM", *command]
        with node.log.open("ab") as log:
            node.started = time.time()
            node.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def stop_node(self, node: Node, timeout: float = 15.0) -> None:
        """SIGTERM (relays off, offline state, clean exit), SIGKILL if it hangs."""
        if node.proc is None:
            return
        terminate(node.proc, timeout)
        node.proc = None

    # ----- publishing -----
    def bulletin(self, text: str, *, bulletin_id: str, priority: str = "normal", at: Sequence[float] = (),
                 chime: bool = True, now: float | None = None) -> dict[str, Any]:
        """A protocol v1 bulletin for zone ``bench``, built by the operator tools (``at``: epoch seconds)."""
        assert self.operator is not None
        request = PostRequest(
            text=text, targets=(f"zone-{ZONE}",), priority=priority, bulletin_id=bulletin_id, chime=chime,
            at=tuple(rfc3339(t, self.operator.tz, ms=False) for t in at),
        )
        return self.operator.bulletin(request, now=now)

    def signed(self, payload: dict[str, Any]) -> str:
        return sign(payload, self.private, KID)

    def topic(self, payload: dict[str, Any]) -> str:
        return f"{PREFIX}/bulletin/{payload['targets'][0]}/{payload['id']}"

    def publish(self, messages: Sequence[tuple[str, str, bool]], timeout: float = 60.0) -> float:
        """Publish (topic, payload, retain) at QoS 1 on the hub's open connection; wait for every PUBACK.

        Returns time.time() just before the first message was handed to the client.
        """
        assert self._client is not None
        started = time.time()
        infos = [self._client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in messages]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise RuntimeError(f"the broker did not acknowledge {len(messages)} messages in {timeout:.0f} s")
        return started

    def cancel(self, payload: dict[str, Any]) -> None:
        """Publish the bulletin's signed tombstone in its place (stops it if it is playing)."""
        tombstone = tombstone_for(payload, time.time())
        self.publish([(self.topic(payload), self.signed(tombstone), True)])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/<pid>/stat, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict (VmRSS, VmHWM, RssAnon, RssFile, Threads, ...)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def kb_to_mb(value: str) -> float:
    return int(value.split(maxsplit=1)[0]) / 1024


class FileWatch:
    """Polls WAV paths every ``period_s`` on its own thread; notes when each appears and when it first holds audio.

    The file output creates the WAV just before it computes the first block, so ``created`` is a lower bound
    of the first sample. ``wave`` keeps the header and the first block in the file's buffer until it seeks to
    patch the header, after the second block (or until the play ends), so ``data`` is an upper bound: about
    one block (20 ms) late.
    """

    def __init__(self, period_s: float = 0.001) -> None:
        self.period = period_s
        self.created: dict[Path, float] = {}
        self.data: dict[Path, float] = {}
        self._paths: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="file-watch", daemon=True)
        self._thread.start()

    def add(self, path: Path) -> None:
        with self._lock:
            self._paths.add(path)

    def get(self, path: Path, timeout: float) -> tuple[float | None, float | None]:
        """(created, first data) for ``path``, waiting up to ``timeout`` s for the data."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if path in self.data:
                    break
            time.sleep(0.01)
        with self._lock:
            return self.created.get(path), self.data.get(path)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            with self._lock:
                waiting = list(self._paths)
            for path in waiting:
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                now = time.time()
                with self._lock:
                    self.created.setdefault(path, now)
                    if size > 44:
                        self.data[path] = now
                        self._paths.discard(path)
