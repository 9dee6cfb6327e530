"""A look-ahead peak limiter that keeps every sample within ``CEILING_DBFS``, vectorised over whole blocks.

It only acts on the peaks a loud target pushes over the ceiling, with a gain that falls smoothly before a peak
(``ATTACK_S``, the look-ahead), holds (``HOLD_S``) and recovers, so waveforms are never squared off.

The gain is worked out on segments of ``attack`` samples rather than per sample, which makes it a few numpy
passes per block instead of a sliding minimum over every sample: each segment's ``needed`` gain is
``min(1, ceiling / peak)`` of its loudest sample; the gain held at a segment is the minimum of ``needed`` over
the segments that cover the last ``hold`` samples (so the hold is ``HOLD_S`` to ``HOLD_S + ATTACK_S``); and
the gain at a sample is the average of the held gain over the next ``attack`` samples, a linear ramp from one
segment's held gain to the next. Every value averaged is a minimum over a window that contains the sample, so
the gain is at most what the sample needs: the ceiling holds, with no clipping.

A :class:`Limiter` carries the samples either side of a block boundary, and its segments are counted from the
start of the stream, so its output does not depend on how the audio is cut into blocks.
"""

from __future__ import annotations

import numpy as np

CEILING_DBFS = -1.0
ATTACK_S = 0.005  # the gain ramps down over this before a peak (the look-ahead)
HOLD_S = 0.05  # and stays down this long, longer than a voice's pitch period, so it does not flutter

CEILING = float(10.0 ** (CEILING_DBFS / 20.0))


def _sliding_min(values: np.ndarray, width: int) -> np.ndarray:
    """min(values[i : i + width]) for every i, in O(n) (van Herk / Gil-Werman)."""
    n = len(values)
    rows = np.concatenate([values, np.full(-n % width, np.inf, dtype=values.dtype)]).reshape(-1, width)
    prefix = np.minimum.accumulate(rows, axis=1).ravel()
    suffix = np.minimum.accumulate(rows[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.minimum(suffix[: n - width + 1], prefix[width - 1 : n])


class Limiter:
    """The limiter as a stream: :meth:`process` takes blocks of any size and returns the limited samples, late
    by one to two segments (the look-ahead); :meth:`flush` returns what is held back once the audio ends."""

    def __init__(self, rate: int) -> None:
        self.attack = max(1, round(ATTACK_S * rate))  # also the segment length
        hold = max(1, round(HOLD_S * rate))
        self._span = -(-(hold - 1) // self.attack) + 1  # segments whose minimum covers the last ``hold`` samples
        self._ramp = (np.arange(self.attack) / self.attack).astype(np.float32)
        # Raw samples from a segment boundary ``_buf_start`` (stream positions; silence before 0) to the end of
        # the input so far: the held-back ones and the history their held gain needs.
        self._buf = np.zeros((self._span - 1) * self.attack, dtype=np.float32)
        self._buf_start = -len(self._buf)
        self._out_pos = 0  # samples given out

    def process(self, block: np.ndarray) -> np.ndarray:
        """The limited samples whose look-ahead is now known (whole segments whose next segment is complete)."""
        a = self.attack
        context = np.concatenate([self._buf, block.astype(np.float32, copy=False)])
        ready_until = ((self._buf_start + len(context)) // a - 1) * a
        if ready_until <= self._out_pos:
            self._buf = context
            return np.zeros(0, dtype=np.float32)
        n_seg = (ready_until - self._buf_start) // a + 1  # the segments output, their history and the next one
        rows = context[: n_seg * a].reshape(n_seg, a)
        first = self._out_pos - self._buf_start  # where the output starts in ``context``
        out = context[first : ready_until - self._buf_start]
        peak = np.maximum(rows.max(axis=1), -rows.min(axis=1))
        if peak.max() > CEILING:
            needed = np.minimum(np.float32(1.0), np.float32(CEILING) / np.maximum(peak, np.float32(1e-12)))
            held = _sliding_min(np.concatenate([np.ones(self._span - 1, dtype=np.float32), needed]), self._span)
            s0 = first // a
            gain = held[s0:-1, None] + (held[s0 + 1 :] - held[s0:-1])[:, None] * self._ramp[None, :]
            if gain.min() < 1.0:
                out = out * gain.ravel()
                np.clip(out, -CEILING, CEILING, out=out)  # the gain keeps within the ceiling; this absorbs rounding
        keep_from = ready_until - (self._span - 1) * a  # a segment boundary: the next output's history
        self._buf = context[keep_from - self._buf_start :].copy()  # a copy: the block is not kept alive by a view
        self._buf_start, self._out_pos = keep_from, ready_until
        return out

    def flush(self) -> np.ndarray:
        """The held-back samples, limited as if silence followed them."""
        end = self._buf_start + len(self._buf)
        out = self.process(np.zeros(2 * self.attack, dtype=np.float32))
        return out[: len(out) - (self._out_pos - end)]


def limit(samples: np.ndarray, rate: int) -> np.ndarray:
    """``samples`` limited in one go: for short audio and tests."""
    limiter = Limiter(rate)
    return np.concatenate([limiter.process(samples), limiter.flush()])
