"""`radiod hub` as systemd runs it: the unit verified by systemd itself, and the real process creating its first
admin, speaking sd_notify (READY once the console answers, WATCHDOG, STOPPING) and stopping cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from harness import PREFIX, systemd_analyze, wait_for

from radiod.config import REPO_ROOT
from radiod.hub import accounts, recorder
from radiod.hub.config import HubServiceConfig, WebConfig
from radiod.hub.hubsetup import HubSetup, setup_hub
from radiod.hub.localbroker import Broker
from radiod.hub.service import HubService

UNIT = REPO_ROOT / "systemd" / "radiod-hub.service"
needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="not a systemd machine")


@needs_systemd_analyze
def test_systemd_accepts_the_hub_unit_and_rates_its_hardening_ok(tmp_path: Path) -> None:
    rated, level = systemd_analyze(UNIT, tmp_path)
    if level is None:
        pytest.skip("this systemd-analyze cannot rate a unit file offline (systemd < 250)")
    assert level <= 2.5, rated


def test_hub_unit_is_notify_with_a_watchdog_and_its_own_user() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=60", "Restart=always", "User=radiod-hub", "StateDirectory=radiod-hub",
                 "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "ExecStart=/opt/radiod/bin/radiod hub --config /etc/radiod/hub.yaml"):
        assert re.search(rf"^{re.escape(line)}$", text, re.MULTILINE), line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_hub_process_creates_an_admin_notifies_systemd_serves_and_stops_on_sigterm(
    broker: Broker, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "hub.yaml"
    database = tmp_path / "state" / "hub.db"
    config.write_text(yaml.safe_dump({
        "mqtt": {"host": broker.host, "port": broker.port, "prefix": PREFIX},
        "database": str(database), "cache_dir": str(tmp_path / "cache"),
        "web": {"port": port}, "nodes": {"expected": ["n01"]},
    }), encoding="utf-8")
    radiod = [sys.executable, "-m", "radiod.cli", "hub"]
    # --config before "user add", as `radiod hub --config F` is written to start the service
    added = subprocess.run([*radiod, "--config", str(config), "user", "add", "chu-tich", "--role", "admin",
                            "--password-stdin"], input="mat-khau-dai\n", capture_output=True, text=True,
                           timeout=60, check=False)
    assert added.returncode == 0, added.stderr
    assert accounts.users(recorder.connect(database)) == [accounts.User("chu-tich", accounts.Role.ADMIN)]

    notify = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(20)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "3000000"}
    proc = subprocess.Popen([*radiod, "--config", str(config)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        ready = sock.recv(4096).decode()
        assert "READY=1" in ready and f":{port}/" in ready
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as page:
            assert "Đăng nhập" in page.read().decode()
        assert sock.recv(4096).decode() == "WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while "STOPPING=1" not in sock.recv(4096).decode():
            assert time.monotonic() < deadline
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        output = proc.communicate(timeout=10)[0].decode()
    assert "Traceback" not in output, output


def test_the_console_speaks_https_with_a_certificate_from_the_hubs_ca_and_secure_cookies(
    broker: Broker, tmp_path: Path
) -> None:
    setup_hub(HubSetup(prefix=PREFIX, hosts=("hub.local",), nodes=("n01",), out=tmp_path / "setup"),
              mosquitto_passwd=None)
    pki = tmp_path / "setup" / "web"  # hub-setup's folder for the console
    assert stat.S_IMODE((pki / "server.key").stat().st_mode) == 0o600
    port = free_port()
    config = HubServiceConfig(mqtt=broker.mqtt_config(prefix=PREFIX), database=str(tmp_path / "hub.db"),
                              cache_dir=str(tmp_path / "cache"),
                              web=WebConfig(port=port, tls_cert=str(pki / "server.crt"),
                                            tls_key=str(pki / "server.key")))
    service = HubService(config)
    thread = threading.Thread(target=asyncio.run, args=(service.serve(),), daemon=True)
    thread.start()
    try:
        wait_for(lambda: service.server.started, 20, "the console to listen")
        assert service.url == f"https://127.0.0.1:{port}/"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        with urllib.request.urlopen(f"https://localhost:{port}/login", context=context, timeout=10) as page:
            assert page.status == 200
            assert "Secure" in page.headers["set-cookie"]
    finally:
        service.stop()
        thread.join(timeout=30)
