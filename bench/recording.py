"""Memory and time of a long recorded programme (a bulletin's ``media``), as the node handles one. Prints; asserts
nothing.

    .venv/bin/python bench/recording.py [--minutes M] [--format mp3]

Makes an M-minute recording (default 120: pink noise under a tone, mono, with ffmpeg), then in this process:
1. ``measure``: the one streaming pass the media cache makes after a fetch (loudness, peak, length; a second pass
   through the limiter when its peaks need it);
2. ``play``: the whole programme's blocks (chimes, recording, limiter), taken as fast as they are computed;
3. ``resume``: the programme resumed 10 minutes before its end, as after an emergency (a seek, not a decode).

Figures: seconds for each, and the process's RSS high-water mark (VmHWM) above what it was after a warm-up on a
short file. Target (issue 13): a two-hour programme within +50 MB.

On the 2-core development machine (shared with other jobs), 2026-12-06, 120 minutes of mp3 at 48 kbit/s (41 MB):
measure 7.4 s, play 5.1 s, resume 0.5 s; peak +3.2 MB above the warm-up.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from radiod.audio.layout import RenderOptions
from radiod.audio.recording import measure, recording_programme

RATE = 48000
TARGET_MB = 50.0
ENCODE = {"mp3": ["-c:a", "libmp3lame", "-b:a", "48k"], "opus": ["-c:a", "libopus", "-b:a", "32k"],
          "m4a": ["-c:a", "aac", "-b:a", "64k"], "flac": ["-c:a", "flac"]}


def high_water_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make(path: Path, seconds: float, fmt: str) -> None:
    source = f"anoisesrc=d={seconds}:c=pink:a=0.2"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-filter_complex", "amix=inputs=2", "-ac", "1",
                    *ENCODE[fmt], str(path)], check=True)


def warm_up(path: Path) -> None:
    """Measure and play a short file: PyAV, libebur128 and soxr are loaded, their memory not counted."""
    level = measure(path, RATE, -16.0)
    programme = recording_programme((), lambda stop, until: (path, level), RenderOptions(rate=RATE))
    programme.ready(threading.Event(), time.time())
    for _block in programme.blocks(960):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--format", choices=sorted(ENCODE), default="mp3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        short, long = Path(tmp) / f"short.{args.format}", Path(tmp) / f"long.{args.format}"
        make(short, 5, args.format)
        warm_up(short)
        base = high_water_mb()
        started = time.perf_counter()
        make(long, args.minutes * 60, args.format)
        print(f"made {args.minutes:g} min of {args.format}: {long.stat().st_size >> 20} MB in "
              f"{time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        level = measure(long, RATE, -16.0)
        print(f"measure: {time.perf_counter() - started:.1f} s, {level.lufs:.1f} LUFS, gain {level.gain_db:+.1f} dB, "
              f"+{high_water_mb() - base:.1f} MB")
        programme = recording_programme((), lambda stop, until: (long, level), RenderOptions(rate=RATE))
        programme.ready(threading.Event(), time.time())
        started = time.perf_counter()
        samples = sum(len(block) for block in programme.blocks(960))
        print(f"play: {samples / RATE / 60:.1f} min in {time.perf_counter() - started:.1f} s, "
              f"+{high_water_mb() - base:.1f} MB")
        resumed = programme.starting_at(programme.duration_s - 600)
        started = time.perf_counter()
        samples = sum(len(block) for block in resumed.blocks(960))
        print(f"resume 10 min before the end: {samples / RATE / 60:.1f} min in {time.perf_counter() - started:.1f} s, "
              f"+{high_water_mb() - base:.1f} MB (target +{TARGET_MB:g} MB)")


if __name__ == "__main__":
    main()
