"""Text to speech clips: NFC → normalize → sentences → cache or synthesis (in parallel) → one clip per sentence.

Why per sentence: a sentence is the unit the cache keys on (the daily bulletin repeats most of its sentences
day after day, and a bulletin that changes one figure re-synthesizes one sentence), the unit synthesis runs
in parallel over, and the unit whose failure message a technician can read.

What a clip holds: the sentence's speech with espeak-ng's own leading and trailing silence trimmed to
``EDGE_S`` (so the renderer's fade at each clip edge touches silence, not a consonant), scaled by the voice's
volume, int16 at the engine's rate (a 9-minute article is then 24 MB, not 95 MB of float32 at 48 kHz),
**followed by the pause before the next sentence**: ``SENTENCE_PAUSE_S``, or ``PARAGRAPH_PAUSE_S`` at the end
of a line. The last clip has no pause after it. So the renderer only has to play the clips back to back, and
the rhythm is the same whatever the engine and whether a sentence came from the cache.

Parallelism: the misses are cut into a few chunks of consecutive sentences and each chunk is read by one
engine run in a worker thread (the work happens in the espeak-ng child process, so threads use every core),
while the calling thread trims and caches the clips of each chunk as it arrives. One run per chunk, not per
sentence, because espeak-ng's start-up costs about as much as a short sentence (see ``bench/speak.py``); the
chunks shrink towards the end of the text so that no worker is left reading a long last chunk alone.

Streaming (:meth:`Speaker.stream`): for ``now`` and emergency bulletins the same clips come one at a time, from a
thread that synthesizes ahead of the caller, so the first sentence can play while the rest is synthesized; a
slow neural voice that cannot keep up hands the rest of the text to its fallback voice.

Fallback: a voice whose engine cannot run here, or fails on a text, is replaced by the voice file's
``fallback`` voice, with a warning, :attr:`Speaker.last_fallback`, ``stats.fallbacks`` and the caller's
``on_fallback``, which the daemon turns into a warning on that bulletin's events.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from radiod.audio.pcm import Pcm
from radiod.errors import RadiodError, SynthesisError, VoiceError
from radiod.speech.cache import SpeechCache, cache_key
from radiod.speech.normalize import Lexicon, default_lexicon, default_voices_dir, load_lexicon, normalize
from radiod.speech.tts import BatchEngine, Engine, engine_for
from radiod.speech.voices import Voice, load_voice

log = logging.getLogger(__name__)

SENTENCE_PAUSE_S = 0.35
"""Silence after a sentence, before the next one in the same paragraph."""
PARAGRAPH_PAUSE_S = 0.7
"""Silence after the last sentence of a line (a paragraph, or one item of a bulletin)."""
EDGE_S = 0.02
"""Silence kept before and after the speech of each sentence when trimming."""
MAX_UNIT_CHARS = 400
"""Normalized text per synthesis unit, at most (about 30 s of speech). A longer sentence is cut at a clause
boundary (comma, semicolon, colon) in its second half when it has one, else between words: a 20 000-digit
bulletin reads as one 84 000-character "sentence", and held whole (espeak-ng's WAV, the trimmed clip, the cache
entry) it took the daemon past 1 GB; cut, no unit costs more than about 1.5 MB and the first one is ready at once."""
CLAUSE_PAUSE_S = 0.2
"""Silence after a unit cut at a clause boundary, about espeak-ng's own pause at a comma (trimmed with its edges)."""
SILENCE_LEVEL = 16
"""Samples within ±16 (about -66 dBFS) are silence when trimming; espeak-ng's silence is exact zeros."""
CHUNK_BYTES = 1500
"""Text per engine run, at most (about 25 s of speech): enough to amortize espeak-ng's start-up, small enough
that several chunks keep every worker busy and that a chunk's WAV stays a couple of MB."""
MIN_CHUNK_BYTES = 300
"""Text per engine run, at least (about 5 s of speech), but for the last sentences: the shortest of the runs that
close a text (see :func:`_chunks`); espeak-ng's start-up (about 10 ms) is still small beside it."""
KEEP_UP_MARGIN_S = 0.5
"""A streamed sentence this late (after the clips before it would have finished playing) means the voice cannot
keep up: the rest goes to the fallback voice. Half a second of extra silence is a pause; more is a breakdown."""
READ_AHEAD = 4
"""Clips a stream synthesizes ahead of its listener, at most: enough to ride out one slow unit (each is at most
``MAX_UNIT_CHARS``), few enough that an hour-long bulletin is not synthesized, cached and held long before it plays."""
SLOW_FOR_S = 3600.0
"""A voice that could not keep up is streamed with its fallback from the start for this long: an emergency
bulletin should not switch voices mid-way every time."""

# A sentence ends at . ! ? … (and any closing quotes or brackets) followed by a space, unless the next word
# starts in lower case, as after "v.v." or an ellipsis in mid-sentence.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s+(?P<next>\S))")


@dataclass(frozen=True)
class SpeechStats:
    """What a :class:`Speaker` did since it was made: for tests, logs and the bench.

    Counted per distinct sentence of a text: a sentence said twice in one bulletin is looked up once.
    """

    hits: int = 0
    """Sentences served from the cache."""
    misses: int = 0
    """Sentences synthesized."""
    corrupt: int = 0
    """Cache entries found corrupt, dropped and synthesized again (each is also a miss)."""
    engine_runs: int = 0
    """Calls into the engine (one espeak-ng run per chunk of sentences)."""
    fallbacks: int = 0
    """Times a voice was replaced by its fallback voice (see :attr:`Speaker.last_fallback`)."""


@dataclass(frozen=True)
class Fallback:
    """A voice replaced by its fallback: what the daemon reports as a warning."""

    voice: str
    fallback: str
    reason: str
    """The error that made the Speaker fall back, as a technician reads it."""
    at: float
    """time.time() when it happened."""


OnFallback = Callable[[Fallback], None]
"""Told of each fallback of one text's synthesis, so its warning goes with that text (two may be synthesized at
once, and a stream falls back while it plays)."""


@dataclass(frozen=True)
class _Sentence:
    text: str
    pause_s: float  # after it


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, whitespace collapsed, without fragments that have nothing to say.

    Lines are always separate (a bulletin puts one item per line); commas, semicolons and colons stay
    inside the sentence, where the engine makes its own short pause. A sentence over ``MAX_UNIT_CHARS`` is
    cut into units of at most that length (see there), each then treated as a sentence of its own.
    """
    return [s.text for s in _split(text)]


def _split(text: str) -> list[_Sentence]:
    sentences: list[_Sentence] = []
    for line in text.splitlines():
        pieces, start = [], 0
        for match in _SENTENCE_END.finditer(line):
            if not match["next"].islower():
                pieces.append(line[start : match.end()])
                start = match.end()
        pieces.append(line[start:])
        spoken = [" ".join(p.split()) for p in pieces if any(ch.isalnum() for ch in p)]
        for i, sentence in enumerate(spoken):
            sentences += _units(sentence, PARAGRAPH_PAUSE_S if i == len(spoken) - 1 else SENTENCE_PAUSE_S)
    return sentences


_CLAUSE_END = (",", ";", ":")


def _units(sentence: str, pause_s: float) -> list[_Sentence]:
    """``sentence`` (whitespace collapsed) in units of at most ``MAX_UNIT_CHARS``, the last followed by
    ``pause_s``; a cut goes at the last clause boundary in the second half of a unit, else between words, and
    only a "word" longer than a unit is cut inside."""
    if len(sentence) <= MAX_UNIT_CHARS:
        return [_Sentence(sentence, pause_s)]
    words = [w[i : i + MAX_UNIT_CHARS] for w in sentence.split(" ") for i in range(0, len(w), MAX_UNIT_CHARS)]
    units: list[_Sentence] = []
    current: list[str] = []
    for word in words:
        if current and len(" ".join(current)) + 1 + len(word) > MAX_UNIT_CHARS:
            cut, kept = len(current), -1
            for i, done in enumerate(current):
                kept += 1 + len(done)
                if done.endswith(_CLAUSE_END) and kept >= MAX_UNIT_CHARS // 2:
                    cut = i + 1
            unit = " ".join(current[:cut])
            units.append(_Sentence(unit, CLAUSE_PAUSE_S if unit.endswith(_CLAUSE_END) else 0.0))
            current = current[cut:]
        current.append(word)
    units.append(_Sentence(" ".join(current), pause_s))
    return units


class Speaker:
    """Speaks texts with the voices in ``voices_dir``, caching sentences under ``cache_dir`` (None: no cache).

    ``workers`` is the number of engine runs at once (0: one per CPU core); ``timeout_s`` the longest one
    sentence may take, so a run over n sentences may take n times that.
    """

    def __init__(
        self,
        voices_dir: Path,
        cache_dir: Path | None,
        *,
        workers: int = 0,
        timeout_s: float = 60.0,
        cache_max_mb: int = 512,
    ) -> None:
        self.voices_dir = Path(voices_dir)
        self.workers = workers or os.cpu_count() or 1
        self.timeout_s = timeout_s
        self.cache = SpeechCache(Path(cache_dir), cache_max_mb) if cache_dir is not None else None
        self._engines: dict[Voice, Engine] = {}
        self._stats = SpeechStats()
        self._stats_lock = threading.Lock()  # speak() runs on the render pool, stream() on its own thread
        self._lexicon: Lexicon | None = None
        self._too_slow: dict[str, float] = {}  # voice id -> time.monotonic() when it could not keep up
        self._last_split: tuple[str, str, list[_Sentence]] | None = None  # (text, region, sentences)
        self.last_fallback: Fallback | None = None
        """The latest time a voice was replaced by its fallback; None if it never was."""

    @property
    def lexicon(self) -> Lexicon:
        """The pronunciation lexicon of ``voices_dir``, so a technician's own entries are read; loaded once."""
        if self._lexicon is None:
            same = self.voices_dir.resolve() == default_voices_dir().resolve()
            self._lexicon = default_lexicon() if same else load_lexicon(self.voices_dir)
        return self._lexicon

    @property
    def stats(self) -> SpeechStats:
        return self._stats

    def voice(self, voice_id: str) -> Voice:
        """The voice file ``voice_id``, read afresh so an edited rate or pitch applies to the next bulletin."""
        return load_voice(voice_id, self.voices_dir)

    def sentences(self, text: str, voice_id: str) -> list[str]:
        """The sentences ``speak`` would synthesize: NFC, normalized for the voice's region, split."""
        return [s.text for s in self._sentences(text, self.voice(voice_id))]

    def sentence_keys(self, text: str, voice_id: str) -> list[tuple[str, float]] | None:
        """(cache key, pause after it) of each sentence :meth:`speak` would give, without synthesizing: what a
        finished programme of ``text`` is keyed on (:mod:`radiod.node.programme_cache`). None when the voice's
        engine cannot run here, so that a programme read by its fallback voice is never taken for its own.
        Raises :class:`VoiceError` for an unknown voice."""
        voice = self.voice(voice_id)
        with ThreadPoolExecutor(1, thread_name_prefix="engine") as pool:
            # Finding the engine and its version may run programs (espeak-ng --voices, --version: ~15 ms), which
            # a second core runs while this thread normalizes the text.
            ready = pool.submit(self.engine_version, voice)
            sentences = self._sentences(text, voice)
            version = ready.result()
        if version is None:
            return None
        if not sentences:
            return []
        pauses = [s.pause_s for s in sentences[:-1]] + [0.0]
        return [(cache_key(s.text, voice, version), pause) for s, pause in zip(sentences, pauses, strict=True)]

    def speak(self, text: str, voice_id: str, *, on_fallback: OnFallback | None = None) -> list[Pcm]:
        """One int16 clip per sentence, in order, each followed by its pause (see the module doc).

        A voice whose engine cannot run here, or fails on this text, is replaced by its ``fallback`` voice for
        the whole text, with a warning (see the module doc), told to ``on_fallback`` if given.
        Raises :class:`VoiceError` (unknown voice, no usable engine) or :class:`SynthesisError`.
        """
        tried: list[str] = []
        voice, engine = self._resolve(self.voice(voice_id), tried, on_fallback)
        while True:
            try:
                return self._speak(text, voice, engine)
            except SynthesisError as exc:
                voice, engine = self._resolve(self._fall_back(voice, exc, tried, on_fallback), tried, on_fallback)

    def stream(
        self, text: str, voice_id: str, *, on_fallback: OnFallback | None = None, keep_up: bool = True
    ) -> Iterator[Pcm]:
        """The clips :meth:`speak` returns, one at a time as each is ready, so the first can play while the rest
        is synthesized (sentences from the cache come at once).

        A thread synthesizes the sentences in order, ahead of the caller, who is taken to play each clip as it
        gets it, back to back from the first. A sentence not ready ``KEEP_UP_MARGIN_S`` after the clips before
        it would have finished playing means the voice cannot keep up: the rest is read by its fallback voice
        (without one, the stream waits, and the listener hears a gap), as is the rest after a synthesis
        failure. A voice that could not keep up streams with its fallback from the start for ``SLOW_FOR_S``.
        Closing the iterator early (a bulletin stopped) stops the thread after its current sentence.
        Each fallback, also one in the middle of the stream, is told to ``on_fallback`` if given.
        Raises :class:`VoiceError` here, and :class:`SynthesisError` from the iteration when no voice is left.
        ``keep_up=False``: no deadline (a programme rendered ahead reads its speech so, one clip at a time).
        """
        tried: list[str] = []
        voice, engine = self._resolve(self.voice(voice_id), tried, on_fallback)
        slow_since = self._too_slow.get(voice.id, -math.inf)
        if keep_up and voice.fallback not in (None, *tried) and time.monotonic() - slow_since < SLOW_FOR_S:
            error = SynthesisError(f"voice '{voice.id}' could not keep up with real time in a recent stream")
            voice, engine = self._resolve(self._fall_back(voice, error, tried, on_fallback), tried, on_fallback)
        return self._stream(self._sentences(text, voice), voice, engine, tried, on_fallback, keep_up=keep_up)

    def speak_iter(self, text: str, voice_id: str, *, on_fallback: OnFallback | None = None) -> Iterator[Pcm]:
        """The clips :meth:`speak` returns, each handed out once it and those before it are ready: synthesized in
        parallel runs as :meth:`speak` does (not one sentence at a time, as :meth:`stream`), so that a programme can
        be rendered while the rest of its speech is synthesized (``radiod speak -o``). A voice that fails before
        the first clip is handed out is replaced by its fallback for the whole text, as in :meth:`speak`; after,
        for the rest of it, as in :meth:`stream`. Closing the iterator early cancels the runs not yet started.
        Raises :class:`VoiceError` here, and :class:`SynthesisError` from the iteration when no voice is left.
        """
        tried: list[str] = []
        voice, engine = self._resolve(self.voice(voice_id), tried, on_fallback)
        return self._speak_iter(self._sentences(text, voice), voice, engine, tried, on_fallback)

    def _speak_iter(
        self,
        sentences: list[_Sentence],
        voice: Voice,
        engine: Engine,
        tried: list[str],
        on_fallback: OnFallback | None,
    ) -> Iterator[Pcm]:
        """:meth:`speak_iter` from the point its voice is chosen; a failure hands what is left to the fallback."""
        given = 0
        try:
            for clip in self._clips(sentences, voice, engine):
                yield clip
                given += 1
        except SynthesisError as exc:
            fallback = self._fall_back(voice, exc, tried, on_fallback)
            voice, engine = self._resolve(fallback, tried, on_fallback)
            yield from self._speak_iter(sentences[given:], voice, engine, tried, on_fallback)

    def _speak(self, text: str, voice: Voice, engine: Engine) -> list[Pcm]:
        """All the clips of ``text`` read by ``voice``; a failure is the caller's to fall back from."""
        return list(self._clips(self._sentences(text, voice), voice, engine))

    def _clips(self, sentences: list[_Sentence], voice: Voice, engine: Engine) -> Iterator[Pcm]:
        """Each sentence's clip in order, as soon as it is ready: the cached ones at once, the others synthesized
        in parallel chunks (see the module doc), a chunk's clips once that chunk and those before it are read."""
        if not sentences:
            return
        started = time.monotonic()
        pauses = [s.pause_s for s in sentences[:-1]] + [0.0]
        padding: dict[str, float] = {}  # each distinct sentence, with the longest pause it is followed by
        for sentence, pause in zip(sentences, pauses, strict=True):
            padding[sentence.text] = max(padding.get(sentence.text, 0.0), pause)
        version = engine.version()
        keys = {spoken: cache_key(spoken, voice, version) for spoken in padding}
        corrupt_before = self.cache.corrupt if self.cache else 0
        padded = self._cached(keys, padding)  # each distinct sentence's clip followed by its padding
        hits = len(padded)
        missing = [spoken for spoken in padding if spoken not in padded]
        chunks = _chunks(missing, self.workers)
        later = Counter(s.text for s in sentences)  # a clip is let go after its sentence's last time
        pool = ThreadPoolExecutor(min(self.workers, len(chunks)), thread_name_prefix="speech") if chunks else None
        failed = False
        try:
            # The workers only run the engine; each chunk is finished and cached here as it arrives, while the next
            # ones are read, so no worker sits in Python with its core idle. map() drops each chunk's result once it
            # is taken: a 9-minute text is held once, not twice.
            read = (lambda chunk: self._read(engine, voice, chunk), chunks)
            arriving = zip(chunks, pool.map(*read), strict=True) if pool else None
            for sentence, pause in zip(sentences, pauses, strict=True):
                while sentence.text not in padded:
                    assert arriving is not None  # a sentence not cached is in a chunk
                    chunk, raw = next(arriving)
                    padded.update(zip(chunk, self._keep(voice, chunk, raw, keys, padding), strict=True))
                later[sentence.text] -= 1
                clip = padded[sentence.text] if later[sentence.text] else padded.pop(sentence.text)
                yield _shorten(clip, padding[sentence.text], pause)
        except SynthesisError:
            failed = True  # counted by the voice that reads the text instead
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
                if self.cache:
                    self.cache.evict()
            if not failed:
                self._count(
                    hits=hits,
                    misses=len(missing),
                    corrupt=(self.cache.corrupt if self.cache else 0) - corrupt_before,
                    engine_runs=len(chunks),
                )
        log.info(
            "voice %s: %d sentences, %d from cache, %d synthesized in %d runs, %.2f s",
            voice.id, len(sentences), hits, len(missing), len(chunks), time.monotonic() - started,
        )  # fmt: skip

    def _stream(
        self,
        sentences: list[_Sentence],
        voice: Voice,
        engine: Engine,
        tried: list[str],
        on_fallback: OnFallback | None,
        *,
        keep_up: bool = True,
    ) -> Iterator[Pcm]:
        """:meth:`stream` from the point its voice is chosen; follows the fallback voice for the rest."""
        if not sentences:
            return
        pauses = [s.pause_s for s in sentences[:-1]] + [0.0]
        padding: dict[str, float] = {}
        for sentence, pause in zip(sentences, pauses, strict=True):
            padding[sentence.text] = max(padding.get(sentence.text, 0.0), pause)
        version = engine.version()
        keys = {spoken: cache_key(spoken, voice, version) for spoken in padding}
        ready: queue.Queue[Pcm | Exception] = queue.Queue(maxsize=READ_AHEAD)
        stop = threading.Event()
        work = {"keys": keys, "padding": padding, "ready": ready, "stop": stop}
        threading.Thread(
            target=self._produce, args=(sentences, voice, engine), kwargs=work, name="speech-stream", daemon=True
        ).start()
        try:
            due: float | None = None  # when the clips handed out so far will have finished playing
            for k, (sentence, pause) in enumerate(zip(sentences, pauses, strict=True)):
                wait_s = None if due is None or not keep_up else max(0.0, due + KEEP_UP_MARGIN_S - time.monotonic())
                try:
                    item = ready.get(timeout=wait_s)
                except queue.Empty:
                    self._too_slow[voice.id] = time.monotonic()
                    item = SynthesisError(
                        f"voice '{voice.id}' cannot keep up with real time: sentence {k + 1} of {len(sentences)} was "
                        f"not ready {KEEP_UP_MARGIN_S:g} s after sentence {k} finished playing"
                    )
                    if voice.fallback is None or voice.fallback in tried:
                        log.warning("%s, and it has no fallback voice: the listeners hear a gap", item)
                        item = ready.get()
                if isinstance(item, SynthesisError):
                    stop.set()  # the voice is abandoned: it must not compete with its fallback for the CPU
                    fallback, fallback_engine = self._resolve(
                        self._fall_back(voice, item, tried, on_fallback), tried, on_fallback
                    )
                    rest = sentences[k:]
                    yield from self._stream(rest, fallback, fallback_engine, tried, on_fallback, keep_up=keep_up)
                    return
                if isinstance(item, Exception):
                    raise item
                clip = _shorten(item, padding[sentence.text], pause)
                now = time.monotonic()
                due = (now if due is None else max(due, now)) + len(clip.samples) / clip.rate
                yield clip
        finally:
            stop.set()

    def _produce(
        self,
        sentences: list[_Sentence],
        voice: Voice,
        engine: Engine,
        *,
        keys: dict[str, str],
        padding: dict[str, float],
        ready: queue.Queue[Pcm | Exception],
        stop: threading.Event,
    ) -> None:
        """Put each sentence's padded clip on ``ready`` in order (the stream's thread), until done or ``stop``.

        An exception ends the thread and is put on ``ready`` instead, so the stream re-raises it (or falls back
        on a SynthesisError) rather than waiting for a clip that will never come.
        """
        done: dict[str, Pcm] = {}  # clips of sentences said again later, until their last time
        later = Counter(s.text for s in sentences)
        hits = misses = 0
        corrupt_before = self.cache.corrupt if self.cache else 0
        try:
            for sentence in sentences:
                if stop.is_set():
                    return
                later[sentence.text] -= 1
                clip = done.pop(sentence.text, None) if later[sentence.text] == 0 else done.get(sentence.text)
                if clip is None and self.cache:
                    clip = self.cache.get(keys[sentence.text], padding[sentence.text])
                    hits += clip is not None
                if clip is None:
                    (clip,) = self._synthesize(engine, voice, [sentence.text], keys, padding)
                    misses += 1
                if later[sentence.text]:
                    done[sentence.text] = clip
                _hand_over(ready, clip, stop)
        except Exception as exc:  # forwarded to the stream, which raises it: not hidden
            _hand_over(ready, exc, stop)
        finally:
            corrupt = (self.cache.corrupt if self.cache else 0) - corrupt_before
            self._count(hits=hits, misses=misses, corrupt=corrupt, engine_runs=misses)
            if self.cache and misses:
                self.cache.evict()

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            self._stats = replace(self._stats, **{name: getattr(self._stats, name) + n for name, n in deltas.items()})

    def _cached(self, keys: dict[str, str], padding: dict[str, float]) -> dict[str, Pcm]:
        """The sentences the cache has, read with their padding."""
        found: dict[str, Pcm] = {}
        if self.cache:
            for spoken, key in keys.items():
                clip = self.cache.get(key, padding[spoken])
                if clip is not None:
                    found[spoken] = clip
        return found

    def _sentences(self, text: str, voice: Voice) -> list[_Sentence]:
        """The text normalized for the voice's region and split; the last text's result is kept, since a programme
        first asks for the keys of the sentences (:meth:`sentence_keys`) and then speaks them."""
        last = self._last_split
        if last is not None and last[0] == text and last[1] == voice.region:
            return last[2]
        sentences = _split(normalize(unicodedata.normalize("NFC", text), region=voice.region, lexicon=self.lexicon))
        self._last_split = (text, voice.region, sentences)
        return sentences

    def _resolve(self, voice: Voice, tried: list[str], on_fallback: OnFallback | None) -> tuple[Voice, Engine]:
        """The voice and its engine, following ``fallback`` voices while an engine cannot run here; ``tried``
        collects the voices used, so that a loop of fallbacks ends."""
        while True:
            tried.append(voice.id)
            try:
                return voice, self._engine(voice)
            except VoiceError as exc:
                voice = self._fall_back(voice, exc, tried, on_fallback)

    def _fall_back(self, voice: Voice, error: RadiodError, tried: list[str], on_fallback: OnFallback | None) -> Voice:
        """The fallback voice of ``voice``, logged and recorded; ``error`` is raised when there is none left."""
        if voice.fallback is None or voice.fallback in tried:
            raise error
        log.warning("%s; speaking with its fallback voice '%s' instead", error, voice.fallback)
        self.last_fallback = Fallback(voice.id, voice.fallback, str(error), time.time())
        self._count(fallbacks=1)
        if on_fallback is not None:
            on_fallback(self.last_fallback)
        return self.voice(voice.fallback)

    def engine_version(self, voice: Voice) -> str | None:
        """The version of ``voice``'s engine; None when the engine cannot run here."""
        try:
            return self._engine(voice).version()
        except VoiceError:
            return None

    def _engine(self, voice: Voice) -> Engine:
        if voice not in self._engines:
            self._engines[voice] = engine_for(voice)
        return self._engines[voice]

    def _synthesize(
        self, engine: Engine, voice: Voice, chunk: Sequence[str], keys: dict[str, str], padding: dict[str, float]
    ) -> list[Pcm]:
        """One engine run over a chunk: clips trimmed, scaled, stored in the cache, and returned followed by
        their padding."""
        return self._keep(voice, chunk, self._read(engine, voice, chunk), keys, padding)

    def _read(self, engine: Engine, voice: Voice, chunk: Sequence[str]) -> list[Pcm]:
        """The engine's raw clips of a chunk, in one run when it can batch (in a worker thread)."""
        timeout_s = self.timeout_s * len(chunk)
        if isinstance(engine, BatchEngine):
            return engine.synthesize_many(chunk, voice, timeout_s)
        return [engine.synthesize(text, voice, self.timeout_s) for text in chunk]

    def _keep(
        self, voice: Voice, chunk: Sequence[str], raw: Sequence[Pcm], keys: dict[str, str], padding: dict[str, float]
    ) -> list[Pcm]:
        """The raw clips of a chunk trimmed, scaled and stored in the cache; returned followed by their padding."""
        clips = []
        for text, pcm in zip(chunk, raw, strict=True):
            clip, speech = _finish(pcm, voice, text, padding[text])
            if self.cache:
                self.cache.put(keys[text], speech)
            clips.append(clip)
        if self.cache:
            self.cache.evict_if_grown()
        return clips


def _hand_over(ready: queue.Queue[Pcm | Exception], item: Pcm | Exception, stop: threading.Event) -> None:
    """Put ``item`` on the stream's bounded queue, waiting for room, unless the stream is stopped meanwhile."""
    while not stop.is_set():
        try:
            ready.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _chunks(texts: list[str], workers: int) -> list[list[str]]:
    """Consecutive sentences in runs of text, none much over ``CHUNK_BYTES``, shrinking towards the end.

    Each run takes about what is left divided by the workers (at most ``CHUNK_BYTES``, at least
    ``MIN_CHUNK_BYTES``): the first runs amortize espeak-ng's start-up, and the last ones are short, so the
    workers finish at about the same time instead of one reading a whole chunk while the others wait.
    Every worker gets a run when there are enough sentences.
    """
    sizes = [len(t.encode()) for t in texts]
    left = sum(sizes)
    chunks: list[list[str]] = []
    filled = target = 0.0
    for i, (text, size) in enumerate(zip(texts, sizes, strict=True)):
        idle = workers - len(chunks)  # workers without a run yet
        if not chunks or filled + size / 2 > target or len(texts) - i <= idle:
            chunks.append([])
            filled = 0.0
            target = min(CHUNK_BYTES, max(MIN_CHUNK_BYTES, left / workers))
            if len(chunks) < workers:  # the first round gives every worker its share
                target = min(target, left / (workers - len(chunks) + 1))
        chunks[-1].append(text)
        filled += size
        left -= size
    return chunks


def _finish(pcm: Pcm, voice: Voice, text: str, pad_s: float) -> tuple[Pcm, Pcm]:
    """The engine's clip trimmed to ``EDGE_S`` of silence, scaled by the voice's volume, in a new array
    followed by ``pad_s`` of silence; and the same without the padding (a view), for the cache."""
    samples = pcm.samples
    loud = (samples > SILENCE_LEVEL) | (samples < -SILENCE_LEVEL)
    first, last = int(loud.argmax()), len(loud) - 1 - int(loud[::-1].argmax())
    if not loud[first]:
        raise SynthesisError(f"voice '{voice.id}' produced no audible speech for {text[:60]!r}")
    edge = round(EDGE_S * pcm.rate)
    speech = samples[max(0, first - edge) : last + 1 + edge]
    padded = np.zeros(len(speech) + round(pad_s * pcm.rate), dtype=np.int16)
    if voice.volume == 1.0:
        padded[: len(speech)] = speech
    else:
        padded[: len(speech)] = np.clip(np.rint(speech * np.float32(voice.volume)), -32768, 32767)
    return Pcm(padded, pcm.rate), Pcm(padded[: len(speech)], pcm.rate)


def _shorten(padded: Pcm, padded_s: float, pause_s: float) -> Pcm:
    """``padded`` with only ``pause_s`` of its ``padded_s`` of trailing silence: a view, not a copy."""
    extra = round(padded_s * padded.rate) - round(pause_s * padded.rate)
    return padded if extra == 0 else Pcm(padded.samples[: len(padded.samples) - extra], padded.rate)
