"""The control socket's client: one request, its progress lines, its answer (see :mod:`radiod.node.control`)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from radiod.errors import RadiodError
from radiod.node.control import MAIN_LOOP_TIMEOUT_S, Progress, reachable


class NotRunning(RadiodError):
    """No daemon answers on the control socket: it is not running (or runs with another config)."""


def request(
    paths: Sequence[Path],
    message: dict[str, Any],
    *,
    timeout: float = MAIN_LOOP_TIMEOUT_S + 5,
    on_progress: Progress | None = None,
) -> Any:
    """Send ``message`` to the daemon on the first of ``paths`` that exists; return its result.

    Raises :class:`NotRunning` when no socket answers, RadiodError for a refused permission, a timeout or the
    daemon's own error message.
    """
    existing = [p for p in paths if p.exists()]
    if not existing:
        raise NotRunning(f"radiod is not running: no control socket at {' or '.join(map(str, paths))} "
                         "(systemctl status radiod)")
    path = existing[0]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    with sock:
        try:
            with reachable(path) as address:
                sock.connect(address)
        except PermissionError:
            raise RadiodError(f"no permission to use {path}: run as root, or join its group (sudo usermod -aG "
                              "radiod $USER, then log in again)") from None
        except (ConnectionRefusedError, FileNotFoundError):
            raise NotRunning(f"radiod is not running: nothing listens on {path} (systemctl status radiod)") from None
        sock.sendall(json.dumps(message).encode("utf-8") + b"\n")
        for line in _lines(sock, path, timeout):
            if "progress" in line:
                if on_progress is not None:
                    on_progress(line["progress"])
                continue
            if line.get("ok"):
                return line.get("result")
            raise RadiodError(str(line.get("error", "the daemon refused the request")))
    raise RadiodError(f"the daemon closed {path} without answering (journalctl -u radiod)")


def _lines(sock: socket.socket, path: Path, timeout: float) -> Iterator[dict[str, Any]]:
    buffer = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise RadiodError(f"no answer on {path} within {timeout:.0f} s: the daemon is stalled") from None
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            raw, buffer = buffer.split(b"\n", 1)
            try:
                yield json.loads(raw)
            except ValueError:
                raise RadiodError(f"{path}: the daemon sent something that is not JSON: {raw[:80]!r}") from None
