"""ITU-R BS.1770-4 integrated loudness (LUFS) of mono audio, in numpy alone.

Every programme is normalized to one loudness so a listener never reaches for the volume between bulletins;
peak level says little about how loud speech sounds, the K-weighted, gated loudness of BS.1770 does.

The K-weighting filters are designed for the clip's own rate (the standard's analog prototype through the
bilinear transform, as libebur128 does), so espeak's 22050 Hz speech is measured without resampling. numpy
has no IIR filter and a Python loop over millions of samples is too slow on a Pi, so the two biquads are
applied as their impulse response, truncated once it has decayed below float precision, by FFT overlap-add.
Audio is filtered in fixed steps so a long clip never needs more than one step's worth of FFT memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from radiod.audio.pcm import Pcm

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
BLOCK_S = 0.4
HOP_S = 0.1  # 75 % overlap: a 400 ms block every 100 ms
_OFFSET_DB = -0.691  # the standard's constant: a 0 dBFS 997 Hz sine reads -3.01 LUFS
_IR_S = 0.1  # the K-weighting response's energy after this is > 200 dB down (its slowest pole: 38 Hz)
_MIN_FFT = 1 << 16  # overlap-add FFT size: ~1 MB of float64 at a time however long the clip


def _k_weighting_biquads(rate: int) -> list[tuple[tuple[float, float, float], tuple[float, float]]]:
    """The shelf and high-pass stages as ((b0, b1, b2), (a1, a2)) for ``rate``; at 48 kHz these are the
    coefficients printed in BS.1770-4."""
    # Stage 1: high shelf, +4 dB above ~1.7 kHz (the head's acoustic effect).
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = (
        ((vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0),
        (2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0),
    )
    # Stage 2: RLB high-pass at ~38 Hz.
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1.0 + k / q + k * k
    highpass = ((1.0, -2.0, 1.0), (2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0))
    return [shelf, highpass]


@lru_cache(maxsize=8)
def _k_weighting_ir(rate: int) -> np.ndarray:
    """The cascade's impulse response, _IR_S long; computed once per rate (a short Python loop)."""
    n = max(1, round(_IR_S * rate))
    signal = [0.0] * n
    signal[0] = 1.0
    for (b0, b1, b2), (a1, a2) in _k_weighting_biquads(rate):
        x1 = x2 = y1 = y2 = 0.0
        out = []
        for x in signal:
            y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
            x2, x1, y2, y1 = x1, x, y1, y
            out.append(y)
        signal = out
    return np.asarray(signal, dtype=np.float64)


@lru_cache(maxsize=8)
def _k_weighting_spectrum(rate: int) -> tuple[int, np.ndarray]:
    """(FFT size, the impulse response's spectrum at that size): the size is at least 4x the response, so
    most of each FFT is new signal rather than overlap."""
    n_ir = len(_k_weighting_ir(rate))
    n_fft = max(_MIN_FFT, 1 << (4 * n_ir - 1).bit_length())
    spectrum = np.fft.rfft(_k_weighting_ir(rate), n_fft)
    spectrum.setflags(write=False)
    return n_fft, spectrum


class _Meter:
    """K-weighted mean square of every 400 ms block of one continuous stream at one rate.

    Samples fed in order are one signal: they are filtered in fixed FFT-sized steps whatever the sizes fed,
    the filter's ring-out carries into the next step and a 100 ms hop may straddle two steps, so clips fed
    one after another are measured as if concatenated.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        n_ir = len(_k_weighting_ir(rate))
        self._n_fft, self._spectrum = _k_weighting_spectrum(rate)
        self._step = self._n_fft - n_ir + 1  # new samples per FFT
        self._tail = np.zeros(n_ir - 1)  # filter output owed to the next step
        self._pending: list[np.ndarray] = []  # fed samples not yet filtered
        self._n_pending = 0
        self._hop = max(1, round(HOP_S * rate))
        self._partial = np.zeros(0)  # filtered samples not yet a whole hop
        self._hop_energy: list[float] = []  # sum of squares per 100 ms hop

    def feed(self, samples: np.ndarray) -> None:
        """Measure ``samples`` (float in [-1, 1], or int16 converted a step at a time to save memory)."""
        scale = 1.0 / 32768.0 if samples.dtype == np.int16 else 1.0
        for start in range(0, len(samples), self._step):
            piece = samples[start : start + self._step].astype(np.float64) * scale
            self._pending.append(piece)
            self._n_pending += len(piece)
            if self._n_pending >= self._step:
                joined = np.concatenate(self._pending)
                self._filter(joined[: self._step])
                self._pending = [joined[self._step :]]
                self._n_pending = len(joined) - self._step

    def _filter(self, x: np.ndarray) -> None:
        n_tail = len(self._tail)
        full = np.fft.irfft(np.fft.rfft(x, self._n_fft) * self._spectrum, self._n_fft)[: len(x) + n_tail]
        full[:n_tail] += self._tail
        self._tail = full[len(x) :]
        pending = np.concatenate([self._partial, full[: len(x)]])
        whole = len(pending) // self._hop * self._hop
        self._hop_energy.extend(np.square(pending[:whole]).reshape(-1, self._hop).sum(axis=1).tolist())
        self._partial = pending[whole:]

    def block_powers(self) -> np.ndarray:
        """Mean square of each complete 400 ms block (four hops), in order; call once, after the last feed."""
        if self._n_pending:
            self._filter(np.concatenate(self._pending))
            self._pending, self._n_pending = [], 0
        per_block = round(BLOCK_S / HOP_S)
        energy = np.asarray(self._hop_energy)
        if len(energy) < per_block:
            return np.zeros(0)
        sums = np.lib.stride_tricks.sliding_window_view(energy, per_block).sum(axis=1)
        return sums / (per_block * self._hop)


def _lufs(power: float) -> float:
    return _OFFSET_DB + 10.0 * math.log10(power) if power > 0 else -math.inf


def _gated_loudness(block_powers: np.ndarray) -> float:
    """Integrated loudness of a pool of block mean squares: absolute gate, then the relative gate."""
    with np.errstate(divide="ignore"):
        levels = _OFFSET_DB + 10.0 * np.log10(block_powers)
    above_absolute = block_powers[levels > ABSOLUTE_GATE_LUFS]
    if len(above_absolute) == 0:
        return -math.inf
    relative_gate = _lufs(float(above_absolute.mean())) + RELATIVE_GATE_LU
    gated = block_powers[(levels > ABSOLUTE_GATE_LUFS) & (levels > relative_gate)]
    return _lufs(float(gated.mean()))


def integrated_lufs(clips: Iterable[Pcm]) -> float:
    """Integrated loudness of ``clips`` played one after another, in LUFS; -inf for silence or for less
    than one 400 ms block of audio.

    Consecutive clips at the same rate are measured as one stream; a change of rate starts a new stream and
    the blocks of all streams are pooled before gating. Any iterable will do, so a long programme can be
    measured from its blocks without holding it all.
    """
    powers: list[np.ndarray] = []
    meter: _Meter | None = None
    for clip in clips:
        if meter is None or meter.rate != clip.rate:
            if meter is not None:
                powers.append(meter.block_powers())
            meter = _Meter(clip.rate)
        meter.feed(clip.samples)
    if meter is not None:
        powers.append(meter.block_powers())
    return _gated_loudness(np.concatenate(powers)) if powers else -math.inf
