"""Old WAVs of a ``file:`` audio output go: one WAV is written per play, and a node left on a file sink (a bench,
a demo that runs for weeks) must not fill its SD card with them."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def prune_wavs(directory: Path, keep: int) -> int:
    """Delete all but the ``keep`` newest WAVs (by modification time) in ``directory``; 0 keeps every one.

    Returns how many were deleted. Called after a play ended, when no WAV is being written (the player writes
    one at a time). A file that cannot be listed or deleted is logged and left: pruning never stops a play.
    """
    if keep <= 0:
        return 0
    try:
        wavs = sorted(((p.stat().st_mtime, p) for p in directory.glob("*.wav") if p.is_file()), reverse=True)
    except OSError as exc:  # the directory vanished, or a file went between glob and stat
        log.warning("cannot list the WAVs in %s: %s", directory, exc)
        return 0
    removed = 0
    for _mtime, path in wavs[keep:]:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot delete the old WAV %s: %s", path, exc)
    if removed:
        log.info("deleted %d old WAV(s) in %s (audio.file_keep %d)", removed, directory, keep)
    return removed
