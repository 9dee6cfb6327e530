"""What the benches measure with, beside the shared harness (``tests/harness.py``: hub, nodes, events, texts):
the machine's load, percentiles, the figures' format, a process's CPU and memory from /proc, and when a WAV
first holds audio."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests"  # put on sys.path by the benches that stand up hubs and nodes


def machine() -> str:
    """The machine's state, printed first by every bench: its figures depend on what else runs."""
    one, five, fifteen = os.getloadavg()
    return f"machine: {os.cpu_count()} cores, load average {one:.2f} {five:.2f} {fifteen:.2f} before the bench"


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear between the closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values: Sequence[float]) -> str:
    """'median / p95 / max' of seconds, in milliseconds."""
    ms = [v * 1000 for v in values]
    return f"median {statistics.median(ms):7.1f}  p95 {percentile(ms, 95):7.1f}  max {max(ms):7.1f} ms"


def ratio(value: float, target: float, unit: str) -> str:
    verdict = "met" if value <= target else "MISSED"
    return f"{value:.1f} {unit} / target {target:g} {unit} = {value / target:.2f}x  ({verdict})"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/<pid>/stat, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict (VmRSS, VmHWM, RssAnon, RssFile, Threads, ...)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def kb_to_mb(value: str) -> float:
    return int(value.split(maxsplit=1)[0]) / 1024


class FileWatch:
    """Polls WAV paths every ``period_s`` on its own thread; notes when each appears and when it first holds audio.

    The file output creates the WAV just before it computes the first block, so ``created`` is a lower bound
    of the first sample. ``wave`` keeps the header and the first block in the file's buffer until it seeks to
    patch the header, after the second block (or until the play ends), so ``data`` is an upper bound: about
    one block (20 ms) late.
    """

    def __init__(self, period_s: float = 0.001) -> None:
        self.period = period_s
        self.created: dict[Path, float] = {}
        self.data: dict[Path, float] = {}
        self._paths: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="file-watch", daemon=True)
        self._thread.start()

    def add(self, path: Path) -> None:
        with self._lock:
            self._paths.add(path)

    def get(self, path: Path, timeout: float) -> tuple[float | None, float | None]:
        """(created, first data) for ``path``, waiting up to ``timeout`` s for the data."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if path in self.data:
                    break
            time.sleep(0.01)
        with self._lock:
            return self.created.get(path), self.data.get(path)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            with self._lock:
                waiting = list(self._paths)
            for path in waiting:
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                now = time.time()
                with self._lock:
                    self.created.setdefault(path, now)
                    if size > 44:
                        self.data[path] = now
                        self._paths.discard(path)
