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

Segments are counted from the start of the block, so the same block is limited the same way wherever it lies.
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


def limit(samples: np.ndarray, rate: int, *, in_place: bool = False) -> np.ndarray:
    """``samples`` (float32) limited to the ceiling as one block, as if silence came before and after them.

    A programme limits each clip (a sentence, a chime) on its own: clips meet at faded edges, so a clip's peaks
    never need the gain to start falling in the clip before it, and the same clip comes out the same wherever
    it lies (a repeat replays exactly what was played). Returns ``samples`` itself when no sample is over.
    ``in_place``: the caller owns ``samples`` (float32) and lets them be limited where they are, saving a copy of
    the clip (a renderer limits every sentence of every play).
    """
    x = samples.astype(np.float32, copy=False)
    n = len(x)
    a = max(1, round(ATTACK_S * rate))  # the segment length, and the look-ahead
    hold = max(1, round(HOLD_S * rate))
    span = -(-(hold - 1) // a) + 1  # segments whose minimum covers the last ``hold`` samples
    if n == 0:
        return x
    whole = n // a * a  # the segments of the block but a shorter last one, peaked without copying the block
    rows = x[:whole].reshape(-1, a)
    peak = np.maximum(rows.max(axis=1), -rows.min(axis=1))
    if whole < n:
        peak = np.append(peak, np.float32(np.abs(x[whole:]).max()))
    if peak.max() <= CEILING:
        return x
    needed = np.minimum(np.float32(1.0), np.float32(CEILING) / np.maximum(peak, np.float32(1e-12)))
    ones = np.ones(span - 1, dtype=np.float32)
    held = _sliding_min(np.concatenate([ones, needed, np.ones(1, dtype=np.float32)]), span)  # one past the end
    following = held[1:]
    held = held[:-1]
    low = np.flatnonzero(np.minimum(held, following) < 1.0)  # segments whose gain is not 1 throughout
    s0, s1 = int(low[0]), int(low[-1]) + 1
    ramp = (np.arange(a) / a).astype(np.float32)
    gain = held[s0:s1, None] + (following[s0:s1] - held[s0:s1])[:, None] * ramp[None, :]
    out = x if in_place and x is samples else x.copy()
    lo, hi = s0 * a, min(n, s1 * a)
    out[lo:hi] *= gain.ravel()[: hi - lo]
    np.clip(out[lo:hi], -CEILING, CEILING, out=out[lo:hi])  # the gain keeps within the ceiling; this absorbs rounding
    return out
