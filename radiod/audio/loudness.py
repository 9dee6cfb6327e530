"""ITU-R BS.1770-4 integrated loudness (LUFS) of mono audio, measured by libebur128 (through pyebur128).

Every programme is normalized to one loudness so a listener never reaches for the volume between bulletins;
peak level says little about how loud speech sounds, the K-weighted, gated loudness of BS.1770 does.

libebur128 is the reference implementation of EBU R 128 (ffmpeg's and GStreamer's meter): it designs the
K-weighting for the clip's own rate, so espeak's 22050 Hz speech is measured without resampling, and it takes
int16 as well as float samples, so long speech is never converted whole. scipy's filters would do the same
maths, but importing ``scipy.signal`` alone costs over a second, more than ``radiod speak`` may spend on a
whole article (bench/speak.py).

Mono convention: the one channel has weight 1.0, so a 997 Hz sine with its peak at -20 dBFS reads -23.0 LUFS
(EBU Tech 3341 plays the same sine on two channels at -23 dBFS, which sums to the same -23 LUFS).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pyebur128

from radiod.audio.pcm import Pcm


class LoudnessMeter:
    """Integrated loudness of audio fed in order; consecutive samples at one rate are one stream, so clips fed
    one after another are measured as if concatenated, and a long programme can be measured from its blocks
    without holding it all."""

    def __init__(self) -> None:
        self._states: list[pyebur128.R128State] = []
        self._rate = 0

    def feed(self, samples: np.ndarray, rate: int) -> None:
        """Measure ``samples`` (float in [-1, 1], or int16); a change of rate starts a new stream, whose 400 ms
        blocks are pooled with the others' before gating."""
        if rate != self._rate:
            self._states.append(pyebur128.R128State(1, rate, pyebur128.MeasurementMode.MODE_I))
            self._rate = rate
        if len(samples):
            if samples.dtype not in (np.int16, np.float32, np.float64):
                samples = samples.astype(np.float32)
            self._states[-1].add_frames(np.ascontiguousarray(samples), len(samples))

    def lufs(self) -> float:
        """The loudness so far: -inf for silence or for less than one 400 ms block of audio."""
        if not self._states:
            return -math.inf
        value = pyebur128.get_loudness_global_multiple(self._states)
        return value if math.isfinite(value) else -math.inf


def integrated_lufs(clips: Iterable[Pcm]) -> float:
    """Integrated loudness of ``clips`` played one after another, in LUFS; -inf for silence or for less than
    one 400 ms block of audio. Any iterable will do (see :class:`LoudnessMeter`)."""
    meter = LoudnessMeter()
    for clip in clips:
        meter.feed(clip.samples, clip.rate)
    return meter.lufs()


class ShortTermMeter:
    """BS.1770 short-term loudness: the last 3 s of a live feed, for a gain that follows a live stream (a relay)
    whose integrated loudness is never known in advance."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._state = pyebur128.R128State(1, rate, pyebur128.MeasurementMode.MODE_S)

    def feed(self, samples: np.ndarray) -> None:
        """Measure ``samples`` (float32 in [-1, 1] at ``rate``), after those fed before."""
        if len(samples):
            self._state.add_frames(np.ascontiguousarray(samples, dtype=np.float32), len(samples))

    def lufs(self) -> float:
        """The loudness of the last 3 s fed; -inf for silence or before 3 s have been fed."""
        value = pyebur128.get_loudness_shortterm(self._state)
        return value if math.isfinite(value) else -math.inf
