"""What the tests and the benches stand up: texts, a hub (keys, an operator, an event subscriber) and nodes, all real.

The node is the real :class:`radiod.node.daemon.Daemon` (in a thread, on gpiozero's MockFactory and a real-time file
sink) or the real ``radiod run`` process (for SIGKILL, and for the benches). The subscriber is a plain paho client
with a persistent session at QoS 1, as a hub's event logger would be, so it misses nothing across a broker restart;
it notes when each message arrived, for the benches' figures. The texts are the project's own (``tests/data``), so
a clone of the project alone has everything; ``$RADIOD_EXTRA_CORPUS`` may point at a directory of more texts in
the same layout (``bulletins/*.txt``, ``articles/*.txt``), which then adds cases and bench material.

The benches import this module too (``bench/*.py`` put ``tests/`` on ``sys.path``): a :class:`Bench` is a
:class:`Hub` with its own temporary directory, broker and node processes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from gpiozero.pins.mock import MockFactory

from radiod.clock import parse_rfc3339, rfc3339
from radiod.config import (
    AudioConfig,
    Config,
    GpioConfig,
    NodeConfig,
    QuietHours,
    ScheduleConfig,
    SecurityConfig,
    StorageConfig,
)
from radiod.hub.localbroker import Broker, terminate
from radiod.hub.operator import Operator, PostRequest
from radiod.node.daemon import Daemon
from radiod.protocol.builders import tombstone_for
from radiod.protocol.jws import generate_keypair
from radiod.protocol.topics import bulletin_topic
from radiod.schema import to_plain

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
EXTRA_CORPUS = "RADIOD_EXTRA_CORPUS"
PREFIX = "radio/test"
SHORT = "Thông báo thử. Xin chào bà con."
LONG = (
    "Điện lực huyện thông báo tạm ngừng cung cấp điện để bảo dưỡng lưới điện. "
    "Khu vực mất điện gồm toàn bộ thôn Đông và một phần thôn Tây. "
    "Đề nghị các hộ gia đình chủ động bố trí công việc."
)
FAST_PROFILE = """\
description: mock relays with short timings, for tests
pin_factory: mock
amplifier: {pin: GPIO26, active_high: true, warmup_s: 0.2, hold_s: 0.2, max_on_s: 600}
lines:
  line-1: {pin: GPIO20, active_high: true}
status_led: {pin: GPIO16, active_high: true}
audio: {device: default, sample_rate: 16000}
"""


# ---------------------------------------------------------------- texts


def corpus(kind: str) -> list[Path]:
    """The texts of one kind ("bulletins" or "articles"): ours from ``tests/data``, then those of the extra corpus
    that ``$RADIOD_EXTRA_CORPUS`` names, if it is set. Ours always come first and are always there."""
    folders = [DATA / kind]
    if extra := os.environ.get(EXTRA_CORPUS):
        if not Path(extra).is_dir():
            raise FileNotFoundError(f"${EXTRA_CORPUS} names {extra}, which is no directory")
        folders.append(Path(extra) / kind)
    return [path for folder in folders for path in sorted(folder.glob("*.txt"))]


def read_text(path: Path) -> str:
    """A corpus text as a node would read it aloud: a leading "date YYYY-MM" line (an article's provenance in
    some corpora) is left out."""
    return re.sub(r"^\s*date \d{4}-\d{2}\s*", "", path.read_text(encoding="utf-8"))


def bulletin_text(name: str) -> str:
    """One of our bulletins by file stem, e.g. ``bulletin_text("02-canh-bao-bao")`` (the storm warning)."""
    return read_text(DATA / "bulletins" / f"{name}.txt")


def article_text() -> str:
    """Our article-length text: a commune's year in review, about 1 600 words, some 9 minutes read aloud."""
    return read_text(DATA / "articles" / "dong-xa-tong-ket-2026.txt")


def corpus_texts(length: int) -> list[str]:
    """Distinct pieces of corpus prose of at most ``length`` characters (and at least 90 % of it), cut at word
    boundaries, in corpus order (articles first, then bulletins): each is new text to the speech cache."""
    prose = " ".join(read_text(path) for path in corpus("articles") + corpus("bulletins"))
    texts, current = [], ""
    for word in prose.split():
        if len(current) + 1 + len(word) > length:
            if len(current) >= length * 0.9:
                texts.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return texts


# ---------------------------------------------------------------- waiting


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def ms(value: str) -> int:
    """An RFC 3339 time of an event (whole milliseconds on the wire) as integer milliseconds since the epoch, to
    compare exactly: float sums of epoch seconds round (1796515175.801 + 0.2 > 1796515176.001)."""
    return round(parse_rfc3339(value) * 1000)


# ---------------------------------------------------------------- the hub


@dataclass(frozen=True)
class Message:
    """A node message as the hub received it."""

    topic: str
    data: dict[str, Any]
    received: float  # time.time() when it arrived

    @property
    def node(self) -> str:
        return self.topic.split("/")[-2]

    @property
    def kind(self) -> str:
        """"event" or "state"."""
        return self.topic.rsplit("/", 1)[-1]

    def time(self, key: str) -> float:
        """An RFC 3339 field of the message (ts, amp_on, audio_start, ...) as seconds since the epoch."""
        return parse_rfc3339(self.data[key])


@dataclass
class _Watch:
    """Messages for one waiter: a predicate and the queue it fills."""

    want: Callable[[Message], bool]
    box: queue.Queue[Message] = field(default_factory=queue.Queue)


class EventLog:
    """Every event and state message of every node, as a hub subscriber with a persistent session receives them,
    each with the time it arrived. It also publishes, so a bench's publish instant is not blurred by a connect."""

    def __init__(self, broker: Broker) -> None:
        self.messages: list[Message] = []
        self._watches: list[_Watch] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"test-events-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            clean_session=False, protocol=paho.MQTTv311,
        )
        self._client.max_inflight_messages_set(100)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = lambda c, *_: c.subscribe(
            [(f"{PREFIX}/node/+/event", 1), (f"{PREFIX}/node/+/state", 1)]
        )
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_message = lambda c, u, m: self._on_message(m.topic, bytes(m.payload))
        self._client.reconnect_delay_set(0.1, 1)
        self._client.connect_async(broker.host, broker.port, keepalive=10)
        self._client.loop_start()
        if not subscribed.wait(10):
            self.close()
            raise RuntimeError("the broker did not acknowledge the event subscription in 10 s")

    def _on_message(self, topic: str, payload: bytes) -> None:
        received = time.time()
        if not payload:  # a retained state cleared
            return
        message = Message(topic, json.loads(payload), received)
        with self._lock:
            self.messages.append(message)
            for watch in self._watches:
                if watch.want(message):
                    watch.box.put(message)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # ----- the tests' view: events as dicts -----
    @property
    def events(self) -> list[dict]:
        """Every event so far, in the order they arrived."""
        return self.of()

    def distinct(self) -> list[dict]:
        """Every event once, in seq order, as the hub keeps them: an event re-sent after a lost PUBACK (QoS 1 is
        at least once) arrives twice with the same seq. Two different events under one seq fail the test."""
        kept: dict[tuple[str, int], dict] = {}
        for event in self.events:
            key = (event["node"], event["seq"])
            assert kept.setdefault(key, event) == event, f"seq {key} names two events: {kept[key]} and {event}"
        return [kept[key] for key in sorted(kept)]

    def of(self, node: str | None = None, type_: str | None = None, bulletin: str | None = None) -> list[dict]:
        with self._lock:
            return [m.data for m in self.messages if m.kind == "event" and _matches(m.data, node, type_, bulletin)]

    def wait(self, type_: str, *, bulletin: str | None = None, node: str | None = None, count: int = 1,
             timeout: float = 30) -> list[dict]:
        """Every matching event so far, once there are at least ``count``."""
        self.watch(lambda m: m.kind == "event" and _matches(m.data, node, type_, bulletin), count, timeout,
                   what=f"{count} '{type_}' event(s) for {bulletin or 'any bulletin'}")
        return self.of(node, type_, bulletin)

    # ----- the benches' view: messages with their arrival times -----
    def mark(self) -> int:
        """An index into ``messages``: pass it as ``since`` to wait only for what comes after now."""
        with self._lock:
            return len(self.messages)

    def watch(self, want: Callable[[Message], bool], count: int = 1, timeout: float = 60.0, since: int = 0, *,
              what: str = "node messages", check: Callable[[], None] | None = None) -> list[Message]:
        """The first ``count`` messages matching ``want`` (among those from index ``since`` on, and any arriving
        later). Raises TimeoutError naming ``what`` when they do not come within ``timeout`` s; ``check`` is
        called while waiting and may raise sooner (a node process died)."""
        watch = _Watch(want)
        with self._lock:
            found = [m for m in self.messages[since:] if want(m)]
            self._watches.append(watch)
        try:
            deadline = time.monotonic() + timeout
            while len(found) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"saw {len(found)} of {count} awaited {what} in {timeout:g} s")
                try:
                    found.append(watch.box.get(timeout=min(left, 0.5)))
                except queue.Empty:
                    if check is not None:
                        check()
            return found[:count]
        finally:
            with self._lock:
                self._watches.remove(watch)

    def publish(self, messages: Sequence[tuple[str, str, bool]], timeout: float = 60.0) -> float:
        """Publish (topic, payload, retain) at QoS 1 on this open connection; wait for every PUBACK.

        Returns time.time() just before the first message was handed to the client.
        """
        started = time.time()
        infos = [self._client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in messages]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise RuntimeError(f"the broker did not acknowledge {len(messages)} messages in {timeout:g} s")
        return started


def _matches(event: dict[str, Any], node: str | None, type_: str | None, bulletin: str | None) -> bool:
    return ((node is None or event["node"] == node) and (type_ is None or event["type"] == type_)
            and (bulletin is None or event.get("bulletin") == bulletin))


class Hub:
    """The commune hub: a signing key the nodes trust, an operator that posts on ``broker``, and the firmware
    profiles its nodes use (``fast``: mock relays with short timings, for tests; ``mock``: the repository's mock
    board; ``instant``: the mock board with no amplifier warm-up or hold, for the latency benches). ``zone`` is
    the one :meth:`bulletin` targets."""

    def __init__(self, broker: Broker, directory: Path, kid: str = "hub-1", zone: str = "thon-1") -> None:
        self.broker = broker
        self.dir = directory
        self.kid = kid
        self.zone = zone
        self.key, self.public = generate_keypair(kid, directory / "keys")
        self.profiles = directory / "profiles"
        self._write_profiles()

    def _write_profiles(self) -> None:
        self.profiles.mkdir(parents=True, exist_ok=True)
        (self.profiles / "fast.yaml").write_text(FAST_PROFILE, encoding="utf-8")
        mock = ROOT / "firmware_profiles" / "mock.yaml"
        shutil.copy(mock, self.profiles / "mock.yaml")
        instant = yaml.safe_load(mock.read_text(encoding="utf-8"))
        instant["description"] = "mock board without amplifier warm-up or hold (latency benches)"
        instant["amplifier"].update(warmup_s=0, hold_s=0)
        (self.profiles / "instant.yaml").write_text(yaml.safe_dump(instant), encoding="utf-8")

    def config(self) -> Config:
        return Config(mqtt=self.broker.mqtt_config(prefix=PREFIX))

    def operator(self, key: Path | None = None, kid: str | None = None) -> Operator:
        return Operator(self.config(), key=key or self.key, kid=kid or self.kid)

    def post(self, text: str, **kwargs: Any) -> dict[str, Any]:
        """Sign and publish; without chimes unless asked, so a play takes seconds, not the chimes' length."""
        kwargs.setdefault("chime", False)
        return self.operator().post(PostRequest(text=text, **kwargs))

    def bulletin(self, text: str, *, bulletin_id: str, priority: str = "normal", at: Sequence[float] = (),
                 chime: bool = True, now: float | None = None) -> dict[str, Any]:
        """A bulletin for the hub's zone, built by the operator tools but not published (``at``: epoch seconds)."""
        operator = self._signer
        request = PostRequest(
            text=text, targets=(f"zone-{self.zone}",), priority=priority, bulletin_id=bulletin_id, chime=chime,
            at=tuple(rfc3339(t, operator.tz, ms=False) for t in at),
        )
        return operator.bulletin(request, now=now)

    def signed(self, payload: dict[str, Any]) -> str:
        return self._signer.sign(payload)

    @cached_property
    def _signer(self) -> Operator:
        """One operator for building and signing many bulletins (a bench signs thousands)."""
        return self.operator()

    @staticmethod
    def topic(payload: dict[str, Any]) -> str:
        """The topic of a bulletin for its first target."""
        return bulletin_topic(PREFIX, payload["targets"][0], payload["id"])


# ---------------------------------------------------------------- nodes


def node_config(hub: Hub, tmp: Path, node: str = "n01", *, zones: tuple[str, ...] = ("thon-1",),
                quiet: tuple[tuple[str, str], ...] = (), grace_s: int = 600) -> Config:
    """A node config on the hub's broker, with fast mock relays and a file sink under ``tmp``."""
    return replace(
        Config(),
        node=NodeConfig(id=node, zones=list(zones), demo=True),  # a test bench: mock relays, a file sink
        mqtt=hub.broker.mqtt_config(prefix=PREFIX, keepalive_s=5, reconnect_max_s=1),
        security=SecurityConfig(trusted_keys={hub.kid: str(hub.public)}),
        storage=StorageConfig(dir=str(tmp / node / "state"), cache_dir=str(tmp / "cache")),
        audio=AudioConfig(output=f"file:{tmp / node / 'out'}"),
        gpio=GpioConfig(profile="fast", profiles_dir=str(hub.profiles)),
        schedule=ScheduleConfig(
            grace_s=grace_s, prerender_s=5,
            quiet_hours=[QuietHours(start=dt.time.fromisoformat(a), end=dt.time.fromisoformat(b)) for a, b in quiet],
        ),
    )


class ThreadNode:
    """The real Daemon in a thread, on MockFactory; ``stop()`` is a clean shutdown."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.factory = MockFactory()
        self.daemon = Daemon(config, pin_factory=self.factory)
        self.thread = threading.Thread(target=self.daemon.run, name=f"node-{config.node.id}", daemon=True)
        self.thread.start()
        # subscribed, not only connected: a test's command (not retained) sent in between would reach no one
        wait_for(lambda: self.daemon.link.subscribed, 15, f"node {config.node.id} to connect and subscribe")

    @property
    def out_dir(self) -> Path:
        return Path(self.config.audio.output.removeprefix("file:"))

    def stop(self) -> None:
        self.daemon.request_stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the daemon did not stop"


class ProcessNode:
    """``radiod run --config F`` as its own process (started at once unless ``start=False``), under
    ``setpriv --pdeathsig TERM`` where there is one, so that even a killed test or bench leaves none behind."""

    def __init__(self, config: Config, tmp: Path, env: dict[str, str] | None = None, *, start: bool = True) -> None:
        self.config = config
        self.path = tmp / f"{config.node.id}.yaml"
        self.path.write_text(yaml.safe_dump(to_plain(config, mask_secrets=False), allow_unicode=True),
                             encoding="utf-8")
        self.log = tmp / f"{config.node.id}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0  # time.time() when the process was spawned
        if start:
            self.start()

    @property
    def id(self) -> str:
        return self.config.node.id

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def out_dir(self) -> Path:
        return Path(self.config.audio.output.removeprefix("file:"))

    def start(self) -> None:
        command = [sys.executable, "-m", "radiod.cli", "run", "--config", str(self.path)]
        if setpriv := shutil.which("setpriv"):
            command = [setpriv, "--pdeathsig", "TERM", *command]
        with self.log.open("ab") as log:
            self.started = time.time()
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        """SIGTERM; the exit status (0: relays off, offline state, clean exit)."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, SIGKILL if it hangs; nothing if it is not running."""
        if self.proc is not None:
            terminate(self.proc, timeout)
            self.proc = None

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def store_count(self) -> int:
        """Bulletins in the node's store (read-only, so it is safe while the node runs)."""
        db = Path(self.config.storage.dir) / "radiod.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM bulletins").fetchone()[0])


# ---------------------------------------------------------------- benches


class NodeDied(RuntimeError):
    """A node process ended while the bench was waiting on it."""


class Bench(Hub):
    """A private commune hub for one bench run: a temporary directory with its own Mosquitto, the event log, and
    ``radiod run`` node processes in zone ``bench``. Leaving the ``with`` block stops the nodes (SIGTERM), stops
    the broker and removes the directory."""

    def __init__(self, name: str, *, verbose_nodes: bool = False) -> None:
        directory = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        super().__init__(Broker(directory / "broker"), directory / "hub", kid="bench", zone="bench")
        self.root = directory
        self.log_level = "info" if verbose_nodes else "warning"
        self.nodes: dict[str, ProcessNode] = {}
        self._events: EventLog | None = None

    def __enter__(self) -> Bench:
        try:
            self.broker.start()
            self._events = EventLog(self.broker)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop()
        if self._events is not None:
            self._events.close()
            self._events = None
        self.broker.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def events(self) -> EventLog:
        """Every node message, with when it arrived; publishes too."""
        assert self._events is not None, "use the Bench as a context manager"
        return self._events

    def add_node(self, node_id: str, *, profile: str = "mock", output: str = "null") -> ProcessNode:
        """A node (not yet started) with the stock settings but for: zone ``bench``, the hub's key trusted, the
        given profile, and ``output`` "null" or "file" (a WAV per play under the node's own directory)."""
        base = self.root / node_id
        base.mkdir()
        config = replace(
            Config(),
            node=NodeConfig(id=node_id, zones=[self.zone]),
            mqtt=self.broker.mqtt_config(prefix=PREFIX),
            security=SecurityConfig(trusted_keys={self.kid: str(self.public)}),
            storage=StorageConfig(dir=str(base / "state")),
            audio=AudioConfig(output=f"file:{base / 'out'}" if output == "file" else output),
            gpio=GpioConfig(profile=profile, profiles_dir=str(self.profiles)),
            log_level=self.log_level,
        )
        node = ProcessNode(config, base, start=False)
        self.nodes[node_id] = node
        return node

    def check_alive(self) -> None:
        """Raise NodeDied, with the end of its log, if a started node process has exited."""
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is not None:
                tail = "\n".join(node.log_text().splitlines()[-15:])
                raise NodeDied(f"node {node.id} exited with status {node.proc.returncode}; its log ends:\n{tail}")

    def wait(self, want: Callable[[Message], bool], count: int = 1, timeout: float = 60.0,
             since: int = 0) -> list[Message]:
        """:meth:`EventLog.watch`, failing early if a node process died."""
        return self.events.watch(want, count, timeout, since, check=self.check_alive)

    def wait_online(self, nodes: Iterable[ProcessNode], timeout: float = 90.0, since: int = 0) -> dict[str, float]:
        """Wait until every node has said it is online; returns when the hub heard each."""
        ids = {n.id for n in nodes}
        seen = self.wait(lambda m: m.kind == "state" and m.node in ids and m.data.get("online") is True,
                         count=len(ids), timeout=timeout, since=since)
        return {m.node: m.received for m in seen}

    def cancel(self, payload: dict[str, Any]) -> None:
        """Publish the bulletin's signed tombstone in its place (stops it if it is playing)."""
        self.events.publish([(self.topic(payload), self.signed(tombstone_for(payload, time.time())), True)])


def systemd_analyze(unit: Path, tmp_path: Path) -> tuple[str, float | None]:
    """``systemd-analyze verify`` of ``unit`` (with this checkout's radiod) must pass without a word about the
    unit (an unknown key is only a warning to systemd); returns its output and the overall exposure level that
    ``systemd-analyze security --offline`` rates, None where this systemd cannot rate a file (systemd < 250)."""
    copy = unit_with_this_radiod(unit, tmp_path)
    verified = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60,
                              check=False)
    assert verified.returncode == 0 and unit.name not in verified.stderr, verified.stderr
    rated = subprocess.run(["systemd-analyze", "security", "--offline=true", str(copy)], capture_output=True,
                           text=True, timeout=60, check=False)
    if "--offline" in rated.stderr:
        return rated.stderr, None
    level = re.search(rf"Overall exposure level for {re.escape(unit.name)}: ([0-9.]+)", rated.stdout)
    assert level, rated.stdout + rated.stderr
    return rated.stdout, float(level[1])


def unit_with_this_radiod(unit: Path, tmp_path: Path) -> Path:
    """The systemd ``unit`` with ExecStart pointing at this checkout's radiod: ``systemd-analyze verify`` checks
    that the program exists."""
    radiod = shutil.which("radiod") or str(Path(sys.executable).with_name("radiod"))
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/radiod/bin/radiod", radiod), encoding="utf-8")
    return copy
