"""Logging for journald: one line per record, so `journalctl -u radiod` reads like a log book.

Under systemd (``JOURNAL_STREAM`` is set) each line starts with its syslog priority (``<3>`` for errors, as
sd-daemon(3) describes), so ``journalctl -u radiod -p warning`` shows only what needs a technician.
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(level: str) -> None:
    """Plain lines on stderr: systemd adds the time and the unit; a terminal user sees the same text."""
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(levelname)s %(name)s: %(message)s"
    handler.setFormatter(_JournalFormatter(fmt) if os.environ.get("JOURNAL_STREAM") else logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # APScheduler logs every job run at INFO; our own events already say what played and when.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
