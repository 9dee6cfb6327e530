"""The programme a node plays: chimes, speech at one loudness, fades, repeats, at the output's rate, never clipping.

A 9-minute bulletin at 48 kHz float32 is 104 MB, more than a Pi may spend on the whole daemon, so the
programme is never materialized: :class:`Programme` is a timeline of parts (chimes, sentence clips, silence).
:meth:`Programme.blocks` computes the samples a chunk at a time while the output plays them; the sentence clips
stay at the engine's rate (int16 at 22050 Hz for espeak-ng) until a chunk reaches them, and each is rendered
once per play, when its first sample is needed. Even those clips are 200 MB for an 80-minute bulletin, so a long
speech is not held either: a streamed programme and one made by :func:`render_recalled` keep a clip only until
its part is rendered, and read it again from the speech (the Speaker's cache) for a repeat or a replay.

What plays when is :mod:`radiod.audio.layout`'s plan (chimes, preamble, speech, pauses, repeats), one plan
for the whole and the streaming programme; each part is resampled (:mod:`radiod.audio.resample`), scaled, faded
and limited (:mod:`radiod.audio.limiter`) when a play reaches it.

Loudness: the speech (and, separately, the preamble, which may come from another source) is measured with
BS.1770 (:mod:`radiod.audio.loudness`) and given the gain that brings it to ``target_lufs``; the chimes sit
``CHIME_LEVEL_LU`` below. Then ``volume`` scales everything. The look-ahead limiter (:mod:`radiod.audio.limiter`)
keeps every sample within ``CEILING_DBFS``; what it takes off the loudness is measured and made up before the
programme is played (see :func:`speech_level`).

Streaming (for ``now`` and emergency bulletins): the loudness of the whole speech is known only once it is all
synthesized, which for a long text read by a neural voice on a Pi means minutes of silence before the first word.
A :class:`StreamingProgramme` instead fixes the speech's gain from its first sentences (one voice reads every
sentence at about the same level) and lays each sentence out as it arrives, while the ones before it play.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import logging
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from radiod.audio.chime import default_chimes
from radiod.audio.layout import CHIME_PAUSE_S, LazyClip, Part, RenderOptions, Span, Timeline, layout
from radiod.audio.limiter import CEILING, CEILING_DBFS, limit
from radiod.audio.loudness import LoudnessMeter, integrated_lufs
from radiod.audio.pcm import Pcm, to_int16
from radiod.audio.resample import as_float, resample

log = logging.getLogger(__name__)

__all__ = [
    "BLOCK",
    "CEILING_DBFS",
    "CHIME_PAUSE_S",
    "Programme",
    "RenderOptions",
    "Span",
    "StreamingProgramme",
    "render_programme",
    "render_recalled",
]

CHIME_LEVEL_LU = -4.0  # chimes this far below the speech: heard clearly, never startling
MAX_GAIN_DB = 50.0  # normalization never lifts near-silence into loud noise
MAX_MAKEUP_DB = 6.0  # at most this much extra gain for what the limiter takes off very peaky audio
LEVEL_TOLERANCE_DB = 0.3  # the limited speech is brought this close to the target
_LEVEL_PROBES = 4  # limiter passes at most, each one a correction of the gain
_FIRST_SLOPE = 0.5  # on espeak-ng speech near the target, 1 dB more gain comes out ~0.5 dB louder after the limiter
PROBE_S = 60.0  # speech the loudness and the limiter's make-up gain are measured on: its first (see _probe_clips)
STREAM_LEVEL_S = 3.0
STREAM_LEVEL_SENTENCES = 2
"""A streamed programme's speech gain is measured on its first sentences, until they hold ``STREAM_LEVEL_S`` of
speech or are ``STREAM_LEVEL_SENTENCES`` (so a slow voice reading short sentences is not waited for long); they are
synthesized while the amplifier warms up and the opening chime plays. A bulletin often opens with a short heading
read louder than the rest: on the corpus, the first 1 s set the whole text up to 1.9 dB off the target, the first
3 s (never more than two sentences) at most 0.9 dB."""

CHUNK = 1 << 16  # output samples computed at a time (~1.4 s at 48 kHz): a few hundred kB of working memory
BLOCK = CHUNK
"""Block size for a caller free to choose one (a file written whole): the programme's own chunks, handed out as
they are computed, without copying them into blocks of another size."""
_RENDER_AHEAD = 2  # parts rendered ahead of the one playing, each on its own thread
_RECALL_WINDOW = 8  # clips a recalling stream keeps for parts rendered out of order (see _Recall)


# ---------------------------------------------------------------- programme


class Programme:
    """A rendered programme, computed block by block as it is played (see the module doc).

    ``speech_lufs`` is the speech's measured loudness before any gain (-inf when it is silent or shorter than
    one 400 ms measuring block, in which case it is left at its level); ``gain_db`` the gain applied to it
    before ``volume``: to the target, plus what the limiter takes off. ``spans`` says where each chime and
    clip lies. ``recall``: where the parts' :class:`LazyClip` s are read again (:func:`render_recalled`).
    """

    def __init__(
        self,
        rate: int,
        n_samples: int,
        parts: list[Part],
        speech_lufs: float,
        gain_db: float,
        *,
        recall: _Recall | None = None,
    ) -> None:
        self.rate = rate
        self.n_samples = n_samples
        self.speech_lufs = speech_lufs
        self.gain_db = gain_db
        self._parts = parts
        self._starts = [p.span.start for p in parts]
        self.spans: tuple[Span, ...] = tuple(p.span for p in parts)
        self._primed: _Rendering | None = None
        self._recall = recall

    start_s = 0.0
    """Where this programme begins in its bulletin's whole programme, in seconds: past 0 only for a recording
    resumed after an emergency (see :meth:`starting_at`)."""

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate

    def ready(self, stop: threading.Event, until: float) -> str | None:
        """Wait, until the wall clock reads ``until`` or ``stop`` is set, for what the programme needs before it
        can start (a recording still being fetched); the reason it cannot play (a ``skipped`` event's), or None.
        A programme of speech has all it needs."""
        del stop, until
        return None

    def starting_at(self, seconds: float) -> Programme:
        """The programme that goes on from ``seconds`` into this one, where a pre-empted play stopped. Speech
        plays again from the start (the listener needs the whole bulletin); a recording overrides this."""
        del seconds
        return self

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        """float32 mono blocks of ``size`` samples (the last may be shorter), in [-1, 1] at ``rate``.

        Each call starts again from the beginning; the samples do not depend on ``size``.
        """
        if size < 1:
            raise ValueError(f"block size must be >= 1, got {size}")
        if self._recall is not None:
            self._recall.resume()
        pending: list[np.ndarray] = []
        held = 0
        for chunk in self._limited_chunks():
            if not held and len(chunk) == size:  # blocks the size of the chunks (radiod speak -o): no copy
                yield chunk
                continue
            pending.append(chunk)
            held += len(chunk)
            if held < size:
                continue
            joined = np.concatenate(pending)
            whole = len(joined) // size * size
            yield from joined[:whole].reshape(-1, size)
            pending, held = [joined[whole:]], len(joined) - whole
        if held:
            yield np.concatenate(pending)

    def prime(self) -> None:
        """Start rendering the opening parts now, in the background: the station calls this as the amplifier
        goes on, so the first block is ready at the start instant and the first sample is not late by the time
        it takes to render (a scheduled start is an instant, shared by every node of the commune)."""
        if self._recall is not None:
            self._recall.resume()
        if self._primed is None:
            self._primed = _Rendering(self)
            self._primed.ahead(0)

    def int16_blocks(self, size: int) -> Iterator[np.ndarray]:
        """:meth:`blocks` as 16-bit samples (:func:`~radiod.audio.pcm.to_int16`), what a WAV file holds; a
        programme replayed from the programme cache gives them as stored, without a round trip through float."""
        for block in self.blocks(size):
            yield to_int16(block)

    def to_pcm(self) -> Pcm:
        """The whole programme in memory: for tests and short programmes only."""
        return Pcm(np.concatenate([np.zeros(0, dtype=np.float32), *self.blocks(CHUNK)]), self.rate)

    def _known_until(self, start: int) -> int:
        """How far the programme is laid out, once it reaches past ``start`` (or is complete)."""
        del start  # laid out whole from the start
        return self.n_samples

    def _limited_chunks(self) -> Iterator[np.ndarray]:
        """The programme in chunks of up to ``CHUNK`` samples.

        Parts are rendered on ``_RENDER_AHEAD`` worker threads, the next ones while the current one is taken
        (resampling and limiting run outside the GIL): a play at real time never waits for a part, and
        ``radiod speak -o`` uses a second core.
        """
        rendering, self._primed = self._primed or _Rendering(self), None
        try:
            start = 0
            while start < (known := self._known_until(start)):
                stop = min(start + CHUNK, known)
                yield self._samples(start, stop, rendering)
                start = stop
        finally:
            rendering.close()
            if self._recall is not None:
                self._recall.stop()  # ends the stream it reads from; a render still running gets silence

    def _samples(self, start: int, stop: int, rendering: _Rendering) -> np.ndarray:
        """Samples [start, stop): the parts that overlap, silence elsewhere."""
        out = np.zeros(max(0, stop - start), dtype=np.float32)
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        while i < len(self._parts) and self._parts[i].span.start < stop:
            part = self._parts[i]
            a, b = max(start, part.span.start), min(stop, part.span.stop)
            if a < b:
                out[a - start : b - start] = rendering.part(i)[a - part.span.start : b - part.span.start]
            i += 1
        return out


class _Rendering:
    """One play's parts at the output rate: each rendered once, a few ahead of the one asked for, and let go
    once the play has moved past it."""

    def __init__(self, programme: Programme) -> None:
        self._programme = programme
        self._pool = ThreadPoolExecutor(_RENDER_AHEAD, thread_name_prefix="render")
        self._parts: dict[int, Future[np.ndarray]] = {}

    def part(self, i: int) -> np.ndarray:
        self.ahead(i)
        for j in [j for j in self._parts if j < i]:
            del self._parts[j]
        return self._parts[i].result()

    def ahead(self, i: int) -> None:
        """Submit part ``i`` and the few after it, those not yet submitted."""
        parts = self._programme._parts  # a streaming programme appends to it as its speech arrives
        for j in range(i, min(i + 1 + _RENDER_AHEAD, len(parts))):
            if j not in self._parts:
                self._parts[j] = self._pool.submit(parts[j].render, self._programme.rate)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._parts.clear()


def _normalizing_gain_db(lufs: float, target: float) -> float:
    return 0.0 if math.isinf(lufs) else min(target - lufs, MAX_GAIN_DB)


def _probe_clips(clips: Iterable[Pcm]) -> list[Pcm]:
    """The clips of the first ``PROBE_S`` of speech (all of a shorter one): one voice reads a long text at much the
    same loudness all through it, and the limiter takes much the same off it, so both are measured on its opening
    (for a 14-minute text, a fourteenth of the work; on our corpus, read by each voice, within 0.1 LU of the
    whole; 30 s would be within 0.35 LU). The opening, rather than clips spread over the speech, so that a
    programme can be levelled, and rendered, while the rest of its speech is still being synthesized
    (:class:`StreamingProgramme` with ``probe``), and comes out the same."""
    probe: list[Pcm] = []
    held_s = 0.0
    for clip in clips:
        if held_s >= PROBE_S:
            break
        probe.append(clip)
        held_s += len(clip.samples) / clip.rate
    return probe


def _limited_lufs(clips: Sequence[Pcm], gain_db: float, volume: float) -> float:
    """Loudness of ``clips`` at ``gain_db`` and ``volume`` after the limiter, at their own rate (fades left out:
    20 ms at each edge of a sentence do not move its loudness)."""
    meter = LoudnessMeter()
    gain = np.float32(10.0 ** (gain_db / 20.0) * volume)
    for clip in clips:
        meter.feed(limit(as_float(clip.samples) * gain, clip.rate, in_place=True), clip.rate)
    return meter.lufs()


def speech_level(
    clips: Sequence[Pcm], target: float, volume: float, opening: _Opening | None = None
) -> tuple[float, float]:
    """(measured loudness, gain in dB before ``volume``) that brings ``clips`` to ``target`` + the volume in dB
    as they come out of the limiter; both measured on the opening of the speech (:func:`_probe_clips`).

    Speech at -16 LUFS often peaks above the ceiling (espeak-ng's peaks sit ~18 dB above its loudness), and
    the limiter then takes up to ~1 dB off the loudness. So the opening of the speech (:func:`_probe_clips`)
    is run through the limiter at their own rate (no resampling: cheap), and the gain corrected by what it
    took, until within LEVEL_TOLERANCE_DB. The limiter takes more the more gain it gets, so each correction
    follows the slope seen so far (secant; ``_FIRST_SLOPE`` before there is one). At a lower volume the limiter
    takes less, so the volume is part of the probe. Whether the limiter acts at all is judged on the probe's peak
    too (a louder peak later is limited all the same, only without make-up gain). ``opening``: those clips'
    loudness and peak, measured as they arrived (a programme rendered while its speech is synthesized).
    """
    probe = _probe_clips(clips)
    if opening is None or len(opening.clips) != len(probe):
        opening = _Opening()
        for clip in probe:
            opening.add(clip)
    lufs, peak = opening.meter.lufs(), opening.peak
    gain_db = _normalizing_gain_db(lufs, target)
    if math.isinf(lufs) or peak * 10.0 ** (gain_db / 20.0) * volume <= CEILING:
        return lufs, gain_db  # the limiter will not touch it
    volume_db = 20.0 * math.log10(volume)  # volume > 0 here: the peak test above passes at volume 0
    highest = min(gain_db + MAX_MAKEUP_DB, MAX_GAIN_DB)
    previous: tuple[float, float] | None = None
    for _ in range(_LEVEL_PROBES):
        measured = _limited_lufs(probe, gain_db, volume) - volume_db  # after the limiter, before the volume
        if abs(target - measured) <= LEVEL_TOLERANCE_DB:
            break
        slope = _FIRST_SLOPE
        if previous is not None and gain_db != previous[0]:
            slope = min(1.0, max(0.1, (measured - previous[1]) / (gain_db - previous[0])))
        previous = (gain_db, measured)
        gain_db = min(gain_db + (target - measured) / slope, highest)
        if gain_db == previous[0]:
            break  # at the most make-up allowed: louder would only be more limited
    return lufs, gain_db


class _Opening:
    """Clips measured as they arrive (loudness, peak): what :func:`speech_level` measures first, taken while the rest of
    the opening is still being synthesized."""

    def __init__(self) -> None:
        self.clips: list[Pcm] = []
        self.meter = LoudnessMeter()
        self.peak = 0.0

    def add(self, clip: Pcm) -> None:
        self.clips.append(clip)
        self.meter.feed(clip.samples, clip.rate)
        self.peak = max(self.peak, _peak([clip]))


def _peak(clips: Sequence[Pcm]) -> float:
    """The highest magnitude in ``clips``, in [0, 1]; int16 is read as it is, without a float copy."""
    peak = 0.0
    for clip in clips:
        if len(clip.samples):
            top = max(float(clip.samples.max()), -float(clip.samples.min()))
            peak = max(peak, top / 32768.0 if clip.samples.dtype == np.int16 else top)
    return peak


_chime_cache: OrderedDict[tuple[bytes, int], tuple[Pcm, float]] = OrderedDict()
_chime_cache_lock = threading.Lock()
_CHIME_CACHE_SIZE = 8


def _chime_at_rate(chime: Pcm, rate: int) -> tuple[Pcm, float]:
    """A chime resampled to ``rate`` and its loudness, cached by content: the same chime is rendered into
    every programme and its resampling and measurement need not be repeated."""
    digest = hashlib.blake2b(chime.samples.tobytes(), digest_size=16)
    digest.update(f"{chime.samples.dtype}/{chime.rate}".encode())
    key = (digest.digest(), rate)
    with _chime_cache_lock:
        if key in _chime_cache:
            _chime_cache.move_to_end(key)
            return _chime_cache[key]
    samples = resample(chime.samples, chime.rate, rate).copy()  # a copy: the caller's array may change later
    samples.setflags(write=False)
    at_rate = Pcm(samples, rate)
    entry = (at_rate, integrated_lufs([at_rate]))
    with _chime_cache_lock:
        _chime_cache[key] = entry
        if len(_chime_cache) > _CHIME_CACHE_SIZE:
            _chime_cache.popitem(last=False)
    return entry


def leveled_chimes(opts: RenderOptions) -> list[tuple[Pcm, float]]:
    """[(opening, gain in dB), (closing, gain in dB)] at the output rate, ``CHIME_LEVEL_LU`` under the target;
    [] without chimes."""
    chimes: list[tuple[Pcm, float]] = []
    if opts.chime:
        for chime in opts.chimes or default_chimes(opts.rate):
            at_rate, lufs = _chime_at_rate(chime, opts.rate)
            chimes.append((at_rate, _normalizing_gain_db(lufs, opts.target_lufs + CHIME_LEVEL_LU)))
    return chimes


def render_programme(speech: Sequence[Pcm], opts: RenderOptions) -> Programme:
    """Lay out and level one programme; the samples are computed later, block by block, by the output.

    The cost here is measuring loudness: a few passes over the speech at its own rate, no resampling.
    """
    speech_lufs, gain_db = speech_level(speech, opts.target_lufs, opts.volume)
    _, preamble_gain_db = speech_level(opts.preamble, opts.target_lufs, opts.volume)
    timeline = Timeline(opts.rate, opts.fade_s, opts.volume)
    for step in layout(opts, leveled_chimes(opts), preamble_gain_db):
        timeline.lay(step, speech, gain_db)
    return Programme(opts.rate, timeline.pos, timeline.parts, speech_lufs, gain_db)


def render_recalled(speech: Iterator[Pcm], read_again: Callable[[], Iterator[Pcm]], opts: RenderOptions) -> Programme:
    """:func:`render_programme` for a speech too long to hold: ``speech`` gives its clips in order (the Speaker's
    stream, which keeps each in its cache); they are read once to lay out and level the programme, keeping only
    those of its opening (:func:`_probe_clips`), and read again in order from ``read_again()`` as it plays
    (:class:`_Recall`). An 80-minute bulletin is 200 MB of clips; this holds a few of them at a time.
    """
    sizes: list[tuple[int, int]] = []
    probe: list[Pcm] = []  # the opening, as _probe_clips takes it
    probe_s = 0.0
    for clip in speech:
        sizes.append((len(clip.samples), clip.rate))
        if probe_s < PROBE_S:
            probe.append(clip)
            probe_s += len(clip.samples) / clip.rate
    speech_lufs, gain_db = speech_level(probe, opts.target_lufs, opts.volume)
    del probe
    _, preamble_gain_db = speech_level(opts.preamble, opts.target_lufs, opts.volume)
    recall = _Recall(read_again)
    clips = [LazyClip(n, rate, functools.partial(recall.clip, k)) for k, (n, rate) in enumerate(sizes)]
    timeline = Timeline(opts.rate, opts.fade_s, opts.volume)
    for step in layout(opts, leveled_chimes(opts), preamble_gain_db):
        timeline.lay(step, clips, gain_db)
    return Programme(opts.rate, timeline.pos, timeline.parts, speech_lufs, gain_db, recall=recall)


# ---------------------------------------------------------------- streaming


def _speech_s(clip: Pcm) -> float:
    """Seconds from the first to the last non-zero sample: the clip's speech without its edges and its pause."""
    loud = np.flatnonzero(clip.samples)
    return 0.0 if len(loud) == 0 else (int(loud[-1]) - int(loud[0]) + 1) / clip.rate


class StreamingProgramme(Programme):
    """A programme whose speech is synthesized while it plays: for ``now`` and emergency bulletins.

    ``open_speech()`` gives the speech clip by clip as it is synthesized (``Speaker.stream``); it is called here,
    so a voice that cannot be used fails here. Synthesis starts at once, on a thread (the level thread) that
    waits for the first sentences (``STREAM_LEVEL_S``) and fixes the speech's gain from them (``speech_level``, limiter
    make-up included), so the amplifier can warm up and the opening chime play meanwhile. The layout is
    :func:`render_programme`'s, made as the blocks reach it: a clip is taken from the stream only when its first
    sample is about to be computed, and waited for if it is late (a sound card then has nothing to play; the
    Speaker's fallback to a faster voice keeps that short). The repeats after the first replay the speech
    (the plan is :func:`layout`'s, as for a whole programme). The same limiter keeps every sample within the
    ceiling.

    Memory: a clip is held from its arrival until its part is rendered, and then let go; the repeats and a replay
    fetch the clips again, in order, from a new stream of the speech (:class:`_Recall`: the Speaker's cache, or
    synthesized again if evicted). So an 80-minute bulletin holds a few clips at a time, not 200 MB of them.

    ``n_samples``, ``duration_s`` and ``spans`` cover what is laid out so far, and are final once ``complete``;
    ``speech_lufs`` and ``gain_db`` are those of the first sentences, known once they have arrived.

    A play stopped before the speech ended (the output stops iterating :meth:`blocks`) closes the stream, which
    ends its synthesis thread; a stop is noticed between blocks, so at worst once an awaited clip has arrived.
    Played again (a pre-empted bulletin, an output retried), it replays the clips received (recalled) and opens
    a new stream for the rest, skipping the sentences it has (read from the Speaker's cache when there is one).
    One play at a time: :meth:`blocks` must not run on two threads at once.

    ``probe``: level the speech as :func:`render_programme` does, on its first ``PROBE_S`` (:func:`_probe_clips`),
    rather than on its first sentences: the programme then comes out the same as the whole one, while it can be
    rendered as the rest of its speech is synthesized (``radiod speak -o``, which writes it as fast as it can).
    """

    def __init__(
        self, open_speech: Callable[[], Iterator[Pcm]], opts: RenderOptions, *, probe: bool = False
    ) -> None:
        self._probe = probe
        self._again = _Recall(open_speech)  # the clips read again: for the repeats, and a replay
        super().__init__(opts.rate, 0, [], -math.inf, 0.0, recall=self._again)
        self.complete = False
        """True once the speech has ended and the whole programme is laid out."""
        self._opts = opts
        self._open_speech = open_speech
        self._source: Iterator[Pcm] | None = open_speech()
        self._sizes: list[tuple[int, int]] = []  # (samples, rate) of each clip received so far, in order
        self._fresh: dict[int, Pcm] = {}  # clips received whose part has not been rendered yet, by index
        self._placed = 0  # how many of them are laid out (in the first repeat)
        self._ended = False  # the stream gave its last clip
        _, preamble_gain_db = speech_level(opts.preamble, opts.target_lufs, opts.volume)
        self._plan = layout(opts, leveled_chimes(opts), preamble_gain_db)
        self._first_speech = next(i for i, step in enumerate(self._plan) if step.kind == "speech")
        self._timeline = Timeline(opts.rate, opts.fade_s, opts.volume)
        self._parts = self._timeline.parts  # the same list: Programme._raw sees each part once it is placed
        for step in self._plan[: self._first_speech]:  # what comes before the speech: no need to wait for it
            self._timeline.lay(step, (), 0.0)
        self._sync()
        self._level_known = False  # speech_lufs and gain_db are measured
        self._lock = threading.Lock()  # hands the stream over between the level thread and a stopped play
        self._release_pending = False  # a play stopped while the level thread was inside the stream
        self._level_thread_done: Future[None] = Future()
        threading.Thread(target=self._level_thread, name="stream-level", daemon=True).start()

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        """As :meth:`Programme.blocks`; stopping before the end closes the speech stream (see the class doc)."""
        with self._lock:
            self._release_pending = False  # played again before the level thread returned: keep its stream
        try:
            yield from super().blocks(size)
        finally:
            self._release()

    def _known_until(self, start: int) -> int:
        """Lay out clips, waiting for them, until the layout reaches past ``start`` or is complete: the next clip
        is waited for only when nothing more can be computed without it; with ``probe`` (no listener waiting), also
        until ``_RENDER_AHEAD`` parts lie past ``start``, so that they are rendered on the render threads meanwhile."""
        while not self.complete and (self._timeline.pos <= start or self._renders_ahead(start)):
            self._extend()
        return self._timeline.pos

    def _renders_ahead(self, start: int) -> bool:
        """Whether to lay out more (waiting for its speech) so the render threads have parts past ``start``."""
        return self._probe and len(self._starts) - bisect.bisect_right(self._starts, start) < _RENDER_AHEAD

    def _extend(self) -> None:
        """Lay out the next speech clip, waiting for it; after the last one, the rest of the programme."""
        self._level_thread_done.result()  # it has let go of the stream; raises what ended the stream meanwhile
        if not self._level_known:  # the level thread gave up: a play stopped before the first sentences came
            self._take_level(stoppable=False)
        if self._placed < len(self._sizes) or (not self._ended and self._receive()):
            n, rate = self._sizes[self._placed]
            fetch = functools.partial(self._first_time, self._placed)
            self._timeline.place("speech", LazyClip(n, rate, fetch), self.gain_db)
            self._placed += 1
        else:  # the speech has ended: the rest of the plan, the later repeats recalling the clips received
            recall = self._again.clip
            again = [LazyClip(n, rate, functools.partial(recall, k)) for k, (n, rate) in enumerate(self._sizes)]
            for step in self._plan[self._first_speech + 1 :]:
                self._timeline.lay(step, again, self.gain_db)
            self.complete = True
        self._sync()

    def _sync(self) -> None:
        """Bring what Programme reads (the parts' starts, spans, n_samples) up to the layout."""
        new = self._parts[len(self._starts) :]
        self._starts += [p.span.start for p in new]
        self.spans += tuple(p.span for p in new)
        self.n_samples = self._timeline.pos

    def _first_time(self, k: int) -> Pcm:
        """Clip ``k`` for its part in the first repeat: the one received, let go here (its part is rendered
        now), or recalled when a replay renders it again."""
        clip = self._fresh.pop(k, None)
        return clip if clip is not None else self._again.clip(k)

    def _receive(self) -> bool:
        """Wait for the stream's next clip and keep it until it is rendered; False when the speech has ended."""
        if self._source is None:  # closed when a play stopped: a new stream, past the clips already received
            self._source = self._open_speech()
            deque(itertools.islice(self._source, len(self._sizes)), maxlen=0)
        clip = next(self._source, None)
        if clip is None:
            self._ended, self._source = True, None
            return False
        self._fresh[len(self._sizes)] = clip
        self._sizes.append((len(clip.samples), clip.rate))
        return True

    def _level_thread(self) -> None:
        """Take the level (see :meth:`_take_level`), then close the stream if a play stopped meanwhile.

        An exception (no voice could read the first sentence) is kept for :meth:`blocks`, which raises it on
        the output's thread: the play fails with it, as a pre-rendered one fails before it starts.
        """
        error: Exception | None = None
        try:
            self._take_level(stoppable=True)
        except Exception as exc:  # handed to blocks(), which raises it: not hidden
            error = exc
        with self._lock:
            if self._release_pending:
                self._close_source()
            if error is None:
                self._level_thread_done.set_result(None)
            else:
                self._level_thread_done.set_exception(error)

    def _take_level(self, *, stoppable: bool) -> None:
        """Receive the first sentences (see ``STREAM_LEVEL_S``) and set the speech's gain from them.

        ``stoppable`` (the level thread): give up, leaving the level unknown, once a play has stopped, so that a
        bulletin stopped during its chime does not go on synthesizing; a later play takes the level itself.
        """
        first = [self._fresh[k] for k in range(len(self._sizes))]  # none is laid out before the level is known
        opening = _Opening()  # measured as they come, while the next ones are synthesized
        for clip in first:
            opening.add(clip)
        heard = sum(map(self._heard_s, first))
        while self._wants_more(heard, len(first)) and not self._ended:
            if stoppable:
                with self._lock:
                    if self._release_pending:
                        return
            if not self._receive():
                break
            first.append(self._fresh[len(first)])
            opening.add(first[-1])
            heard += self._heard_s(first[-1])
        opts = self._opts
        self.speech_lufs, self.gain_db = speech_level(first, opts.target_lufs, opts.volume, opening)
        self._level_known = True

    def _heard_s(self, clip: Pcm) -> float:
        """What a clip counts towards the level's measure: its speech, or with ``probe`` its length (as
        :func:`_probe_clips` counts)."""
        return len(clip.samples) / clip.rate if self._probe else _speech_s(clip)

    def _wants_more(self, heard_s: float, sentences: int) -> bool:
        """Whether the level waits for another sentence (see ``STREAM_LEVEL_S`` and ``probe``)."""
        if self._probe:
            return heard_s < PROBE_S
        return heard_s < STREAM_LEVEL_S and sentences < STREAM_LEVEL_SENTENCES

    def _release(self) -> None:
        """End the stream's synthesis after a play; a later play opens a new one (nothing to do once it ended)."""
        with self._lock:
            if not self._level_thread_done.done():
                self._release_pending = True  # the level thread is inside the stream: it closes it on return
                return
            self._close_source()

    def _close_source(self) -> None:
        source, self._source = self._source, None
        if isinstance(source, Generator):  # Speaker.stream's: closing it stops its synthesis thread
            source.close()


class _Recall:
    """A streamed programme's clips fetched again by their index, for a repeat or a replay.

    The clips are read in order from a new stream of the speech (``open_speech``: the Speaker's cache, or
    synthesized again if a clip was evicted), which is what a repeat or a replay asks for; the few clips passed
    over because parts are rendered on two threads are kept (``_RECALL_WINDOW``). A clip asked for again before
    the stream's position (a replay from the start) opens a new stream. Called from the render threads.
    """

    def __init__(self, open_speech: Callable[[], Iterator[Pcm]]) -> None:
        self._open_speech = open_speech
        self._source: Iterator[Pcm] | None = None
        self._next = 0  # index of the clip the source gives next
        self._passed: OrderedDict[int, Pcm] = OrderedDict()  # clips read past, by index
        self._stopped = False  # the play stopped: a render still running gets silence, no new stream
        self._lock = threading.Lock()

    def clip(self, k: int) -> Pcm:
        """Clip ``k`` of the speech; silence once the play has stopped (it is never heard)."""
        with self._lock:
            try:
                return self._clip(k)
            finally:
                if self._stopped:
                    self._close()

    def _clip(self, k: int) -> Pcm:
        if self._stopped:
            return Pcm(np.zeros(0, dtype=np.int16), 1)
        if k in self._passed:
            return self._passed.pop(k)
        if self._source is None or k < self._next:
            self._close()
            self._source, self._next = self._open_speech(), 0
        for clip in self._source:
            index, self._next = self._next, self._next + 1
            if index == k:
                return clip
            self._passed[index] = clip
            if len(self._passed) > _RECALL_WINDOW:
                self._passed.popitem(last=False)
        log.warning("streamed speech: clip %d is missing when read again; silence in its place", k)
        return Pcm(np.zeros(0, dtype=np.int16), 1)

    def resume(self) -> None:
        """A play starts: clips may be recalled again."""
        with self._lock:
            self._stopped = False

    def stop(self) -> None:
        """A play stopped: end the stream's synthesis now, or as the render using it returns."""
        self._stopped = True
        if self._lock.acquire(blocking=False):
            try:
                self._close()
            finally:
                self._lock.release()

    def _close(self) -> None:
        source, self._source = self._source, None
        self._passed.clear()
        if isinstance(source, Generator):  # Speaker.stream's: closing it stops its synthesis thread
            source.close()
