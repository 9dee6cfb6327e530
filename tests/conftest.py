"""Shared pytest fixtures. Each fixture says what real thing it stands up and guarantees it is torn down."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import EventLog, Hub, ThreadNode, node_config

from radiod.config import Config
from radiod.hub.localbroker import Broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on a free loopback port, anonymous, persistence on; stopped after the test.

    ``broker.mqtt_config()`` gives an ``MqttConfig`` for it; ``restart()``, ``stop()``, ``start()`` and ``kill()``
    simulate the hub rebooting or crashing. Build a ``Broker`` directly for TLS, passwords or ACLs.
    """
    with Broker(tmp_path / "mosquitto") as running:
        yield running


@pytest.fixture
def hub(broker: Broker, tmp_path: Path) -> Hub:
    """The commune hub: a signing key the nodes trust, and an operator that posts on ``broker``."""
    return Hub(broker, tmp_path / "hub")


@pytest.fixture
def events(broker: Broker) -> Iterator[EventLog]:
    """Every node event, as a hub subscriber with a persistent session receives them."""
    log = EventLog(broker)
    yield log
    log.close()


@pytest.fixture
def start_node(hub: Hub, tmp_path: Path) -> Iterator[Callable[..., ThreadNode]]:
    """Starts real daemons in threads (``start_node(config=None, **config_section_changes)``); all are stopped
    cleanly after the test."""
    nodes: list[ThreadNode] = []

    def start(config: Config | None = None, **changes: Any) -> ThreadNode:
        node = ThreadNode(dataclasses.replace(config or node_config(hub, tmp_path), **changes))
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        if node.thread.is_alive():
            node.stop()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs: a real full file system for the store (needs root, as CI has)."""
    mount = tmp_path / "sd"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                            capture_output=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
