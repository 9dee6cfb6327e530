"""The control socket and the commands that use it, as a technician on SSH uses them: `radiod status`,
`radiod test`, `radiod config --show`, against the real daemon on a real broker, over the real Unix socket."""

from __future__ import annotations

import dataclasses
import grp
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import PREFIX, EventLog, Hub, ThreadNode, wait_for

from radiod.cli import main
from radiod.clock import rfc3339
from radiod.config import Config, ControlConfig, GpioConfig, MqttConfig
from radiod.errors import RadiodError
from radiod.hub.session import publish_once
from radiod.node import control
from radiod.node.control import ControlServer, socket_paths
from radiod.protocol.jws import sign
from radiod.schema import to_plain
from radiod.technician.client import NotRunning, request

SHORT = "Thông báo thử. Xin chào bà con."


@pytest.fixture
def start_node(start_node: Callable[..., ThreadNode]) -> Callable[..., ThreadNode]:
    """conftest's start_node, returning once the node's control socket is there."""

    def start(**changes: Any) -> ThreadNode:
        node = start_node(**changes)
        wait_for(lambda: any(p.exists() for p in socket_paths(node.config)), 10, "the control socket")
        return node

    return start


def config_file(config: Config, tmp_path: Path) -> str:
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(to_plain(config, mask_secrets=False)), encoding="utf-8")
    return str(path)


def relay_edges(node: ThreadNode, name: str) -> list[tuple[float, bool]]:
    return [(at, on) for at, relay, on in node.daemon.station.relays.history() if relay == name]


# ----- the socket -----


def test_socket_is_0660_for_the_configured_group_and_under_storage_dir(
    start_node: Callable[..., ThreadNode],
) -> None:
    group = grp.getgrgid(os.getgid()).gr_name if os.geteuid() else "audio"
    node = start_node(control=ControlConfig(group=group))
    path = Path(node.config.storage.dir) / "control.sock"  # no /run/radiod here: not started by systemd
    info = path.stat()
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert grp.getgrgid(info.st_gid).gr_name == group
    node.stop()
    assert not path.exists(), "a clean stop removes the socket"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to become nobody")
def test_a_user_outside_the_group_cannot_connect(start_node: Callable[..., ThreadNode]) -> None:
    public_dir = Path(tempfile.mkdtemp(prefix="radiod-ctl-"))  # reachable by anyone: only the socket's mode guards
    public_dir.chmod(0o755)
    path = public_dir / "control.sock"
    try:
        start_node(control=ControlConfig(socket=str(path), group="audio"))
        probe = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(13)\n"
        )

        def as_nobody() -> int:
            return subprocess.run(
                ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", probe,
                 str(path)], check=False, capture_output=True, text=True, timeout=30,
            ).returncode

        assert as_nobody() == 13
        assert request([path], {"cmd": "status"})["node"] == "n01", "root gets in"
        path.chmod(0o666)
        assert as_nobody() == 0, "with the mode opened, nobody gets in: it was the mode that kept them out"
    finally:
        shutil.rmtree(public_dir, ignore_errors=True)


def test_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(path))  # a daemon killed with SIGKILL leaves this: bound, nobody listening
    leftover.close()
    first = ControlServer(path, None, {"ping": lambda req, progress: "pong"})
    first.start()
    try:
        assert request([path], {"cmd": "ping"}) == "pong"
        with pytest.raises(RadiodError, match="another radiod answers there"):
            ControlServer(path, None, {}).start()
        with pytest.raises(RadiodError, match=r"unknown command 'nope' \(known: ping\)"):
            request([path], {"cmd": "nope"})
    finally:
        first.stop()
    with pytest.raises(NotRunning):
        request([path], {"cmd": "ping"})


def test_a_stalled_main_loop_is_reported(
    start_node: Callable[..., ThreadNode], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node = start_node()
    monkeypatch.setattr(control, "MAIN_LOOP_TIMEOUT_S", 1.0)
    release = threading.Event()
    node.daemon.on_main_loop(lambda: release.wait(20))  # the main loop hangs on something
    try:
        assert main(["health", "--config", config_file(node.config, tmp_path)]) == 2
    finally:
        release.set()
    assert "CRIT  daemon     the daemon's main loop did not answer within 1 s: it is stalled" in capsys.readouterr().out


# ----- radiod status -----


def test_status_shows_the_next_plays_and_the_last_plays(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node = start_node()
    later = hub.post("Họp thôn lúc bảy giờ tối.", at=[rfc3339(time.time() + 7200, ms=False)], title="Họp thôn")
    now = hub.post(SHORT, title="Thử")
    events.wait("finished", bulletin=now["id"])
    path = config_file(node.config, tmp_path)
    assert main(["status", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "now playing: nothing" in out
    next_line = next(line for line in out.splitlines() if later["id"] in line)
    assert "Họp thôn" in next_line
    assert f"finished    {now['id']} r1 occurrence now" in out
    assert main(["status", "--config", path, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["next"][0]["bulletin"] == later["id"]
    assert report["last_plays"][0]["state"] == "finished" and report["last_plays"][0]["title"] == "Thử"


def test_status_with_the_daemon_dead_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = dataclasses.replace(Config(), control=ControlConfig(socket=str(tmp_path / "control.sock")))
    assert main(["status", "--config", config_file(config, tmp_path)]) == 2
    assert "radiod is not running" in capsys.readouterr().err


# ----- radiod test -----


def test_technician_test_plays_each_line_alone_and_reports_events(
    events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    node = start_node(gpio=GpioConfig(profile="mock"))  # two speaker lines
    assert main(["test", "--config", config_file(node.config, tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("line-1     OK ") and out[2].startswith("line-2     OK ")
    assert out[-1] == "passed: line-1, line-2"
    steps = events.wait("command", count=3)
    assert [(e["action"], e.get("step"), e["result"]) for e in steps] == [
        ("test", "line-1", "ok"), ("test", "line-2", "ok"), ("test", None, "passed: line-1, line-2")]
    line1, line2 = relay_edges(node, "line-1"), relay_edges(node, "line-2")
    assert [on for _, on in line1] == [True, False] and [on for _, on in line2] == [True, False]
    assert line1[1][0] <= line2[0][0], "one line at a time"
    amp = relay_edges(node, "amplifier")
    assert [on for _, on in amp] == [True, False, True, False]
    wavs = sorted(p.name for p in node.out_dir.glob("test-*.wav"))
    assert wavs == ["test-line-1.wav", "test-line-2.wav"]


def test_test_of_one_line_and_of_an_unknown_line(
    start_node: Callable[..., ThreadNode], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    node = start_node(gpio=GpioConfig(profile="mock"))
    path = config_file(node.config, tmp_path)
    assert main(["test", "--config", path, "--line", "line-2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "passed: line-2"
    assert relay_edges(node, "line-1") == []
    assert main(["test", "--config", path, "--line", "line-9"]) == 1
    err = capsys.readouterr().err
    assert "unknown speaker line 'line-9'" in err and "known lines: line-1, line-2" in err


def test_test_waits_for_the_bulletin_playing(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode],
) -> None:
    node = start_node()
    bulletin = hub.post(SHORT)
    events.wait("started", bulletin=bulletin["id"])
    result = request(socket_paths(node.config), {"cmd": "test", "lines": None}, timeout=120)
    assert result["result"] == "passed: line-1"
    finished = events.wait("finished", bulletin=bulletin["id"])[0]
    first_step = events.wait("command")[0]
    assert first_step["seq"] > finished["seq"], "the test starts after the bulletin ended"
    amp = relay_edges(node, "amplifier")
    assert [on for _, on in amp] == [True, False, True, False], "never both at once"


def test_emergency_interrupts_the_test(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode],
) -> None:
    node = start_node()
    answer: list[Any] = []
    asker = threading.Thread(
        target=lambda: answer.append(request(socket_paths(node.config), {"cmd": "test"}, timeout=120))
    )
    asker.start()
    wait_for(lambda: node.daemon.station.relays.state()["line-1"], 20, "the test to close line 1")
    emergency = hub.post("Khẩn cấp. Bão số ba đổ bộ.", priority="emergency")
    events.wait("finished", bulletin=emergency["id"], timeout=60)
    asker.join(timeout=30)
    assert answer[0]["result"] == "interrupted: line-1"
    assert answer[0]["steps"][0]["result"] == "interrupted"


def test_mqtt_test_command_runs_the_same_test(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode],
) -> None:
    start_node()
    now = int(time.time())
    body = {"v": 1, "kind": "command", "id": "t-1", "iat": now, "exp": now + 60, "targets": ["node-n01"],
            "action": "test"}
    publish_once(hub.config().mqtt, "test", [(f"{PREFIX}/command/node-n01", sign(body, hub.key, hub.kid), False)])
    reported = events.wait("command", count=3, timeout=60)
    assert reported[0]["result"] == "test queued: line-1"
    assert (reported[1]["step"], reported[1]["result"], reported[1]["command"]) == ("line-1", "ok", "t-1")
    assert reported[2]["result"] == "passed: line-1"


# ----- radiod config --show -----


def test_config_show_masks_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = dataclasses.replace(Config(), mqtt=MqttConfig(username="n07", password="s3cret"))
    assert main(["config", "--show", "--config", config_file(config, tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    shown = yaml.safe_load(out)
    assert shown["mqtt"]["password"] == "********" and shown["mqtt"]["username"] == "n07"
    assert shown["control"] == {"socket": None, "group": "radiod"}
