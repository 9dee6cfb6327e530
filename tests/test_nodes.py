"""`radiod nodes` on the hub: the commune from the broker's retained state and health, several nodes at once.

Two nodes are real daemons (one stopped cleanly, so its state says offline); two more are as a node leaves
them on the broker: one whose last report is crit, one still "online" whose reports stopped (a hung daemon).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from harness import PREFIX, Hub, ThreadNode, node_config, wait_for

from radiod.cli import main
from radiod.clock import rfc3339
from radiod.hub.localbroker import Broker
from radiod.hub.session import collect_retained, publish_once
from radiod.schema import to_plain


@pytest.fixture
def hub(broker: Broker, tmp_path: Path) -> Hub:
    return Hub(broker, tmp_path / "hub")


@pytest.fixture
def hub_config(hub: Hub, tmp_path: Path) -> str:
    """The hub's config file: its broker and prefix; its health interval sets when a node counts as silent."""
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(to_plain(hub.config(), mask_secrets=False)), encoding="utf-8")
    return str(path)


def retained(node: str, state: dict, health: dict | None) -> list[tuple[str, str, bool]]:
    messages = [(f"{PREFIX}/node/{node}/state", json.dumps(state), True)]
    if health is not None:
        messages.append((f"{PREFIX}/node/{node}/health", json.dumps(health), True))
    return messages


def health(node: str, ts: float, status: str, checks: list[dict]) -> dict:
    return {"v": 1, "node": node, "ts": rfc3339(ts), "status": status, "version": "0.1.0", "uptime_s": 99,
            "checks": checks, "playing": None, "next": {"bulletin": "b-daily", "at": rfc3339(ts + 600, ms=False)},
            "bulletins": 1, "outbox": 0}


def test_nodes_offline_first_with_failing_checks(
    hub: Hub, tmp_path: Path, hub_config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    up = ThreadNode(node_config(hub, tmp_path, "n01"))
    down = ThreadNode(node_config(hub, tmp_path, "n02"))
    # A node publishes its health just after it connects: on a loaded machine, not yet when connect returns.
    wait_for(lambda: collect_retained(hub.config().mqtt, "t", f"{PREFIX}/node/n02/health", settle_s=0.3), 30,
             "n02's health report before it goes down")
    down.stop()
    now = time.time()
    storm = health("n03", now, "crit", [
        {"name": "broker", "status": "ok", "detail": "connected"},
        {"name": "audio", "status": "crit", "detail": "audio output 'USB': no such output device"},
    ])
    hung = health("n04", now - 3600, "ok", [{"name": "broker", "status": "ok", "detail": "connected"}])
    publish_once(hub.config().mqtt, "test", retained("n03", {"online": True, "since": rfc3339(now - 900)}, storm)
                 + retained("n04", {"online": True, "since": rfc3339(now - 7200)}, hung))
    wait_for(lambda: len(collect_retained(hub.config().mqtt, "t", f"{PREFIX}/node/+/health", settle_s=0.3)) >= 4,
             30, "every node's health report on the broker")
    try:
        assert main(["nodes", "--config", hub_config]) == 2
        lines = capsys.readouterr().out.splitlines()
        rows = [line.split()[:2] for line in lines if line[:1] != " "]
        assert rows[0] == ["NODE", "STATE"]
        assert rows[1:] == [["n02", "OFFLINE"], ["n04", "SILENT"], ["n03", "CRIT"], rows[4]]
        assert rows[4][0] == "n01" and rows[4][1] in ("OK", "WARN", "CRIT")
        assert any("offline since" in line for line in lines)
        assert any("CRIT audio: audio output 'USB': no such output device" in line for line in lines)
        assert main(["nodes", "--config", hub_config, "--json"]) == 2
        views = {v["node"]: v for v in json.loads(capsys.readouterr().out)}
        assert views["n02"]["online"] is False and views["n01"]["online"] is True
        assert views["n01"]["version"] and views["n01"]["last_seen"]
        assert views["n03"]["failed"] == [{"name": "audio", "status": "crit",
                                           "detail": "audio output 'USB': no such output device"}]
        assert views["n03"]["next"]["bulletin"] == "b-daily"
    finally:
        up.stop()


def test_nodes_all_well_exits_0_and_none_exits_1(
    hub: Hub, hub_config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["nodes", "--config", hub_config]) == 1
    assert "no node has reported on radio/test" in capsys.readouterr().out
    now = time.time()
    fine = health("n05", now, "ok", [{"name": "broker", "status": "ok", "detail": "connected"}])
    publish_once(hub.config().mqtt, "test", retained("n05", {"online": True, "since": rfc3339(now)}, fine))
    assert main(["nodes", "--config", hub_config]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["n05", "OK"]



def test_nodes_lists_the_hubs_nodes_that_never_connected(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """hub.nodes (as hub-setup writes it into the operator's config) names n06, which has left nothing on the
    broker: it is listed, after the nodes that went down and before the healthy ones, and the exit warns."""
    path = tmp_path / "hub-listed.yaml"
    config = to_plain(hub.config(), mask_secrets=False)
    config["hub"] = {"nodes": ["n05", "n06"]}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    now = time.time()
    fine = health("n05", now, "ok", [{"name": "broker", "status": "ok", "detail": "connected"}])
    publish_once(hub.config().mqtt, "test", retained("n05", {"online": True, "since": rfc3339(now)}, fine))
    assert main(["nodes", "--config", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["n06", "NEVER", "never"]
    assert lines[2].strip() == "in hub.nodes but never connected to the broker"
    assert lines[3].split()[:2] == ["n05", "OK"] and len(lines) == 4
    assert main(["nodes", "--config", str(path), "--json"]) == 1
    views = {v["node"]: v for v in json.loads(capsys.readouterr().out)}
    assert views["n06"]["state"] == "never" and views["n06"]["last_seen"] is None
