"""systemd's notify protocol without python-systemd: one datagram to ``$NOTIFY_SOCKET`` per state change.

Why: the unit is ``Type=notify`` with ``WatchdogSec=``. READY=1 tells systemd the daemon has opened its store,
relays (all off) and control socket, so ``systemctl start`` returns only when the node can actually play;
WATCHDOG=1, sent from the daemon's main loop, proves that loop still turns. A loop stuck on a lock or a hung
call stops the pings and systemd restarts the service, which is what a commune needs from a box on a pole.

Outside systemd (a terminal, the tests, the demo) ``$NOTIFY_SOCKET`` is unset and every call does nothing.
The protocol is documented in sd_notify(3): a datagram of newline-separated ``KEY=VALUE`` to a Unix socket
whose address starts with ``@`` for the abstract namespace.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

PINGS_PER_PERIOD = 3
"""Pings per ``WatchdogSec``: sd_notify(3) asks for at least two; three survives one late loop turn."""


class Notifier:
    """The daemon's line to systemd; built from the environment systemd gives the service.

    ``watchdog_s`` is None unless systemd asked for pings (``WATCHDOG_USEC``, for this very process when
    ``WATCHDOG_PID`` is set). Sending failures are logged once and never raised: a lost notification must not
    stop the loudspeakers; systemd will say it timed out.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = ("\0" + address[1:] if address.startswith("@") else address) or None
        self.watchdog_s: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6
        self._next_ping = time.monotonic()
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str) -> None:
        """The daemon is up: systemd may consider the start done."""
        self._send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        """One line for `systemctl status radiod`."""
        self._send(f"STATUS={status}")

    def stopping(self) -> None:
        """Shutting down: systemd then does not take the missing pings for a hang."""
        self._send("STOPPING=1\nSTATUS=stopping: relays off, announcing offline")

    def ping_due_in(self) -> float:
        """Seconds until the next watchdog ping is due (a large number when there is no watchdog)."""
        if self.watchdog_s is None or not self.enabled:
            return 3600.0
        return max(0.0, self._next_ping - time.monotonic())

    def ping(self) -> None:
        """WATCHDOG=1 if one is due; call it every turn of the main loop and nowhere else (see module doc)."""
        if self.watchdog_s is None or not self.enabled or time.monotonic() < self._next_ping:
            return
        self._next_ping = time.monotonic() + self.watchdog_s / PINGS_PER_PERIOD
        self._send("WATCHDOG=1")

    def _send(self, message: str) -> None:
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode("utf-8"), self.address)
        except OSError as exc:
            if not self._failed:
                log.error("cannot notify systemd at %s: %s", self.address.replace("\0", "@"), exc)
            self._failed = True
        else:
            self._failed = False
