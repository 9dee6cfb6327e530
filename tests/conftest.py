"""Shared pytest fixtures. Each fixture says what real thing it stands up and guarantees it is torn down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from radiod.localbroker import Broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on a free loopback port, anonymous, persistence on; stopped after the test.

    ``broker.mqtt_config()`` gives an ``MqttConfig`` for it; ``restart()``, ``stop()``, ``start()`` and ``kill()``
    simulate the hub rebooting or crashing. Build a ``Broker`` directly for TLS, passwords or ACLs.
    """
    with Broker(tmp_path / "mosquitto") as running:
        yield running
