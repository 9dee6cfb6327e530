"""Sample-rate conversion with libsoxr (python-soxr): speech comes at the engine's rate (22050 Hz for
espeak-ng), the sound card runs at the board's (usually 48 kHz).

A programme resamples one clip (a sentence, a chime) at a time as its blocks reach it, so no more than a
sentence is ever held at the output rate. soxr's "HQ" quality (20-bit, -120 dB aliasing) is transparent for
speech on a horn loudspeaker and costs a few ns per output sample.
"""

from __future__ import annotations

import numpy as np
import soxr


def n_out(n_in: int, rate_in: int, rate_out: int) -> int:
    """Output samples for ``n_in`` input samples: every output instant before the input's end. The layout is
    planned with this before anything is resampled, so :func:`resample` returns exactly this many."""
    return -(-n_in * rate_out // rate_in)


def as_float(samples: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1]; int16 is scaled, float32 passed through without a copy."""
    if samples.dtype == np.int16:
        return samples.astype(np.float32) * np.float32(1.0 / 32768.0)
    return samples.astype(np.float32, copy=False)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``samples`` (float32, or int16) at ``rate_out`` as float32, :func:`n_out` samples long."""
    x = as_float(samples)
    if rate_in == rate_out:
        return x
    n = n_out(len(x), rate_in, rate_out)
    if len(x) == 0:
        return np.zeros(0, dtype=np.float32)
    y = soxr.resample(x, rate_in, rate_out, quality="HQ")
    if len(y) >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - len(y), dtype=np.float32)])
