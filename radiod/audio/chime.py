"""The default opening and closing chimes, generated in code so a node needs no audio file to sound right.

Listeners in a commune know a bulletin is starting from the chime before they catch the first words, and
that it is over from the closing one. The opening chime is a rising C-major arpeggio, the closing one the
same notes falling; each note is a soft mallet-bell tone (a fundamental, a quieter octave and a faint
inharmonic bar partial for shimmer, each decaying exponentially), which carries well on horn loudspeakers
without the harshness of a square-wave beep.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from radiod.audio.pcm import Pcm

_NOTES_HZ = (523.25, 659.26, 783.99, 1046.50)  # C5 E5 G5 C6
_NOTE_STEP_S = 0.28  # from one note's onset to the next
_RING_S = 1.3  # how long the last note rings out
_ATTACK_S = 0.004  # a mallet's strike, but no click
_RELEASE_S = 0.3  # the ring-out is faded to silence rather than cut
# (frequency ratio, amplitude, decay time constant in s): the fundamental rings longest.
_PARTIALS = ((1.0, 1.0, 0.55), (2.0, 0.35, 0.25), (2.76, 0.12, 0.12))
_PEAK = 0.5  # the renderer sets the final level; this only keeps the raw chime well inside [-1, 1]


def _note(freq: float, length: int, rate: int) -> np.ndarray:
    tone = np.zeros(length)
    for ratio, amplitude, decay_s in _PARTIALS:
        if freq * ratio < rate / 2:  # a partial above Nyquist would alias at low output rates
            tone += amplitude * _damped_sine(complex(-1.0 / decay_s, 2 * np.pi * freq * ratio) / rate, length)
    attack = min(length, max(1, round(_ATTACK_S * rate)))
    tone[:attack] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    return tone


def _damped_sine(step: complex, length: int) -> np.ndarray:
    """exp(-n/decay) * sin(w n) for n in [0, length), as Im(exp(step * n)) with step = -1/decay + i w per sample.

    exp(step * (b + k)) = exp(step * b) * exp(step * k): two short tables of exponentials and one product, instead
    of an exp and a sin of every sample (four times faster, the same values to ~1e-15: radiod speak makes both
    chimes in each run)."""
    width = max(1, math.isqrt(length))
    within = np.exp(step * np.arange(width))
    starts = np.exp(step * np.arange(0, length, width))
    return (starts[:, None] * within[None, :]).imag.ravel()[:length]


def _arpeggio(notes: tuple[float, ...], rate: int) -> Pcm:
    step = round(_NOTE_STEP_S * rate)
    ring = round(_RING_S * rate)
    out = np.zeros(step * (len(notes) - 1) + ring)
    for i, freq in enumerate(notes):
        start = i * step
        out[start:] += _note(freq, len(out) - start, rate)
    release = round(_RELEASE_S * rate)
    out[-release:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(release) / release)
    samples = (out * (_PEAK / np.max(np.abs(out)))).astype(np.float32)
    samples.setflags(write=False)  # cached and shared: nobody may scale it in place
    return Pcm(samples, rate)


@lru_cache(maxsize=4)
def default_chimes(rate: int) -> tuple[Pcm, Pcm]:
    """(opening, closing) chimes at ``rate``, about 2.1 s each, peaking at -6 dBFS; generated at the output
    rate directly so they never need resampling, and cached per rate."""
    return _arpeggio(_NOTES_HZ, rate), _arpeggio(_NOTES_HZ[::-1], rate)
