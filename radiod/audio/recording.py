"""A recorded programme (a bulletin's ``media``): opening chime, the spoken introduction, the recording decoded
as it plays, the closing chime; at the speech's loudness, never clipping, never held in memory.

A two-hour recording at 48 kHz is 1.4 GB of float32, so the recording is never a :class:`~radiod.audio.layout.Part`
(a part is rendered whole): it is decoded packet by packet (:func:`radiod.audio.decode.decode`), scaled to the
target loudness and limited a chunk at a time (:class:`StreamLimiter`), between two ordinary programmes (the
chime and introduction before it, the closing chime after it) laid out and rendered as any text bulletin is.

Loudness: the file is measured once, after it is fetched (:func:`measure`, a streaming pass over the decoded
file), and its gain brings it to the speech target *after* the limiter, as :mod:`radiod.audio.render` does for
speech: music at -16 LUFS often peaks over the ceiling, and what the limiter takes off is measured and made up.
The measurement is the node's (:mod:`radiod.node.media` keeps it beside the file), so what plays does not
depend on the hub's word for it.

Resuming: an emergency interrupts a recording; :meth:`RecordingProgramme.starting_at` gives the programme that
goes on from where it stopped (``REWIND_S`` earlier, so the listener hears the sentence that was cut), without
the chime and introduction again, the file seeked rather than decoded up to there.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from radiod.audio.decode import decode
from radiod.audio.layout import CHIME_PAUSE_S, RenderOptions, Span, Step, Timeline, fade_curve, layout
from radiod.audio.limiter import ATTACK_S, CEILING, HOLD_S, limit
from radiod.audio.loudness import LoudnessMeter
from radiod.audio.pcm import Pcm
from radiod.audio.render import (
    CHUNK,
    LEVEL_TOLERANCE_DB,
    MAX_GAIN_DB,
    MAX_MAKEUP_DB,
    Programme,
    leveled_chimes,
    speech_level,
)
from radiod.errors import MediaError

__all__ = ["REWIND_S", "MediaLevel", "RecordingProgramme", "StreamLimiter", "measure", "recording_programme"]

REWIND_S = 3.0
"""A recording resumed after an emergency goes on this far before where it was cut: the listener hears the
sentence that was interrupted, not half of it."""
RESUME_FADE_S = 0.5
"""A resumed recording fades in over this, rather than starting mid-note at full level."""
_MEASURE_PASSES = 3  # limiter passes at most when measuring what it takes off a file's loudness


@dataclass(frozen=True)
class MediaLevel:
    """What :func:`measure` found in a recording: its length at ``rate``, its loudness, and the gain
    (dB, before the volume) that brings it to ``target_lufs`` as it comes out of the limiter."""

    rate: int
    samples: int
    lufs: float
    gain_db: float
    target_lufs: float

    @property
    def duration_s(self) -> float:
        return self.samples / self.rate


# ---------------------------------------------------------------- streaming limiter


class StreamLimiter:
    """:func:`~radiod.audio.limiter.limit` over a stream: each chunk is limited with the samples just before it
    (the limiter's hold) and just after it (its look-ahead) as context, so a peak at a chunk's edge is met by a
    gain that falls before it and holds after it, as over one whole block; every sample out is within the
    ceiling. Output lags input by the look-ahead; :meth:`flush` gives the rest."""

    def __init__(self, rate: int, chunk: int = CHUNK) -> None:
        self._rate = rate
        self._chunk = chunk
        self._ahead = max(1, round(ATTACK_S * rate))
        self._context = max(1, round(HOLD_S * rate)) + 2 * self._ahead
        self._before = np.zeros(0, dtype=np.float32)
        self._pending: list[np.ndarray] = []
        self._held = 0

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Take ``samples``; return the limited samples now ready (often none)."""
        self._pending.append(samples)
        self._held += len(samples)
        if self._held < self._chunk + self._ahead:
            return np.zeros(0, dtype=np.float32)
        return self._limit(final=False)

    def flush(self) -> np.ndarray:
        """The samples still held, limited as followed by silence."""
        return self._limit(final=True) if self._held else np.zeros(0, dtype=np.float32)

    def _limit(self, *, final: bool) -> np.ndarray:
        held = np.concatenate(self._pending)
        body = len(held) if final else len(held) - self._ahead
        limited = limit(np.concatenate([self._before, held]), self._rate)
        out = limited[len(self._before) : len(self._before) + body]
        self._before = np.concatenate([self._before, held[:body]])[-self._context :]
        self._pending, self._held = [held[body:]], len(held) - body
        return out


def _limited_stream(blocks: Iterator[np.ndarray], gain: float, rate: int) -> Iterator[np.ndarray]:
    """``blocks`` scaled by ``gain`` and limited (:class:`StreamLimiter`)."""
    limiter = StreamLimiter(rate)
    scale = np.float32(gain)
    for block in blocks:
        out = limiter.feed(block * scale)
        if len(out):
            yield out
    tail = limiter.flush()
    if len(tail):
        yield tail


# ---------------------------------------------------------------- measuring


def measure(path: Path, rate: int, target_lufs: float) -> MediaLevel:
    """Decode ``path`` once at ``rate`` (streaming) for its length, loudness and peak; when the gain to
    ``target_lufs`` would push its peaks over the ceiling, decode it again through the limiter to see what that
    takes off, and correct the gain (secant steps, at most ``MAX_MAKEUP_DB`` extra), as speech is levelled.

    Raises :class:`MediaError` when the file cannot be decoded or holds no audio.
    """
    meter = LoudnessMeter()
    samples, peak = 0, 0.0
    for block in decode(path, rate):
        meter.feed(block, rate)
        samples += len(block)
        if len(block):
            peak = max(peak, float(np.abs(block).max()))
    if samples == 0:
        raise MediaError(f"{path.name}: no audio in it")
    lufs = meter.lufs()
    gain_db = 0.0 if math.isinf(lufs) else min(target_lufs - lufs, MAX_GAIN_DB)
    if not math.isinf(lufs) and peak * 10.0 ** (gain_db / 20.0) > CEILING:
        gain_db = _made_up(path, rate, target_lufs, gain_db)
    return MediaLevel(rate, samples, lufs, gain_db, target_lufs)


def _made_up(path: Path, rate: int, target: float, gain_db: float) -> float:
    """The gain that brings ``path`` to ``target`` after the limiter (see :func:`measure`)."""
    highest = min(gain_db + MAX_MAKEUP_DB, MAX_GAIN_DB)
    previous: tuple[float, float] | None = None
    for _ in range(_MEASURE_PASSES):
        meter = LoudnessMeter()
        for block in _limited_stream(decode(path, rate), 10.0 ** (gain_db / 20.0), rate):
            meter.feed(block, rate)
        measured = meter.lufs()
        if abs(target - measured) <= LEVEL_TOLERANCE_DB:
            break
        slope = 0.5
        if previous is not None and gain_db != previous[0]:
            slope = min(1.0, max(0.1, (measured - previous[1]) / (gain_db - previous[0])))
        previous = (gain_db, measured)
        gain_db = min(gain_db + (target - measured) / slope, highest)
        if gain_db == previous[0]:
            break
    return gain_db


# ---------------------------------------------------------------- the programme

Resolve = Callable[[threading.Event, float], "tuple[Path, MediaLevel] | None"]
"""``resolve(stop, until)``: the recording's file and level once it is fetched and measured, waiting for it until
the wall clock reads ``until`` or ``stop`` is set; None when it is not there by then."""


@dataclass(frozen=True)
class _Where:
    """Where a recording programme begins: ``start_s`` into the whole programme, ``offset_s`` into the file."""

    start_s: float = 0.0
    offset_s: float = 0.0


class RecordingProgramme(Programme):
    """Chime and introduction (``head``), the recording, the closing chime (``tail``); see the module doc.

    The file may still be on its way when the programme is made (a bulletin is rendered ahead of its time): its
    length, and so ``n_samples``, ``duration_s`` and ``spans``, are known once :meth:`ready` has found it.
    """

    def __init__(
        self, head: Programme, tail: Programme, resolve: Resolve, opts: RenderOptions, where: _Where = _Where()
    ) -> None:
        super().__init__(opts.rate, head.n_samples + tail.n_samples, [], head.speech_lufs, head.gain_db)
        self._head, self._tail = head, tail
        self._resolve = resolve
        self._opts = opts
        self._where = where
        self._file: tuple[Path, MediaLevel] | None = None
        self._recording_n = 0
        self.start_s = where.start_s
        self.spans = (*head.spans, *self._shifted(tail.spans, head.n_samples))

    def ready(self, stop: threading.Event, until: float) -> str | None:
        """Wait (until ``until`` or ``stop``) for the file; ``media_unavailable`` if it is not there by then."""
        if self._file is None:
            found = self._resolve(stop, until)
            if found is None:
                return None if stop.is_set() else "media_unavailable"
            self._place(found)
        return None

    def starting_at(self, seconds: float) -> Programme:
        """The programme from ``seconds`` into this one (where a pre-empted play stopped): all of it while that
        was in the chime or introduction, else the recording from ``REWIND_S`` before that point, then the closing
        chime. Called on the whole programme (``start_s`` 0), with seconds into it."""
        if self._file is None or seconds <= self._head.duration_s:
            return self
        level = self._file[1]
        offset = min(max(seconds - self._head.duration_s - REWIND_S, 0.0), level.duration_s)
        empty = Programme(self.rate, 0, [], self._head.speech_lufs, self._head.gain_db)
        where = _Where(start_s=self._head.duration_s + offset, offset_s=offset)
        resumed = RecordingProgramme(empty, self._tail, self._resolve, self._opts, where)
        resumed._place(self._file)
        return resumed

    def prime(self) -> None:
        self._head.prime()

    def _place(self, found: tuple[Path, MediaLevel]) -> None:
        self._file = found
        level = found[1]
        skipped = round(self._where.offset_s * level.rate)
        self._recording_n = round(max(0, level.samples - skipped) * self.rate / level.rate)
        head_n = self._head.n_samples
        self.n_samples = head_n + self._recording_n + self._tail.n_samples
        recording = (Span("recording", head_n, head_n + self._recording_n),) if self._recording_n else ()
        self.spans = (*self._head.spans, *recording, *self._shifted(self._tail.spans, head_n + self._recording_n))

    @staticmethod
    def _shifted(spans: tuple[Span, ...], by: int) -> tuple[Span, ...]:
        return tuple(Span(s.kind, s.start + by, s.stop + by) for s in spans)

    def _limited_chunks(self) -> Iterator[np.ndarray]:
        if self._file is None:
            raise MediaError("the recording was not fetched before its play (ready() was not called)")
        yield from self._head._limited_chunks()
        yield from self._recording()
        yield from self._tail._limited_chunks()

    def _recording(self) -> Iterator[np.ndarray]:
        """The recording at its gain and the volume, limited, faded in (longer when resumed) and out, exactly
        ``_recording_n`` samples (a decoder's last frame padded or cut), decoded as it is played."""
        assert self._file is not None
        path, level = self._file
        gain = 10.0 ** (level.gain_db / 20.0) * self._opts.volume
        fade_in = round((RESUME_FADE_S if self._where.offset_s else self._opts.fade_s) * self.rate)
        fade_out = round(self._opts.fade_s * self.rate)
        want, sent = self._recording_n, 0
        previous: np.ndarray | None = None  # held back one chunk, so the last one can be faded out
        source = decode(path, self.rate, start_s=self._where.offset_s)
        try:
            for limited in _limited_stream(source, gain, self.rate):
                chunk = limited[: want - sent]
                if sent < fade_in:
                    chunk = chunk.copy()
                    idx = np.arange(sent, min(fade_in, sent + len(chunk)))
                    chunk[: len(idx)] *= fade_curve(idx, fade_in)
                sent += len(chunk)
                if previous is not None and len(previous):
                    yield previous
                previous = chunk
                if sent >= want:
                    break
        finally:
            source.close()
        last = np.concatenate([previous if previous is not None else np.zeros(0, np.float32),
                               np.zeros(want - sent, dtype=np.float32)])
        if fade_out and len(last) >= fade_out:
            last = last.copy()
            last[len(last) - fade_out :] *= fade_curve(np.arange(fade_out), fade_out)[::-1]
        if len(last):
            yield last


def recording_programme(intro: tuple[Pcm, ...], resolve: Resolve, opts: RenderOptions) -> RecordingProgramme:
    """The programme of a recorded bulletin: opening chime, ``opts.preamble`` and the spoken ``intro`` (either may
    be empty) levelled as speech, the recording (``resolve``: see :data:`Resolve`), the closing chime. Played
    once: a recording is long, and a bulletin's ``repeat`` applies to text."""
    speech_lufs, gain_db = speech_level(intro, opts.target_lufs, opts.volume)
    _, preamble_gain_db = speech_level(opts.preamble, opts.target_lufs, opts.volume)
    steps = layout(replace(opts, repeat=1), leveled_chimes(opts), preamble_gain_db)  # a text bulletin's, once
    cut = next(i for i, step in enumerate(steps) if step.kind == "speech") + 1  # the recording follows the speech
    if intro or opts.preamble:
        steps.insert(cut, Step("pause", seconds=CHIME_PAUSE_S))
        cut += 1
    head = Timeline(opts.rate, opts.fade_s, opts.volume)
    tail = Timeline(opts.rate, opts.fade_s, opts.volume)
    for step in steps[:cut]:
        head.lay(step, intro, gain_db)
    for step in steps[cut:]:
        tail.lay(step, (), 0.0)
    return RecordingProgramme(
        Programme(opts.rate, head.pos, head.parts, speech_lufs, gain_db),
        Programme(opts.rate, tail.pos, tail.parts, -math.inf, 0.0),
        resolve,
        opts,
    )
