"""Long fuzz run of the message path: hostile messages into a ``radiod run`` node on a real broker. Prints figures.

    .venv/bin/python bench/fuzz.py [--messages 100000] [--seed 1] [--window 200] [--big-every 500]
                                   [--flood 300] [--flood-size 1048576]

One node process (mock relays, null output) on a private Mosquitto. A seeded generator sends a mix of what an
attacker or a broken hub tool could publish on the node's bulletin and command topics: random bytes, JWS
look-alikes, forged headers, bare JSON, odd topic ids, payloads the hub's trusted key did sign that are not
UTF-8, not JSON, hostile JSON (deep nesting, NaN, duplicate keys, huge numbers), wrong types and boundary
values in every field, bad schedules, other targets, expired messages; stale revs of a stored bulletin and
replays of an executed command; every ``--big-every``-th message 1 MB or 64 KiB + 1. All are non-retained.

For each message the node must publish exactly one ``rejected`` event, in order, with the reason
``parse_message`` gives (the store's ``stale_rev`` and ``replayed`` by construction), the message's topic and,
for a bulletin topic with a well-formed id, that id. At most ``--window`` messages are unanswered at a time, so
the broker never has to drop one. Every few seconds the node's RSS (from /proc), CPU, its store file and outbox
are sampled. At the end the node must still be connected and play a good bulletin, must have stored nothing it
refused, and must stop cleanly on SIGTERM.

Then two floods, with no window: ``--flood`` messages of ``--flood-size`` bytes (1 MB), to see what the node
holds in memory while it works through them, and ``--small-flood`` small ones, to see its event outbox grow.

Exit status 1 when the node died, hung, left a message unanswered or stored what it refused; an answer that
differs from the expected one is printed as an anomaly (like every figure here, it does not fail the run).
Takes about 12 minutes with the defaults (the node answers about 150 messages/s, see the report).
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from measure import ROOT, cpu_seconds, proc_status
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from radiod.errors import Rejected
from radiod.hub.localbroker import Broker
from radiod.protocol import builders
from radiod.protocol.jws import TrustStore, generate_keypair
from radiod.protocol.messages import ID_PATTERN, MAX_PAYLOAD_BYTES, MAX_TEXT, parse_message

PREFIX = "radio/fuzz"
NODE, ZONE, KID = "n01", "fz", "hub-1"
TARGETS = ("all", f"zone-{ZONE}", f"node-{NODE}")
RADIOD = ROOT / ".venv" / "bin" / "radiod"
ONE_MB = 1024 * 1024
SAMPLE_EVERY_S = 5.0
STALL_S = 60.0
REASONS = frozenset(re.findall(
    r"`([a-z_]+)`",
    (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8").split("Rejection reasons:")[1].split("\n\n")[0],
))


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def kib(status: dict[str, str], key: str) -> int:
    return int(status.get(key, "0 kB").split()[0])


class Signer:
    """Correct Ed25519 JWS signatures over arbitrary header and payload bytes."""

    def __init__(self, key_pem: Path, kid: str) -> None:
        key = serialization.load_pem_private_key(key_pem.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        self.key, self.kid = key, kid

    def token(self, payload: bytes, header: dict[str, Any] | None = None) -> bytes:
        head = json.dumps(header or {"alg": "EdDSA", "kid": self.kid}, separators=(",", ":")).encode()
        signing_input = b64(head) + b"." + b64(payload)
        return signing_input + b"." + b64(self.key.sign(signing_input))

    def json(self, obj: Any) -> bytes:
        try:
            body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except ValueError:  # a lone surrogate: send it as a JSON escape
            body = json.dumps(obj, separators=(",", ":")).encode()
        return self.token(body)


# ----- the generator ---------------------------------------------------------------------------------------------

BOUNDARY = [
    0, -1, 1, 2**53 - 1, 2**53, 2**64 + 1, 10**400, 1.0, 0.5, -0.0, 1e308, 5e-324, True, False, None, "", " ",
    "1", "now", [], {}, [None], {"": None}, "\u0000", "\ud800x", "e\u0301", "x" * 201, "x" * (MAX_TEXT + 1),
    "2026-11-22T06:30:00", "24:00", "06:30:00", "9999-12-31T23:59:59-23:59", ["all", 1], ["zone-other"], ["ALL"],
    {"now": False}, {"now": True, "at": []}, {"at": []}, {"at": ["2026-02-30T06:30:00Z"]}, {"daily": {}},
    {"daily": {"times": ["25:00"]}}, {"daily": {"times": ["06:30"], "weekdays": [0]}},
    {"daily": {"times": ["06:30"], "from": "2027-01-02", "until": "2027-01-01"}}, {"now": True, "repeat": 11},
    {"now": True, "gap_s": 601}, {"now": True, "repeat": 1.0},
]
FIELDS = ["v", "kind", "id", "rev", "iat", "exp", "priority", "status", "targets", "title", "lang", "text", "voice",
          "schedule", "chime", "volume", "cancelled"]
COMMAND_FIELDS = ["v", "kind", "id", "iat", "exp", "targets", "action", "args"]
ODD_CHARS = "aZ09._- é\u00a0\u2028\ufeff\U0001f600ệ%&*?!'\"\\<>;:@="


@dataclass
class Expect:
    topic: str
    reason: str
    bulletin: str | None  # the id the event must carry
    kind: str  # the generator's category, for the figures
    size: int


class Generator:
    def __init__(self, seed: int, signer: Signer, trust: TrustStore) -> None:
        self.rng = random.Random(seed)
        self.signer, self.trust = signer, trust
        self.n = 0

    def uid(self) -> str:
        self.n += 1
        return f"fz-{self.n}"

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        pick = r.randrange(10 if depth < 3 else 6)
        if pick == 0:
            return r.choice(BOUNDARY)
        if pick == 1:
            return r.randrange(-(2**70), 2**70)
        if pick == 2:
            return r.uniform(-1e12, 1e12)
        if pick == 3:
            return "".join(r.choice(ODD_CHARS) for _ in range(r.randrange(12)))
        if pick == 4:
            return r.choice([None, True, False])
        if pick == 5:
            return r.choice(BOUNDARY)
        if pick in (6, 7):
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        return {"".join(r.choice("abcvid") for _ in range(r.randrange(1, 4))): self.value(depth + 1)
                for _ in range(r.randrange(4))}

    def bulletin(self, bid: str, target: str, now: float) -> dict[str, Any]:
        tomorrow = time.gmtime(now + 86400)
        schedule = self.rng.choice([
            {"now": True},
            {"at": [time.strftime("%Y-%m-%dT%H:%M:%SZ", tomorrow)]},
            {"daily": {"times": ["06:30"], "weekdays": [1, 2], "from": time.strftime("%Y-%m-%d", tomorrow)}},
        ])
        return builders.bulletin(id=bid, iat=int(now), exp=int(now) + 86400 * 3, targets=[target], title="thử",
                                 text="Thông báo thử.", schedule=schedule)

    def command(self, cid: str, target: str, now: float) -> dict[str, Any]:
        return builders.command(id=cid, iat=int(now), exp=int(now) + 60, targets=[target], action="volume",
                                level=0.5)

    def oracle(self, topic: str, payload: bytes) -> str:
        try:
            parse_message(topic, payload, prefix=PREFIX, node_id=NODE, zones=[ZONE], trust=self.trust,
                          require_signature=True, now=time.time())
        except Rejected as exc:
            return exc.reason
        return "accepted"

    def junk(self, big: bool) -> tuple[str, bytes, str, str]:
        """(topic, payload, kind, reason) of one message the node must refuse, and what parse_message says."""
        while True:
            topic, payload, kind = self._candidate(big)
            reason = self.oracle(topic, payload)
            if reason != "accepted":
                return topic, payload, kind, reason

    def _candidate(self, big: bool) -> tuple[str, bytes, str]:
        r, now = self.rng, time.time()
        target = r.choice(TARGETS)
        bid = self.uid()
        btopic, ctopic = f"{PREFIX}/bulletin/{target}/{bid}", f"{PREFIX}/command/{target}"
        topic = btopic if r.random() < 0.7 else ctopic
        if big:
            size = ONE_MB if r.random() < 0.5 else MAX_PAYLOAD_BYTES + 1
            if r.random() < 0.5:
                return topic, r.randbytes(size), "big-random"
            obj = self.bulletin(bid, target, now) | {"pad": "x" * (size * 3 // 4)}
            return btopic, self.signer.json(obj), "big-signed"
        kind = r.choices(
            ["raw", "jws-like", "header", "bare-json", "odd-topic", "signed-bytes", "signed-nested", "bulletin",
             "command"], weights=[10, 8, 8, 5, 8, 12, 4, 30, 15])[0]
        if kind == "raw":
            return topic, r.randbytes(r.randrange(1, 3000)), kind
        if kind == "jws-like":
            return topic, b".".join(b64(r.randbytes(r.randrange(0, 200))) for _ in range(3)), kind
        if kind == "header":
            header = {k: self.value() for k in r.sample(["alg", "kid", "crit", "b64", "typ", "jwk"], r.randrange(4))}
            if r.random() < 0.5:
                header |= {"alg": "EdDSA", "kid": KID}
            body = json.dumps(self.bulletin(bid, target, now)).encode()
            return btopic, b64(json.dumps(header).encode()) + b"." + b64(body) + b"." + b64(r.randbytes(64)), kind
        if kind == "bare-json":
            return topic, json.dumps(self.bulletin(bid, target, now)).encode(), kind
        if kind == "odd-topic":
            level = r.choice([
                "".join(r.choice(ODD_CHARS) for _ in range(r.randrange(0, 40))),
                "x" * r.randrange(65, 5000), "x" * 60_000, "", "..", "a b",
            ])
            payload = self.signer.json(self.bulletin(level, target, now))
            return f"{PREFIX}/bulletin/{target}/{level}", payload, kind
        if kind == "signed-bytes":
            raw = r.choice([
                lambda: r.randbytes(r.randrange(1, 2000)),
                lambda: json.dumps(self.value()).encode("utf-16"),
                lambda: b"\xef\xbb\xbf" + json.dumps({"x": self.value()}).encode(),
                lambda: json.dumps([self.value()]).encode(),
                lambda: b'{"v":1,"t":"' + r.randbytes(20) + b'\xc3"}',
                lambda: r.choice([b'{"v": NaN}', b'{"v": -Infinity}', b'{"v": 1e999}', b'{"v":1,"v":1}',
                                  b'{"v": ' + b"9" * 5000 + b"}", b"{}", b"null", b"\x00", b"[]"]),
            ])()
            return topic, self.signer.token(raw), kind
        if kind == "signed-nested":
            n = r.randrange(100, 24000)
            raw = b"[" * n + b"]" * n if r.random() < 0.5 else b'{"a":' * (n // 3) + b"1" + b"}" * (n // 3)
            return topic, self.signer.token(raw), kind
        if kind == "bulletin":
            obj = self.bulletin(bid, target, now)
            fields = FIELDS
        else:
            obj, fields, topic = self.command(bid, target, now), COMMAND_FIELDS, ctopic
        for key in r.sample(fields, r.randrange(1, 3)):
            if r.random() < 0.2:
                obj.pop(key, None)
            else:
                obj[key] = self.value()
        if kind == "bulletin" and r.random() < 0.3 and isinstance(obj.get("schedule"), dict):
            obj["schedule"] = {**obj["schedule"], r.choice(["now", "at", "daily", "repeat", "gap_s"]): self.value()}
        if r.random() < 0.1:
            obj["iat"], obj["exp"] = int(now) - 10, int(now)  # exp = now: expired
        if kind == "bulletin" and r.random() < 0.5:
            topic = btopic
        return topic, self.signer.json(obj), kind


# ----- the hub's side --------------------------------------------------------------------------------------------


class Hub:
    """Publishes on one connection and checks every event against what it expects, in order."""

    def __init__(self, broker: Broker) -> None:
        self.expected: collections.deque[Expect] = collections.deque()
        self.cond = threading.Condition()
        self.answered = 0
        self.by_reason: collections.Counter[str] = collections.Counter()
        self.by_kind: collections.Counter[str] = collections.Counter()
        self.other: collections.Counter[str] = collections.Counter()
        self.anomalies: list[str] = []
        self.anomaly_count = 0
        self.max_event = 0
        self.last_seq: int | None = None
        self.online = threading.Event()
        self.last_event = time.monotonic()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="fuzz-hub", protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=60)
        self.client.loop_start()
        self.client.subscribe([(f"{PREFIX}/node/+/event", 1), (f"{PREFIX}/node/+/state", 1)])
        if not subscribed.wait(10):
            raise RuntimeError("the broker did not acknowledge the subscription")

    def anomaly(self, text: str) -> None:
        self.anomaly_count += 1
        if len(self.anomalies) < 20:
            self.anomalies.append(text)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic.endswith("/state"):
            if msg.payload and json.loads(msg.payload).get("online"):
                self.online.set()
            return
        event = json.loads(msg.payload)
        with self.cond:
            self.last_event = time.monotonic()
            self.max_event = max(self.max_event, len(msg.payload))
            seq = event["seq"]
            if self.last_seq is not None and seq != self.last_seq + 1:
                self.anomaly(f"event seq {seq} after {self.last_seq}")
            self.last_seq = seq
            if event["type"] != "rejected":
                self.other[event["type"]] += 1
                self.cond.notify_all()
                return
            if not self.expected:
                self.anomaly(f"unexpected rejected event: {str(event)[:300]}")
                return
            want = self.expected.popleft()
            self.answered += 1
            self.by_reason[event["reason"]] += 1
            self.by_kind[want.kind] += 1
            got = (event["reason"], event.get("topic", want.topic), event.get("bulletin"))
            if event["reason"] not in REASONS or got != (want.reason, want.topic, want.bulletin):
                self.anomaly(f"#{self.answered} {want.kind} ({want.size} B) on {want.topic[:80]!r}: expected "
                             f"{want.reason}/{want.bulletin}, got {got[0]}/{got[2]} on {got[1][:80]!r}")
            if not event.get("message"):
                self.anomaly(f"#{self.answered}: rejected event without a message")
            self.cond.notify_all()

    def send(self, topic: str, payload: bytes, expect: Expect, *, retain: bool = False) -> None:
        with self.cond:
            self.expected.append(expect)
        self.client.publish(topic, payload, qos=1, retain=retain)

    def wait_until(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 1.0))
        return True

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def topic_id(topic: str) -> str | None:
    levels = topic.split("/")
    return levels[-1] if levels[-3] == "bulletin" and re.fullmatch(ID_PATTERN, levels[-1]) else None


# ----- the run ---------------------------------------------------------------------------------------------------


def sample(pid: int, db: Path) -> dict[str, float]:
    status = proc_status(pid)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    files = sum(p.stat().st_size for p in db.parent.glob("radiod.db*"))
    return {"rss": kib(status, "VmRSS") / 1024, "hwm": kib(status, "VmHWM") / 1024, "cpu": cpu_seconds(pid),
            "outbox": outbox, "db": files / 1e6, "threads": float(status.get("Threads", 0))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=int, default=200, help="unanswered messages at most (flow control)")
    parser.add_argument("--big-every", type=int, default=500, help="every N-th message is 1 MB or 64 KiB + 1")
    parser.add_argument("--flood", type=int, default=300, help="messages in the final flood (0: none)")
    parser.add_argument("--flood-size", type=int, default=ONE_MB)
    parser.add_argument("--small-flood", type=int, default=20_000, help="then this many small messages (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
    broker = Broker(tmp / "broker")
    node_proc: subprocess.Popen[bytes] | None = None
    hub: Hub | None = None
    failures: list[str] = []
    try:
        broker.start()
        key, public = generate_keypair(KID, tmp / "keys")
        signer, trust = Signer(key, KID), TrustStore({KID: public})
        state = tmp / NODE / "state"
        config = {
            "node": {"id": NODE, "zones": [ZONE]},
            "mqtt": {"host": broker.host, "port": broker.port, "prefix": PREFIX},
            "security": {"trusted_keys": {KID: str(public)}},
            "storage": {"dir": str(state)},
            "audio": {"output": "null"},
            "gpio": {"profile": "mock", "profiles_dir": str(ROOT / "firmware_profiles")},
            "log_level": "warning",
        }
        (tmp / "node.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        hub = Hub(broker)
        gen = Generator(args.seed, signer, trust)
        # A retained junk bulletin waits for the node: its rejection proves the node subscribed. Then cleared.
        probe = f"{PREFIX}/bulletin/all/probe"
        hub.send(probe, b"retained junk", Expect(probe, "bad_signature", "probe", "probe", 13), retain=True)
        command = [str(RADIOD), "run", "--config", str(tmp / "node.yaml")]
        if shutil.which("setpriv"):
            command = ["setpriv", "--pdeathsig", "TERM", *command]
        log = (tmp / "node.log").open("ab")
        node_proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        if not hub.wait_until(lambda: hub.answered == 1, 60):
            raise RuntimeError("the node did not answer the retained probe within 60 s")
        hub.client.publish(probe, b"", qos=1, retain=True).wait_for_publish(10)
        pid, db = node_proc.pid, state / "radiod.db"

        # The two refusals the store decides need a stored bulletin and an executed command.
        now = time.time()
        anchor = gen.bulletin("anchor", "all", now) | {"rev": 5, "schedule": {"at": ["2099-01-01T00:00:00Z"]},
                                                        "exp": int(now) + 86400 * 30}
        hub.client.publish(f"{PREFIX}/bulletin/all/anchor", signer.json(anchor), qos=1)
        commands_run = 0

        def fresh_command() -> bytes:
            nonlocal commands_run
            commands_run += 1
            body = gen.command(f"cmd-{commands_run}", f"node-{NODE}", time.time()) | {"action": "report"}
            body["exp"] = body["iat"] + 300
            token = signer.json(body)
            hub.client.publish(f"{PREFIX}/command/node-{NODE}", token, qos=1)
            hub.wait_until(lambda: hub.other["command"] >= commands_run, 30)
            return token

        replay, replay_since = fresh_command(), time.monotonic()
        if not hub.wait_until(lambda: hub.other["accepted"] >= 1, 30):
            failures.append("the anchor bulletin was not accepted")

        print(f"fuzzing node pid {pid} with {args.messages} messages (seed {args.seed}, window {args.window})")
        print(f"{'t s':>6} {'sent':>8} {'answered':>8} {'msg/s':>7} {'RSS MB':>7} {'peak':>6} {'CPU s':>7} "
              f"{'outbox':>6} {'db MB':>6}")
        samples: list[tuple[float, dict[str, float]]] = []
        start = time.monotonic()
        next_sample = start
        sizes = 0
        for i in range(args.messages):
            if i and i % 997 == 0:  # a stale rev of the stored anchor
                rev = gen.rng.randrange(1, 6)
                payload = signer.json(anchor | {"rev": rev, "title": f"khác {i}"})
                topic = f"{PREFIX}/bulletin/all/anchor"
                expect = Expect(topic, "stale_rev", "anchor", "stale", len(payload))
            elif i and i % 1009 == 0:  # a replayed command (renewed before it expires)
                if time.monotonic() - replay_since > 200:
                    replay, replay_since = fresh_command(), time.monotonic()
                payload, topic = replay, f"{PREFIX}/command/node-{NODE}"
                expect = Expect(topic, "replayed", None, "replayed", len(payload))
            else:
                big = args.big_every > 0 and i % args.big_every == args.big_every - 1
                topic, payload, kind, reason = gen.junk(big)
                expect = Expect(topic, reason, topic_id(topic), kind, len(payload))
            sizes += len(payload)
            if not hub.wait_until(lambda: len(hub.expected) < args.window, STALL_S):
                failures.append(f"stall: no answer for {STALL_S:.0f} s after {hub.answered} answers")
                break
            hub.send(topic, payload, expect)
            if time.monotonic() >= next_sample:
                if node_proc.poll() is not None:
                    failures.append(f"the node exited with status {node_proc.returncode}")
                    break
                s = sample(pid, db)
                t = time.monotonic() - start
                samples.append((t, s))
                rate = hub.answered / t if t else 0.0
                print(f"{t:6.0f} {i + 1:8d} {hub.answered:8d} {rate:7.0f} {s['rss']:7.1f} {s['hwm']:6.1f} "
                      f"{s['cpu']:7.1f} {s['outbox']:6.0f} {s['db']:6.1f}", flush=True)
                next_sample += SAMPLE_EVERY_S
        if not hub.wait_until(lambda: not hub.expected, STALL_S):
            failures.append(f"{len(hub.expected)} messages never answered")
        elapsed = time.monotonic() - start
        answered = hub.answered
        end = sample(pid, db)
        samples.append((elapsed, end))

        # Still alive, connected and playing; nothing stored that was refused.
        good = gen.bulletin("good", "all", time.time()) | {"schedule": {"now": True}, "text": "Xin chào."}
        before = hub.other["finished"]
        hub.client.publish(f"{PREFIX}/bulletin/all/good", signer.json(good), qos=1)
        if not hub.wait_until(lambda: hub.other["finished"] > before, 120):
            failures.append("the node did not play a good bulletin after the run")
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            stored = sorted(row[0] for row in conn.execute("SELECT id FROM bulletins"))
            commands = sorted(row[0] for row in conn.execute("SELECT id FROM commands"))
        if stored != ["anchor", "good"]:
            failures.append(f"stored bulletins: {stored[:10]} ({len(stored)})")
        if commands != sorted(f"cmd-{n}" for n in range(1, commands_run + 1)):
            failures.append(f"stored command ids: {commands[:10]} ({len(commands)})")

        floods = []
        if args.flood:
            floods.append(run_flood(hub, gen, pid, db, args.flood, args.flood_size))
        if args.small_flood:
            floods.append(run_flood(hub, gen, pid, db, args.small_flood, 200))
        if node_proc.poll() is not None:
            failures.append(f"the node exited with status {node_proc.returncode}")
        else:
            node_proc.send_signal(signal.SIGTERM)
            code = node_proc.wait(30)
            if code != 0:
                failures.append(f"the node exited with status {code} on SIGTERM")
        node_proc = None

        report(hub, answered, samples, elapsed, sizes, floods, failures)
        return 1 if failures else 0
    finally:
        if node_proc is not None and node_proc.poll() is None:
            node_proc.kill()
            node_proc.wait()
        if hub is not None:
            hub.close()
        broker.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_flood(hub: Hub, gen: Generator, pid: int, db: Path, count: int, size: int) -> dict[str, float]:
    """``count`` junk messages of ``size`` bytes with no flow control; the node's RSS sampled every 20 ms, its
    outbox every 0.5 s."""
    rss0 = kib(proc_status(pid), "VmRSS") / 1024
    answered0 = hub.answered
    peak, outbox, stop = [rss0], [0.0], threading.Event()

    def watch() -> None:
        n = 0
        while not stop.wait(0.02):
            try:
                peak.append(kib(proc_status(pid), "VmRSS") / 1024)
                n += 1
                if n % 25 == 0:
                    outbox.append(sample(pid, db)["outbox"])
            except (OSError, sqlite3.Error):
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    topic = f"{PREFIX}/command/all"
    payload = gen.rng.randbytes(size)
    reason = gen.oracle(topic, payload)
    start = time.monotonic()
    for _ in range(count):
        hub.send(topic, payload, Expect(topic, reason, None, "flood", size))
    sent_s = time.monotonic() - start
    done = hub.wait_until(lambda: not hub.expected, 600)
    stop.set()
    watcher.join()
    return {"count": count, "size": size, "sent_s": sent_s, "answered": hub.answered - answered0,
            "all": float(done), "took_s": time.monotonic() - start, "rss0": rss0, "peak": max(peak),
            "rss1": kib(proc_status(pid), "VmRSS") / 1024, "outbox": max(outbox)}


def report(hub: Hub, answered: int, samples: list[tuple[float, dict[str, float]]], elapsed: float, sizes: int,
           floods: list[dict[str, float]], failures: list[str]) -> None:
    print()
    print(f"messages: {answered} answered in {elapsed:.1f} s = {answered / elapsed:.0f} msg/s "
          f"({sizes / elapsed / 1e6:.1f} MB/s of payload); node CPU {samples[-1][1]['cpu']:.1f} s")
    print("rejected by reason (floods included): " + ", ".join(f"{k} {v}" for k, v in hub.by_reason.most_common()))
    print("messages by kind:   " + ", ".join(f"{k} {v}" for k, v in hub.by_kind.most_common()))
    print("other events:       " + ", ".join(f"{k} {v}" for k, v in hub.other.most_common()))
    print(f"largest event: {hub.max_event} bytes")
    first = next((s for t, s in samples if t >= 10), samples[0][1])
    last = samples[-1][1]
    print(f"node RSS: {samples[0][1]['rss']:.1f} MB at start, {first['rss']:.1f} MB at 10 s, {last['rss']:.1f} MB "
          f"at the end (peak {last['hwm']:.1f} MB); store {last['db']:.1f} MB, outbox {last['outbox']:.0f}")
    for flood in floods:
        print(f"flood: {flood['count']:.0f} x {flood['size']:.0f} B sent in {flood['sent_s']:.2f} s, "
              f"{flood['answered']:.0f} answered in {flood['took_s']:.2f} s "
              f"({flood['answered'] / flood['took_s']:.0f} msg/s); node RSS {flood['rss0']:.1f} MB -> "
              f"peak {flood['peak']:.1f} MB (+{flood['peak'] - flood['rss0']:.1f}) -> {flood['rss1']:.1f} MB; "
              f"outbox up to {flood['outbox']:.0f}")
    print(f"anomalies: {hub.anomaly_count}")
    for line in hub.anomalies:
        print(f"  {line}")
    for line in failures:
        print(f"FAILED: {line}")
    if not failures and not hub.anomaly_count:
        print("ok: every message got exactly one rejected event with the expected reason; the node survived")


if __name__ == "__main__":
    sys.exit(main())
