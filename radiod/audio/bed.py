"""A music bed under speech (a bulletin's ``bed``): the music plays under the whole spoken programme, quieter than
the speech, and dips under each sentence.

The speech programme is rendered as it always is (levelled to the target, limited); the bed is decoded as it
plays (:func:`radiod.audio.decode.decode`, looped when shorter than the speech), brought from its measured
loudness (:class:`~radiod.audio.recording.MediaLevel`) to ``BED_LU`` below the speech target, and ducked a
further ``DUCK_DB`` while speech sounds. The sidechain is the speech programme's own blocks inside its speech
spans (a chime does not duck the music): an envelope with a fast attack and a slow release, so the music dips as a
sentence starts and swells back in the pauses, rather than pumping between words. The mix goes through the
streaming limiter, so nothing clips; the bed is far below the speech, so the speech keeps its loudness.

Memory: the last ``BED_FADE_S`` of the mix is held back, so the bed can be faded out over the programme's end
whether or not its length is known in advance (a streamed programme's is known only when its speech has ended).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from radiod.audio.decode import decode
from radiod.audio.layout import Span, fade_curve
from radiod.audio.recording import MediaLevel, Resolve, StreamLimiter
from radiod.audio.render import CHUNK, Programme
from radiod.errors import MediaError

__all__ = ["BED_FADE_S", "BED_LU", "DUCK_DB", "BedProgramme", "OnMissing"]

BED_LU = 10.0
"""The bed's loudness below the speech target where no speech sounds (chimes, pauses)."""
DUCK_DB = 12.0
"""How much further the bed goes down while speech sounds."""
ATTACK_S = 0.05
RELEASE_S = 0.5
"""The ducking envelope's time constants: down fast as a sentence starts, back up slowly after it."""
HOLD_S = 0.3
"""The envelope stays down this long after speech stops: the short silences between words do not let the
music swell."""
BED_FADE_S = 2.0
"""The bed fades out over the programme's last seconds."""
BED_FADE_IN_S = 0.5
"""And fades in over its first: the music does not start with a click."""
_FRAME_S = 0.01  # the sidechain's frame
_SOUNDING = 10.0 ** (-45.0 / 20.0)  # a frame of speech whose RMS is over this (dBFS) is speech sounding
_SPOKEN = frozenset({"speech", "preamble"})

OnMissing = Callable[[str], None]
"""``on_missing(warning)``: the bed was not there at play time; the programme plays without it."""


class _Looped:
    """The bed's samples at ``rate``, decoded as they are taken, from the start again when the file ends."""

    def __init__(self, path: Path, rate: int) -> None:
        self._path, self._rate = path, rate
        self._source = decode(path, rate)
        self._heard = False  # audio came since the file was last opened
        self._rest = np.zeros(0, dtype=np.float32)

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` samples."""
        got, held = [self._rest], len(self._rest)
        while held < n:
            block = next(self._source, None)
            if block is None:  # the file ended: again from its start
                if not self._heard:  # it would loop for ever
                    raise MediaError(f"{self._path.name}: the music bed holds no audio")
                self._source.close()
                self._source, self._heard = decode(self._path, self._rate), False
                continue
            got.append(block)
            held += len(block)
            self._heard = self._heard or bool(len(block))
        joined = np.concatenate(got)
        self._rest = joined[n:]
        return joined[:n]

    def close(self) -> None:
        self._source.close()


class _Ducker:
    """The bed's gain (linear, per sample) from the speech: see the module doc."""

    def __init__(self, rate: int) -> None:
        self._frame = max(1, round(_FRAME_S * rate))
        self._attack = 1.0 - math.exp(-_FRAME_S / ATTACK_S)
        self._release = 1.0 - math.exp(-_FRAME_S / RELEASE_S)
        self._hold = round(HOLD_S / _FRAME_S)
        self._quiet = self._hold  # frames since speech last sounded
        self._env = 0.0  # 0: not ducked; 1: ducked by DUCK_DB

    def gains(self, key: np.ndarray) -> np.ndarray:
        """The gain for each sample of ``key`` (the speech, zero outside its spans), frame by frame, the envelope
        ramped linearly within a frame so that the music does not step."""
        env = np.empty(len(key), dtype=np.float32)
        for a in range(0, len(key), self._frame):
            frame = key[a : a + self._frame]
            self._quiet = 0 if float(np.sqrt(np.mean(frame * frame))) > _SOUNDING else self._quiet + 1
            target = 1.0 if self._quiet <= self._hold else 0.0
            coef = self._attack if target > self._env else self._release
            new = self._env + coef * (target - self._env)
            env[a : a + len(frame)] = np.linspace(self._env, new, len(frame), endpoint=False)
            self._env = new
        return (10.0 ** (-DUCK_DB * env / 20.0)).astype(np.float32)


class BedProgramme(Programme):
    """``speech`` with the music bed (``resolve``: see :data:`~radiod.audio.recording.Resolve`) under it; see the
    module doc. A bed not there at play time (:meth:`ready`) is reported through ``on_missing`` and the speech
    plays alone: the words matter more than the music."""

    def __init__(self, speech: Programme, resolve: Resolve, volume: float, on_missing: OnMissing) -> None:
        super().__init__(speech.rate, speech.n_samples, [], speech.speech_lufs, speech.gain_db)
        self.spans = speech.spans
        self._speech = speech
        self._resolve = resolve
        self._volume = volume
        self._on_missing = on_missing
        self._file: tuple[Path, MediaLevel] | None = None
        self._asked = False

    def ready(self, stop: threading.Event, until: float) -> str | None:
        """The speech's own readiness; then the bed, waited for as a recording is, and left out if missing."""
        if (missing := self._speech.ready(stop, until)) is not None or stop.is_set():
            return missing
        if not self._asked:
            self._file = self._resolve(stop, until)
            if stop.is_set():
                return None
            self._asked = True
            if self._file is None:
                self._on_missing("the music bed was not available: played without it")
        return None

    def prime(self) -> None:
        self._speech.prime()

    def _sync(self) -> None:
        """Follow the speech's layout (a streamed programme's grows as it plays)."""
        self.n_samples, self.spans = self._speech.n_samples, self._speech.spans
        self.speech_lufs, self.gain_db = self._speech.speech_lufs, self._speech.gain_db

    def _limited_chunks(self) -> Iterator[np.ndarray]:
        with contextlib.closing(self._speech.blocks(CHUNK)) as speech:
            if self._file is None:
                for block in speech:
                    self._sync()
                    yield block
                self._sync()
                return
            yield from self._mixed(speech, *self._file)

    def _mixed(self, speech: Iterator[np.ndarray], path: Path, level: MediaLevel) -> Iterator[np.ndarray]:
        """The speech blocks with the bed under them, limited; the last ``BED_FADE_S`` held back (speech and bed
        apart) until the speech ends, so the bed alone can be faded out there."""
        gain = np.float32(10.0 ** ((level.gain_db - BED_LU) / 20.0) * self._volume)
        fade_n = round(BED_FADE_S * self.rate)
        music, ducker, limiter = _Looped(path, self.rate), _Ducker(self.rate), StreamLimiter(self.rate)
        held: list[tuple[np.ndarray, np.ndarray]] = []  # (speech, bed)
        held_n = pos = 0
        fade_in = round(BED_FADE_IN_S * self.rate)
        try:
            for block in speech:
                self._sync()
                bed = music.take(len(block)) * gain * ducker.gains(self._key(block, pos))
                if pos < fade_in:
                    idx = np.arange(pos, min(fade_in, pos + len(block)))
                    bed[: len(idx)] *= fade_curve(idx, fade_in)
                held.append((block, bed))
                pos += len(block)
                held_n += len(block)
                if held_n - fade_n >= CHUNK:
                    voice, bed = (np.concatenate(parts) for parts in zip(*held, strict=True))
                    cut = len(voice) - fade_n
                    if len(out := limiter.feed(voice[:cut] + bed[:cut])):
                        yield out
                    held, held_n = [(voice[cut:], bed[cut:])], fade_n
            self._sync()
            if held_n:
                voice, bed = (np.concatenate(parts) for parts in zip(*held, strict=True))
                n = min(fade_n, held_n)
                bed[held_n - n :] *= fade_curve(np.arange(n), n)[::-1]
                if len(out := limiter.feed(voice + bed)):
                    yield out
            if len(out := limiter.flush()):
                yield out
        finally:
            music.close()

    def _key(self, block: np.ndarray, pos: int) -> np.ndarray:
        """``block`` (samples ``pos`` on) where it lies in a speech span, zero elsewhere: the ducker's sidechain."""
        key = np.zeros_like(block)
        for span in self._spans_over(pos, pos + len(block)):
            a, b = max(span.start, pos) - pos, min(span.stop, pos + len(block)) - pos
            key[a:b] = block[a:b]
        return key

    def _spans_over(self, start: int, stop: int) -> list[Span]:
        spans = self.spans
        first = max(0, bisect.bisect_right([s.start for s in spans], start) - 1)  # spans are in order
        over = itertools.takewhile(lambda s: s.start < stop, spans[first:])
        return [s for s in over if s.stop > start and s.kind in _SPOKEN]
