"""One rule for the config file of every command (--config F, else $RADIOD_CONFIG, else /etc/radiod/config.yaml),
`radiod` on PATH after `make install`, and the README's `pidof` line finding the daemon, as a technician on a Pi
would use them."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from harness import Hub, node_config

from radiod.cli import build_parser
from radiod.config import REPO_ROOT, find_config
from radiod.hub.localbroker import Broker
from radiod.schema import to_plain

RADIOD = Path(sys.executable).with_name("radiod")
"""The console script, as pip installs it in /opt/radiod/bin on a Pi."""


def radiod(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RADIOD), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_every_command_takes_config_by_the_same_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        if name in ("keygen", "hub-setup", "demo"):
            continue  # these read no node or operator config
        option = next((a for a in sub._actions if "--config" in a.option_strings), None)
        assert option is not None and not option.required, f"radiod {name}: --config must be optional"
        rule = "$RADIOD_HUB_CONFIG" if name in ("hub", "media") else "$RADIOD_CONFIG"  # the hub service's own file
        assert rule in (option.help or ""), f"radiod {name} --help must state the rule"
    mine = tmp_path / "mine.yaml"
    monkeypatch.setenv("RADIOD_CONFIG", str(mine))
    assert find_config(None) == mine
    assert find_config("other.yaml") == Path("other.yaml")


def test_a_command_parsed_alone_reads_its_arguments_as_among_all() -> None:
    """main() sets up only the parser of the command asked for (``build_parser(name)``): its help and its
    reading of arguments are those of the whole parser's; a name that is no command gets them all."""
    whole = build_parser()
    commands = whole._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        alone = build_parser(name)
        (only,) = alone._subparsers._group_actions[0].choices.values()  # type: ignore[union-attr]
        assert only.format_help() == sub.format_help(), f"radiod {name} --help"
    args = ["speak", "--config", "c.yaml", "-o", "out.wav", "--no-chime", "--repeat", "2", "Xin chào"]
    assert build_parser("speak").parse_args(args) == whole.parse_args(args)
    assert build_parser("spaek").format_help() == whole.format_help()


def test_run_validate_and_config_need_no_flag_and_pidof_finds_the_daemon(broker: Broker, tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    config = node_config(Hub(broker, tmp_path / "hub"), tmp_path)
    path.write_text(yaml.safe_dump(to_plain(config, mask_secrets=False)), encoding="utf-8")
    env = {**os.environ, "RADIOD_CONFIG": str(path)}

    validated = radiod("validate", env=env)
    assert validated.returncode == 0 and f"{path}: ok" in validated.stdout, validated.stderr
    shown = radiod("config", env=env)  # printing it is what `config` does; --show may be said
    assert shown.returncode == 0 and f"# {path} merged" in shown.stdout, shown.stderr
    assert radiod("config", "--show", env=env).stdout == shown.stdout

    log = tmp_path / "radiod.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(RADIOD), "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while "running" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, log.read_text()
        if shutil.which("pidof"):
            line = next(x for x in (REPO_ROOT / "README.md").read_text().splitlines() if "pidof" in x)
            found = re.search(r"\$\((pidof[^)]*)\)", line)
            assert found, line
            # -s gives one pid, maybe another radiod's on this machine (a technician's `radiod health`): drop it
            argv = [a for a in found[1].split() if a != "-s"]
            pids = subprocess.run(argv, capture_output=True, text=True, check=False).stdout.split()
            assert str(proc.pid) in pids, f"the README's {found[1]!r} does not see the daemon (pid {proc.pid})"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_without_any_config_says_how_to_give_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RADIOD_CONFIG"}
    if Path("/etc/radiod/config.yaml").exists():
        pytest.skip("this machine has an installed node config")
    result = radiod("run", env=env)
    assert result.returncode == 1 and "RADIOD_CONFIG" in result.stderr and "--config" in result.stderr


def test_make_install_puts_radiod_on_path(tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run(["bash", str(REPO_ROOT / "systemd/install.sh")], env={**os.environ, "DESTDIR": str(root)},
                   check=True, capture_output=True, timeout=60)
    link = root / "usr/local/bin/radiod"
    assert link.is_symlink() and os.readlink(link) == "/opt/radiod/bin/radiod"
