"""A private Mosquitto: its own config in a temp dir, a free loopback port, start/stop/restart/kill.

It is the hub's broker in ``make demo`` and in the tests. Tests talk to a real broker because the behaviour
that matters (retained messages, the Last Will, session take-over, PUBACK) is the broker's, and a mock would
only repeat our own assumptions about it.

Persistence is on, so retained messages (the commune's schedule) survive ``restart()`` exactly as they survive a
reboot of the hub; ``stop()`` ends the broker with SIGTERM, which is what makes Mosquitto write its database.
``kill()`` is a crash: no database written, retained messages since the last save are lost.

The broker is started under ``setpriv --pdeathsig TERM`` when available, so even a pytest run that is itself
killed leaves no Mosquitto behind.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from radiod.config import MqttConfig, TlsConfig

MOSQUITTO = "/usr/sbin/mosquitto"
HOST = "127.0.0.1"


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (a clean exit: Mosquitto saves its database, radiod switches its relays off), SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    """A TCP port nobody listens on right now (another process may still take it; ``start`` retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Broker:
    """One Mosquitto process on ``127.0.0.1:<port>``; the port stays the same across restarts.

    ``users`` turns on password authentication (anonymous clients refused); ``tls`` generates a CA, a server
    certificate for 127.0.0.1 and a client certificate, and makes the listener TLS only; ``client_certs``
    additionally makes the broker require a client certificate; ``acl`` is the text of a Mosquitto ACL file.
    ``include_dir`` instead takes the listener, logins and ACL from the ``*.conf`` files there (as the hub's
    /etc/mosquitto/conf.d, e.g. the ``radiod.conf`` of ``radiod hub-setup``); their listener must use ``port``,
    which then stays fixed: a port conflict is an error rather than a silent move to another port.
    """

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        tls: bool = False,
        client_certs: bool = False,
        acl: str | None = None,
        include_dir: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = port or free_port()
        self.fixed_port = port is not None
        self.include_dir = include_dir
        self.users = users or {}
        self.tls = tls or client_certs
        self.client_certs = client_certs
        self.acl = acl
        self.log_path = self.dir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        if self.users:
            self._write_password_file()
        if self.tls:
            from radiod.hub.hubsetup import write_test_pki  # cryptography only when TLS is asked for

            write_test_pki(self.dir, self.host)

    # -- what clients need ---------------------------------------------------------------------------------------

    @property
    def ca_file(self) -> str:
        return str(self.dir / "ca.crt")

    @property
    def client_cert_file(self) -> str:
        return str(self.dir / "client.crt")

    @property
    def client_key_file(self) -> str:
        return str(self.dir / "client.key")

    def mqtt_config(self, **overrides: Any) -> MqttConfig:
        """An ``MqttConfig`` pointing at this broker (with TLS files when the broker uses TLS)."""
        tls = None
        if self.tls:
            tls = TlsConfig(
                ca_file=self.ca_file,
                cert_file=self.client_cert_file if self.client_certs else None,
                key_file=self.client_key_file if self.client_certs else None,
            )
        return replace(MqttConfig(host=self.host, port=self.port, tls=tls), **overrides)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start Mosquitto and return once it accepts TCP connections.

        Before the first successful start the port may be taken by someone else between ``free_port`` and the
        bind (other test runs share this machine), so a bind failure picks a new port and tries again.
        """
        if self.running:
            raise RuntimeError(f"broker on port {self.port} is already running")
        for _attempt in range(3):
            self._write_config()
            self._spawn()
            if self._wait_ready(timeout):
                return
            log = self.log_text()
            if "Address already in use" not in log or self.fixed_port:
                raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{log}")
            self.port = free_port()
        raise RuntimeError(f"mosquitto found no free port:\n{self.log_text()}")

    def stop(self, timeout: float = 5.0) -> None:
        """End Mosquitto cleanly (SIGTERM: it saves retained messages to its database); SIGKILL if it hangs."""
        if self._proc is None:
            return
        terminate(self._proc, timeout)
        self._proc = None

    def kill(self) -> None:
        """Crash Mosquitto (SIGKILL): clients see their connection drop, nothing is saved."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same port, as when the hub reboots."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------------------------------

    def _spawn(self) -> None:
        command = [MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")]
        setpriv = shutil.which("setpriv")
        if setpriv:
            command = [setpriv, "--pdeathsig", "TERM", *command]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def _wait_ready(self, timeout: float) -> bool:
        """True once the port accepts a TCP connection; False if Mosquitto exited (e.g. port in use)."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto on port {self.port} did not accept connections within {timeout} s")

    def _write_config(self) -> None:
        if self.include_dir is None:
            lines = [f"listener {self.port} {self.host}", f"allow_anonymous {'false' if self.users else 'true'}"]
        else:
            lines = [f"include_dir {self.include_dir}"]
        lines += [
            "persistence true",
            f"persistence_location {self.dir}/",
        ]
        if self.include_dir is None:  # an included radiod.conf brings the hub's own save policy
            # Save after every change, not every 30 minutes, so even a crash (kill) keeps retained messages and
            # sessions: tests and the demo kill a broker with a handful of small messages.
            lines += ["autosave_on_changes true", "autosave_interval 1"]
        lines += [
            "set_tcp_nodelay true",
            f"log_dest file {self.log_path}",
            "log_type all",
            # Mosquitto started as root drops to the "mosquitto" user, which cannot write our temp dir.
            f"user {getpass.getuser()}",
        ]
        if self.users:
            lines.append(f"password_file {self.dir / 'passwd'}")
        if self.acl is not None:
            acl_path = self.dir / "acl"
            acl_path.write_text(self.acl, encoding="utf-8")
            lines.append(f"acl_file {acl_path}")
        if self.tls:
            lines += [
                f"cafile {self.ca_file}",
                f"certfile {self.dir / 'server.crt'}",
                f"keyfile {self.dir / 'server.key'}",
                f"require_certificate {'true' if self.client_certs else 'false'}",
            ]
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _write_password_file(self) -> None:
        path = self.dir / "passwd"
        path.write_text("", encoding="utf-8")
        for user, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True, capture_output=True)
        os.chmod(path, 0o600)
