"""Mono PCM audio as numpy float32 in [-1, 1], and WAV files: the one audio type every module passes along.

Everything between the voice engine and the output is a :class:`Pcm`, so rendering never has to guess a
sample rate and the output never has to guess a format.
"""

from __future__ import annotations

import wave
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Pcm:
    """Mono audio. ``samples`` is float32 in [-1, 1], or int16 for long speech held in memory (half the RAM:
    a 9-minute article must fit a Pi's budget); use :meth:`as_float` before doing maths on it."""

    samples: np.ndarray
    rate: int

    def as_float(self) -> np.ndarray:
        """The samples as float32 in [-1, 1], converting int16 if needed."""
        if self.samples.dtype == np.int16:
            return self.samples.astype(np.float32) / 32768.0
        return self.samples.astype(np.float32, copy=False)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    @classmethod
    def silence(cls, seconds: float, rate: int) -> Pcm:
        return cls(np.zeros(round(seconds * rate), dtype=np.float32), rate)


def read_wav(path: Path) -> Pcm:
    """Read a 16-bit PCM WAV (mono or stereo, mixed down to mono)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported, got {8 * w.getsampwidth()}-bit")
        frames = w.readframes(w.getnframes())
        channels, rate = w.getnchannels(), w.getframerate()
    data = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return Pcm(data.astype(np.float32), rate)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float32 [-1, 1] to int16, clamped so a rounding overshoot can never wrap around."""
    scaled = samples * np.float32(32767.0)  # a new array: the in-place steps below never touch the caller's
    np.clip(scaled, np.float32(-32767.0), np.float32(32767.0), out=scaled)  # one pass, a third of min and max's time
    return np.rint(scaled, out=scaled).astype("<i2")


def write_wav(path: Path, pcm: Pcm) -> None:
    """Write 16-bit mono PCM."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(pcm.rate)
        samples = pcm.samples if pcm.samples.dtype == np.int16 else to_int16(pcm.samples)
        w.writeframes(samples.astype("<i2", copy=False).tobytes())


_WRITE_SAMPLES = 1 << 18  # written at a time: each write also rewrites the WAV header's lengths


def write_wav_blocks(path: Path, rate: int, blocks: Iterable[np.ndarray]) -> None:
    """Write float32 (or int16) blocks as a 16-bit mono WAV as they come, so a long programme is never whole in RAM."""
    with path.open("wb") as file, wave.open(file, "wb") as w:  # opened here: a failure is only an OSError
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        pending: list[np.ndarray] = []
        held = 0
        for block in blocks:
            pending.append(block)
            held += len(block)
            if held >= _WRITE_SAMPLES:
                w.writeframes(_int16(np.concatenate(pending)).tobytes())
                pending, held = [], 0
        if pending:
            w.writeframes(_int16(np.concatenate(pending)).tobytes())


def _int16(samples: np.ndarray) -> np.ndarray:
    """int16 blocks as they are (a programme replayed from its cache), float blocks through :func:`to_int16`."""
    return samples.astype("<i2", copy=False) if samples.dtype == np.int16 else to_int16(samples)
