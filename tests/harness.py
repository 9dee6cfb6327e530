"""What the daemon tests stand up: a hub (keys, an operator, an event subscriber) and nodes, all real.

The node is the real :class:`radiod.node.daemon.Daemon` (in a thread, on gpiozero's MockFactory and a real-time file
sink) or the real ``radiod run`` process (for SIGKILL). The subscriber is a plain paho client with a persistent
session at QoS 1, as a hub's event logger would be, so it misses nothing across a broker restart.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from gpiozero.pins.mock import MockFactory

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
from radiod.hub.localbroker import Broker
from radiod.hub.operator import Operator, PostRequest
from radiod.node.daemon import Daemon
from radiod.protocol.jws import generate_keypair
from radiod.schema import to_plain

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


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class EventLog:
    """Every event of every node, as a hub subscriber with a persistent session receives them."""

    def __init__(self, broker: Broker) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"test-events-{os.getpid()}-{id(self)}",
            clean_session=False, protocol=paho.MQTTv311,
        )
        self._client.on_connect = lambda c, *_: c.subscribe(f"{PREFIX}/node/+/event", qos=1)
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(0.1, 1)
        self._client.connect_async(broker.host, broker.port, keepalive=10)
        self._client.loop_start()
        wait_for(self._client.is_connected, 10, "the event subscriber to connect")
        time.sleep(0.2)  # the SUBACK

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.events.append(json.loads(msg.payload))

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def of(self, node: str | None = None, type_: str | None = None, bulletin: str | None = None) -> list[dict]:
        with self._lock:
            return [
                e for e in self.events
                if (node is None or e["node"] == node) and (type_ is None or e["type"] == type_)
                and (bulletin is None or e.get("bulletin") == bulletin)
            ]

    def wait(self, type_: str, *, bulletin: str | None = None, node: str | None = None, count: int = 1,
             timeout: float = 30) -> list[dict]:
        return wait_for(
            lambda: (found := self.of(node, type_, bulletin)) and len(found) >= count and found,
            timeout, f"{count} '{type_}' event(s) for {bulletin or 'any bulletin'}",
        )


@dataclass
class Hub:
    broker: Broker
    dir: Path
    kid: str = "hub-1"
    key: Path = field(init=False)
    public: Path = field(init=False)

    def __post_init__(self) -> None:
        self.key, self.public = generate_keypair(self.kid, self.dir / "keys")

    def config(self) -> Config:
        return Config(mqtt=self.broker.mqtt_config(prefix=PREFIX))

    def operator(self, key: Path | None = None, kid: str | None = None) -> Operator:
        return Operator(self.config(), key=key or self.key, kid=kid or self.kid)

    def post(self, text: str, **kwargs: Any) -> dict[str, Any]:
        """Sign and publish; without chimes unless asked, so a play takes seconds, not the chimes' length."""
        kwargs.setdefault("chime", False)
        return self.operator().post(PostRequest(text=text, **kwargs))


def node_config(hub: Hub, tmp: Path, node: str = "n01", *, zones: tuple[str, ...] = ("thon-1",),
                quiet: tuple[tuple[str, str], ...] = (), grace_s: int = 600) -> Config:
    """A node config on the hub's broker, with fast mock relays and a file sink under ``tmp``."""
    profiles = tmp / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "fast.yaml").write_text(FAST_PROFILE, encoding="utf-8")
    return replace(
        Config(),
        node=NodeConfig(id=node, zones=list(zones), demo=True),  # a test bench: mock relays, a file sink
        mqtt=hub.broker.mqtt_config(prefix=PREFIX, keepalive_s=5, reconnect_max_s=1),
        security=SecurityConfig(trusted_keys={hub.kid: str(hub.public)}),
        storage=StorageConfig(dir=str(tmp / node / "state"), cache_dir=str(tmp / "cache")),
        audio=AudioConfig(output=f"file:{tmp / node / 'out'}"),
        gpio=GpioConfig(profile="fast", profiles_dir=str(profiles)),
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
        wait_for(lambda: self.daemon.link.connected, 15, f"node {config.node.id} to connect")

    @property
    def out_dir(self) -> Path:
        return Path(self.config.audio.output.removeprefix("file:"))

    def stop(self) -> None:
        self.daemon.request_stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the daemon did not stop"


class ProcessNode:
    """``radiod run`` as its own process, for the tests that kill it."""

    def __init__(self, config: Config, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.path = tmp / f"{config.node.id}.yaml"
        self.path.write_text(yaml.safe_dump(to_plain(config, mask_secrets=False)), encoding="utf-8")
        self.log = (tmp / f"{config.node.id}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "radiod.cli", "run", "--config", str(self.path)],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=30)
