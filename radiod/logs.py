"""Logging for journald: one line per record, level first, so `journalctl -u radiod -p warning` filters."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str) -> None:
    """Plain lines on stderr: systemd adds the time and the unit; a terminal user sees the same text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # APScheduler logs every job run at INFO; our own events already say what played and when.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
