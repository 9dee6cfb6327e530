"""A look-ahead peak limiter that keeps every sample within ``CEILING_DBFS``, vectorised over whole blocks.

It only acts on the peaks a loud target pushes over the ceiling, with a gain that falls smoothly before a peak
(``ATTACK_S``, the look-ahead), holds (``HOLD_S``) and recovers, so waveforms are never squared off.

For sample i, ``needed[i] = min(1, ceiling / |x[i]|)`` is the gain it alone would need. The gain applied is
that minimum over the last ``hold`` samples, averaged over the next ``attack``: each value averaged is a
minimum over a window containing sample i, so it is at most ``needed[i]`` (the ceiling holds) and it moves in
ramps. A :class:`Limiter` computes this for each block it is given in a few numpy passes, carrying the
samples either side of the block boundary, so its output does not depend on how the audio is cut into blocks.
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


def _gain(context: np.ndarray, attack: int, hold: int) -> np.ndarray:
    """Gain for context[hold - 1 : len(context) - attack + 1] (see the module doc)."""
    magnitude = np.abs(context)
    needed = np.minimum(np.float32(1.0), np.float32(CEILING) / np.maximum(magnitude, np.float32(1e-12)))
    held = _sliding_min(needed, hold)
    csum = np.concatenate([[0.0], np.cumsum(held, dtype=np.float64)])
    return ((csum[attack:] - csum[:-attack]) / attack).astype(np.float32)


class Limiter:
    """The limiter as a stream: :meth:`process` takes blocks of any size and returns the limited samples, late
    by the look-ahead (``attack - 1`` samples); :meth:`flush` returns what is held back once the audio ends."""

    def __init__(self, rate: int) -> None:
        self.attack = max(1, round(ATTACK_S * rate))
        self.hold = max(1, round(HOLD_S * rate))
        self._before = np.zeros(self.hold - 1, dtype=np.float32)  # raw samples already given out
        self._pending = np.zeros(0, dtype=np.float32)  # raw samples whose look-ahead is not yet known

    @property
    def delay(self) -> int:
        """How many samples the output lags the input."""
        return self.attack - 1

    def process(self, block: np.ndarray) -> np.ndarray:
        """Limited samples for the input so far less the last ``delay`` (the first call gives ``delay`` fewer)."""
        ahead = self.attack - 1
        context = np.concatenate([self._before, self._pending, block.astype(np.float32, copy=False)])
        ready = len(context) - len(self._before) - ahead  # samples that now have their whole look-ahead
        if ready <= 0:
            self._pending = context[len(self._before) :]
            return np.zeros(0, dtype=np.float32)
        start = len(self._before)
        out = context[start : start + ready]
        over = np.flatnonzero(np.abs(context) > CEILING)
        if len(over):
            # Only samples within a hold before or an attack after an over-ceiling sample get a gain below 1.
            lo = max(start, int(over[0]) - ahead)
            hi = min(start + ready, int(over[-1]) + self.hold)
            if lo < hi:
                out = out.copy()
                gain = _gain(context[lo - (self.hold - 1) : hi + ahead], self.attack, self.hold)
                out[lo - start : hi - start] *= gain
                np.clip(out, -CEILING, CEILING, out=out)  # the gain keeps within the ceiling; this absorbs rounding
        # Copies, so the block's context is not kept alive by two short views into it.
        self._before = context[start + ready - len(self._before) : start + ready].copy()
        self._pending = context[start + ready :].copy()
        return out

    def flush(self) -> np.ndarray:
        """The held-back samples, limited as if silence followed them."""
        return self.process(np.zeros(self.attack - 1, dtype=np.float32))


def limit(samples: np.ndarray, rate: int) -> np.ndarray:
    """``samples`` limited in one go: for short audio and tests."""
    limiter = Limiter(rate)
    return np.concatenate([limiter.process(samples), limiter.flush()])
