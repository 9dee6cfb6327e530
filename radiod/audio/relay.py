"""A live stream (the district or provincial radio) as a programme: decoded on its own thread, levelled as it
plays, and ended the moment its signal is gone.

:class:`LiveSource` decodes the stream (:func:`radiod.audio.decode.decode`) on a thread into a bounded buffer, so
a stalled server is seen as no data rather than as a play that hangs, and a reader that falls behind drops the
oldest audio instead of drifting ever further from live. A connection that breaks is opened again half a second
later, then with a wait that doubles (up to ``reconnect_max_s``), also while the amplifier is on: a short network
cut costs a moment of silence, not a relay switch-off.

:class:`LiveProgramme` is one stretch of a relay through the station: an optional spoken introduction, then the
stream. It ends by itself at the relay's end time, or once no audio above ``silence_dbfs`` has arrived for
``no_signal_s`` (no data, or silence), telling which in :attr:`LiveProgramme.ended`; the station then switches
the amplifier off, so it is never left on over silence longer than that (a TT39 vendor requirement). While the
signal lasts it keeps the amplifier's watchdog from switching off a relay longer than the board's ``max_on_s``.

Loudness: a live stream's integrated loudness is never known in advance, so the gain starts from the loudness of
the audio buffered when the stream starts and then follows its short-term loudness (BS.1770, the last 3 s) toward
the target, slowly (:data:`AGC_DB_PER_S`) and within :data:`MAX_GAIN_DB`, so music keeps its dynamics and a
silence is not lifted into noise; the peak limiter (:mod:`radiod.audio.limiter`) keeps every sample within the
ceiling.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np

from radiod.audio.decode import OPEN_TIMEOUT_S, decode
from radiod.audio.limiter import limit
from radiod.audio.loudness import LoudnessMeter, ShortTermMeter
from radiod.audio.render import Programme
from radiod.errors import MediaError

log = logging.getLogger(__name__)

BUFFER_S = 8.0
"""Audio held ahead of the player at most: more than Icecast's burst on connect (64 KiB, 4 s at 128 kbit/s)."""
LAG_S = 1.0
"""When the stream starts playing, the buffered audio older than this is dropped: the relay plays live, a second
behind, rather than from the start of the server's burst."""
PREBUFFER_S = 0.3
"""After running dry, playing resumes once this much has arrived again, so network jitter does not chop the audio
into 20 ms pieces."""
SIGNAL_S = 0.5
"""Audio above the silence threshold needed before a relay starts (or starts again): a click does not switch the
amplifier on."""
RECONNECT_MIN_S = 0.5
"""The first wait before opening a lost stream again; it doubles at each failure up to ``reconnect_max_s``."""
CHUNK_S = 0.1
"""Audio levelled and limited at a time: longer than the limiter's hold, short enough to stop promptly."""
MAX_GAIN_DB = 20.0
"""The gain toward the target never goes beyond this either way: a quiet passage is not lifted into noise."""
AGC_DB_PER_S = 0.5
"""How fast the gain follows the stream's short-term loudness: slow, so music keeps its dynamics."""
AGC_EVERY_S = 0.5
"""How often the gain is corrected."""
KEEP_ON_EVERY_S = 5.0
"""How often a relay on the air with signal tells the amplifier's watchdog it is alive (the watchdog's shortest
``max_on_s`` is 10 s)."""
AGC_GATE_LUFS = -45.0
"""Below this short-term loudness (a pause, a fade) the gain is held, not raised."""


def level_dbfs(block: np.ndarray) -> float:
    """RMS level of ``block`` in dBFS (-inf for digital silence or an empty block)."""
    if not len(block):
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


class LiveSource:
    """A stream decoded on its own thread into a bounded buffer, reconnecting with backoff until :meth:`close`.

    ``last_signal`` is the monotonic time the newest block above ``silence_dbfs`` arrived (None: none yet), so
    a reader can tell how long the signal has been gone however much audio is still buffered; a stalled
    connection is given up after ``timeout_s`` without data and opened again. ``problem`` is why the stream is
    lost now (None while it sends audio), for logs.
    """

    def __init__(self, url: str, rate: int, *, silence_dbfs: float, reconnect_max_s: float,
                 timeout_s: float = OPEN_TIMEOUT_S, buffer_s: float = BUFFER_S) -> None:
        self.url = url
        self.rate = rate
        self.silence_dbfs = silence_dbfs
        self.last_signal: float | None = None
        self.problem: str | None = None
        self._timeout_s = timeout_s
        self._reconnect_max_s = reconnect_max_s
        self._max_samples = round(buffer_s * rate)
        self._blocks: deque[tuple[np.ndarray, bool]] = deque()  # (samples, above the silence threshold)
        self._held = 0
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay-decode", daemon=True)

    def start(self) -> LiveSource:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop decoding; the thread leaves at its next block, or when its read times out (``timeout_s``)."""
        self._closed.set()
        with self._cond:
            self._cond.notify_all()

    def signal_age(self) -> float:
        """Seconds since the last block with signal arrived (inf if none has)."""
        return math.inf if self.last_signal is None else time.monotonic() - self.last_signal

    def buffered_s(self) -> float:
        with self._cond:
            return self._held / self.rate

    def take(self) -> np.ndarray | None:
        """The oldest buffered block, or None if the buffer is empty (never waits)."""
        with self._cond:
            if not self._blocks:
                return None
            block, _signal = self._blocks.popleft()
            self._held -= len(block)
            return block

    def keep_newest(self, seconds: float) -> None:
        """Drop buffered audio older than the newest ``seconds``."""
        with self._cond:
            while self._blocks and self._held - len(self._blocks[0][0]) >= seconds * self.rate:
                self._held -= len(self._blocks.popleft()[0])

    def buffered(self) -> list[np.ndarray]:
        """A copy of what is buffered, oldest first (to measure it)."""
        with self._cond:
            return [block for block, _signal in self._blocks]

    def wait_for_signal(self, stop: threading.Event, until: float) -> bool:
        """Wait until the buffer starts with :data:`SIGNAL_S` of audio with signal, dropping silence ahead of it
        (so a relay that starts again starts with its audio, not with what was silent before). False if ``stop``
        was set or the wall clock reached ``until`` first."""
        need = round(SIGNAL_S * self.rate)
        with self._cond:
            while not stop.is_set() and time.time() < until:
                while self._blocks and not self._blocks[0][1]:
                    self._held -= len(self._blocks.popleft()[0])
                if self._held >= need and self._signal_share(need) > 0.5:
                    return True
                self._cond.wait(0.1)
        return False

    def _signal_share(self, need: int) -> float:
        """Of the first ``need`` buffered samples, the share in blocks with signal (under the lock)."""
        counted = with_signal = 0
        for block, signal in self._blocks:
            counted += len(block)
            with_signal += len(block) if signal else 0
            if counted >= need:
                break
        return with_signal / counted if counted else 0.0

    def _put(self, block: np.ndarray) -> bool:
        signal = level_dbfs(block) > self.silence_dbfs
        with self._cond:
            if signal:
                self.last_signal = time.monotonic()
            self._blocks.append((block, signal))
            self._held += len(block)
            while self._held > self._max_samples:
                self._held -= len(self._blocks.popleft()[0])
            self._cond.notify_all()
        return signal

    def _run(self) -> None:
        wait = RECONNECT_MIN_S
        while not self._closed.is_set():
            heard = False
            try:
                with contextlib.closing(decode(self.url, self.rate, timeout_s=self._timeout_s)) as blocks:
                    for block in blocks:
                        if self._closed.is_set():
                            return
                        self.problem = None
                        heard = self._put(block) or heard
                self.problem = "the stream ended"
            except MediaError as exc:
                self.problem = str(exc)
            if heard:  # it played: a new loss starts the backoff again
                wait = RECONNECT_MIN_S
            log.info("relay %s: %s; connecting again in %.1f s", self.url, self.problem, wait)
            if self._closed.wait(wait):
                return
            wait = min(wait * 2, self._reconnect_max_s)


class LiveProgramme(Programme):
    """One stretch of a relay: ``intro`` (spoken, levelled as any programme) then the live stream, levelled
    toward ``target_lufs`` and scaled by ``volume``; see the module doc. It ends at the wall-clock ``ends_at``
    (:attr:`ended` "end") or ``no_signal_s`` after the signal was last heard ("no_signal")."""

    def __init__(self, source: LiveSource, *, ends_at: float, no_signal_s: float, target_lufs: float,
                 volume: float = 1.0, intro: Programme | None = None,
                 keep_on: Callable[[], None] | None = None) -> None:
        super().__init__(source.rate, 0, [], -math.inf, 0.0)
        self.source = source
        self.ends_at = ends_at
        self.no_signal_s = no_signal_s
        self.target_lufs = target_lufs
        self.volume = volume
        self.intro = intro
        self.ended: str | None = None
        self._keep_on = keep_on
        self._kept_on = time.monotonic()
        self._meter = ShortTermMeter(source.rate)
        self._since_agc = 0

    def prime(self) -> None:
        if self.intro is not None:
            self.intro.prime()

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        """Blocks of ``size`` samples in real time: the intro, then the stream (silence while it runs dry, for
        at most ``no_signal_s``). Ends as the class doc says, within one block."""
        if size < 1:
            raise ValueError(f"block size must be >= 1, got {size}")
        if self.intro is not None:
            for block in self.intro.blocks(size):
                if self._over():
                    return
                yield block
        self.source.keep_newest(LAG_S)
        self.gain_db = self._first_gain()
        pending = np.zeros(0, dtype=np.float32)
        flowing = False
        while not self._over():
            while len(pending) < size:
                if not flowing and self.source.buffered_s() < PREBUFFER_S:
                    break
                chunk = self._chunk()
                if chunk is None:
                    flowing = False
                    break
                flowing = True
                pending = np.concatenate([pending, chunk])
            if len(pending) >= size:
                out, pending = pending[:size], pending[size:]
            else:  # run dry: what is left, then silence
                out = np.concatenate([pending, np.zeros(size - len(pending), dtype=np.float32)])
                pending = pending[:0]
            yield out

    def _over(self) -> bool:
        """Whether the relay is over (see :attr:`ended`); while it is not, every :data:`KEEP_ON_EVERY_S` it calls
        ``keep_on`` (the amplifier watchdog's :meth:`~radiod.audio.relays.Relays.keep_on`)."""
        if time.time() >= self.ends_at:
            self.ended = "end"
        elif self.source.signal_age() > self.no_signal_s:
            self.ended = "no_signal"
        elif self._keep_on is not None and time.monotonic() - self._kept_on >= KEEP_ON_EVERY_S:
            self._keep_on()
            self._kept_on = time.monotonic()
        return self.ended is not None

    def _first_gain(self) -> float:
        """The gain that brings the audio buffered at the start to the target (0 dB if it is too short)."""
        meter = LoudnessMeter()
        for block in self.source.buffered():
            meter.feed(block, self.rate)
        lufs = meter.lufs()
        return _bounded(self.target_lufs - lufs) if math.isfinite(lufs) else 0.0

    def _chunk(self) -> np.ndarray | None:
        """About :data:`CHUNK_S` of the stream (less if less is buffered), levelled and limited; None if dry."""
        taken: list[np.ndarray] = []
        count = 0
        while count < CHUNK_S * self.rate and (block := self.source.take()) is not None:
            taken.append(block)
            count += len(block)
        if not taken:
            return None
        x = np.concatenate(taken)
        before = self.gain_db
        self._follow(x)
        gains = 10.0 ** (np.linspace(before, self.gain_db, len(x), dtype=np.float32) / 20.0)
        return limit(x * gains * np.float32(self.volume), self.rate)

    def _follow(self, x: np.ndarray) -> None:
        """Move the gain toward the target by the short-term loudness, at most :data:`AGC_DB_PER_S`."""
        self._meter.feed(x)
        self._since_agc += len(x)
        if self._since_agc < AGC_EVERY_S * self.rate:
            return
        step = AGC_DB_PER_S * self._since_agc / self.rate
        self._since_agc = 0
        loudness = self._meter.lufs()
        if loudness > AGC_GATE_LUFS:
            wanted = _bounded(self.target_lufs - loudness)
            self.gain_db += max(-step, min(step, wanted - self.gain_db))


def _bounded(gain_db: float) -> float:
    return max(-MAX_GAIN_DB, min(MAX_GAIN_DB, gain_db))
