"""Speed and memory of rendering a long bulletin: prints figures, asserts nothing.

Builds ~9 minutes of espeak-ng speech as int16 sentence clips (as the speech module holds them), renders the
programme at 48 kHz and pulls it through in 20 ms blocks as an output would, then prints the time each stage
took and the process's peak RSS. The budget (issue 10): 150 MB peak RSS for a 20-minute programme.

    .venv/bin/python bench/render.py [minutes]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from radiod.audio.pcm import Pcm, read_wav, to_int16
from radiod.audio.render import RenderOptions, render_programme

SENTENCES = [
    "Kính thưa bà con, ủy ban nhân dân xã xin thông báo lịch tiêm phòng cho trẻ em dưới năm tuổi.",
    "Buổi tiêm sẽ diễn ra vào sáng thứ bảy tuần này, từ bảy giờ đến mười một giờ, tại trạm y tế xã.",
    "Đề nghị các gia đình mang theo sổ tiêm chủng và đưa các cháu đến đúng giờ.",
    "Mọi thắc mắc xin liên hệ cán bộ y tế thôn hoặc gọi số điện thoại của trạm.",
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def speech_clips(minutes: float) -> list[Pcm]:
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(SENTENCES):
            path = Path(tmp) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-v", "vi", "-w", str(path), text], check=True)
            pcm = read_wav(path)
            clips.append(Pcm(to_int16(pcm.samples), pcm.rate))
    per_round = sum(c.duration_s for c in clips)
    rounds = max(1, round(minutes * 60 / per_round))
    # Each sentence its own array, as synthesized clips would be (no shared memory between repeats).
    return [Pcm(c.samples.copy(), c.rate) for _ in range(rounds) for c in clips]


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 9.0
    print(f"peak RSS after imports: {peak_rss_mb():.1f} MB")
    speech = speech_clips(minutes)
    speech_mb = sum(c.samples.nbytes for c in speech) / 2**20
    print(f"speech: {len(speech)} clips, {sum(c.duration_s for c in speech) / 60:.1f} min, {speech_mb:.1f} MB int16")
    print(f"peak RSS with the speech held: {peak_rss_mb():.1f} MB")

    t0 = time.perf_counter()
    programme = render_programme(speech, RenderOptions(rate=48000))
    t1 = time.perf_counter()
    print(f"render_programme (loudness and levelling): {t1 - t0:.2f} s, gain {programme.gain_db:+.2f} dB")

    block = programme.rate // 50
    peak = 0.0
    for samples in programme.blocks(block):
        peak = max(peak, float(np.max(np.abs(samples))))
    t2 = time.perf_counter()
    print(
        f"blocks(): {programme.duration_s / 60:.1f} min of audio computed in {t2 - t1:.2f} s "
        f"({programme.duration_s / (t2 - t1):.0f}x real time), peak sample {peak:.3f}"
    )
    print(f"peak RSS overall: {peak_rss_mb():.1f} MB")


if __name__ == "__main__":
    main()
