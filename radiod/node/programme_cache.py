"""On-disk cache of finished programmes, so the same bulletin is not rendered again every day.

The daily 6:30 bulletin is the same text day after day: its sentences already come from the speech cache, but
levelling, resampling and limiting a 9-minute programme still cost seconds on a Pi. So the finished programme
(int16 at the output rate, exactly what the output would be given) is kept in the speech cache's folder under
``programmes/``, keyed by everything that changes a sample of it: each sentence's speech-cache key (which holds
the voice's engine parameters and engine version) and the pause after it, the render options (rate, chimes,
repeats, gap, loudness target, volume, fades), the preamble and chime audio, and the versions of the audio
libraries and of this rendering (``RENDER_VERSION``).

An entry is a 16-bit mono WAV with one extra chunk (``rdpg``: a CRC-32 of the samples, the speech's measured
loudness and gain). It is written while the programme is first played (to a temporary name, renamed into place
only once the whole programme has gone through), so an interrupted play leaves nothing. A hit is checked
(header, length, CRC) before it is handed out, reading the file in blocks: a corrupt or truncated entry is
deleted and is a miss, never a bad play. The programme is then read from the file in blocks as it plays, never
held whole in memory. Entries count against the speech cache's ``max_mb`` and share its least-recently-used
eviction (:class:`~radiod.speech.cache.SpeechCache`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyebur128
import soxr
from zlib_ng.zlib_ng import crc32  # zlib's CRC-32, several times faster (SIMD; the CRC instructions of a Pi's Arm)

from radiod.audio.pcm import to_int16
from radiod.audio.render import Programme, RenderOptions
from radiod.config import PROGRAMMES_DIR
from radiod.node.programme_file import (
    HEADER,
    READ_BYTES,
    CorruptProgramme,
    EntryHeader,
    check,
    entry_path,
    header_bytes,
    write_plain_wav,
)
from radiod.speech.cache import SpeechCache

log = logging.getLogger(__name__)

RENDER_VERSION = 2
"""Bump when rendering changes what a programme sounds like (levelling, limiter, fades, layout, default chimes),
so programmes rendered by older code are never replayed."""

MAX_SHARE = 0.25
"""A programme larger than this share of the cache's bound is not kept: it would push out the sentences."""

_READ_SAMPLES = READ_BYTES // 2  # samples read at a time when playing an entry


def programme_key(speech: Sequence[tuple[str, float]], opts: RenderOptions) -> str:
    """The entry name of a programme of ``speech`` ((speech-cache key, pause after it) of each sentence, in order)
    rendered with ``opts``."""
    settings = {f.name: getattr(opts, f.name) for f in fields(opts) if f.name not in ("chimes", "preamble")}
    audio = hashlib.sha256()
    for clip in (*(opts.chimes or ()), *opts.preamble):
        audio.update(f"{clip.rate}/{clip.samples.dtype.str}/{len(clip.samples)}:".encode())
        audio.update(np.ascontiguousarray(clip.samples).tobytes())
    identity = {
        "render_version": RENDER_VERSION,
        "libraries": [np.__version__, soxr.__version__, pyebur128.__version__],  # they can change the samples
        "speech": [list(s) for s in speech],
        "settings": settings,
        "default_chimes": opts.chimes is None,
        "chimes_and_preamble": audio.hexdigest(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class ProgrammeCache:
    """Finished programmes in ``speech_cache``'s folder, within its size bound."""

    def __init__(self, speech_cache: SpeechCache) -> None:
        self.speech_cache = speech_cache
        self.directory = speech_cache.directory / PROGRAMMES_DIR
        self.corrupt = 0
        """Entries found corrupt and dropped since this cache was opened."""

    def path(self, key: str) -> Path:
        return entry_path(self.directory, key)

    def get(self, key: str) -> CachedProgramme | None:
        """The programme stored under ``key``, checked whole, or None (none, or corrupt and now deleted)."""
        path = self.path(key)
        try:
            file = path.open("rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("programme cache: cannot read %s (%s); rendering instead", path, exc)
            return None
        try:
            header = check(file)
        except (CorruptProgramme, OSError) as exc:
            file.close()
            log.warning("programme cache: dropping corrupt entry %s: %s", path, exc)
            self.corrupt += 1
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: eviction keeps it
        return CachedProgramme(file, header)

    def recording(self, programme: Programme, key: str, *, valid: Callable[[], bool] | None = None) -> Programme:
        """``programme``, stored under ``key`` the first time it is played to its end (if it fits the bound).

        A programme still laid out as it plays (a :class:`~radiod.audio.render.StreamingProgramme`) is checked
        against the bound again once it is whole. ``valid``: asked then whether it is still the programme ``key``
        names (one whose voice fell back while it was made is not), else it is not kept.
        """
        size = 2 * programme.n_samples
        if not self.within_share(size) or not self.speech_cache.make_room(HEADER.size + size):
            return programme  # the store's space on the card comes first
        return CachingProgramme(programme, self, key, valid)

    def within_share(self, size: int) -> bool:
        """Whether a programme of ``size`` bytes of samples is small enough to keep (see ``MAX_SHARE``)."""
        if size <= MAX_SHARE * self.speech_cache.max_bytes:
            return True
        log.info("programme cache: not keeping a %.0f MB programme (at most %.0f%% of the cache)",
                 size / 2**20, 100 * MAX_SHARE)  # fmt: skip
        return False


class CachedProgramme(Programme):
    """A programme played from its cache entry, a block at a time (the file stays open while this object lives,
    so an eviction meanwhile does not take it away)."""

    def __init__(self, file: BinaryIO, header: EntryHeader) -> None:
        super().__init__(header.rate, header.n_samples, [], header.speech_lufs, header.gain_db)
        self._header = header
        self._fd = file.fileno()
        self._finalizer = weakref.finalize(self, file.close)

    def prime(self) -> None:
        """Nothing to render: the samples are read from the file as they play."""

    def int16_blocks(self, size: int) -> Iterator[np.ndarray]:
        """The samples as stored, in blocks of ``size`` (the last may be shorter)."""
        if size < 1:
            raise ValueError(f"block size must be >= 1, got {size}")
        step = max(size, _READ_SAMPLES // size * size)  # read whole blocks at a time
        done = 0
        while done < self.n_samples:
            count = min(step, self.n_samples - done)
            data = os.pread(self._fd, 2 * count, HEADER.size + 2 * done)
            if len(data) != 2 * count:  # checked when opened: only a failing card gets here
                raise OSError(f"programme cache entry ended at sample {done + len(data) // 2} of {self.n_samples}")
            samples = np.frombuffer(data, dtype="<i2")
            yield from (samples[i : i + size] for i in range(0, count, size))
            done += count

    def write_wav(self, path: Path) -> None:
        """The programme as a plain 16-bit mono WAV (``radiod speak -o``), copied file to file by the kernel."""
        write_plain_wav(self._fd, self._header, path)

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        """float32 blocks, which :func:`~radiod.audio.pcm.to_int16` turns back into exactly the stored samples."""
        for block in self.int16_blocks(size):
            yield block.astype(np.float32) / np.float32(32767.0)


class CachingProgramme(Programme):
    """A rendered programme that stores itself in the cache as it is first played to its end."""

    def __init__(
        self, programme: Programme, cache: ProgrammeCache, key: str, valid: Callable[[], bool] | None = None
    ) -> None:
        super().__init__(programme.rate, programme.n_samples, [], programme.speech_lufs, programme.gain_db)
        self.spans = programme.spans
        self._inner = programme
        self._cache = cache
        self._key = key
        self._valid = valid
        self._checked_n_samples = programme.n_samples  # checked against the bound by ProgrammeCache.recording
        self._recorded = False
        self._lock = threading.Lock()  # one recording at a time, should two plays overlap

    def prime(self) -> None:
        self._inner.prime()

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        with contextlib.closing(self._played(size)) as played:
            for block, _ in played:
                yield block

    def int16_blocks(self, size: int) -> Iterator[np.ndarray]:
        with contextlib.closing(self._played(size)) as played:
            for _, samples in played:
                yield samples

    def _played(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(float32, int16) of each block, the int16 written to a temporary entry renamed into place at the end."""
        locked = not self._recorded and self._lock.acquire(blocking=False)
        writer = _Writer(self._cache, self._key) if locked else None
        try:
            for block in self._inner.blocks(size):
                samples = to_int16(block)
                if writer is not None and not writer.write(samples):
                    writer = None
                yield block, samples
            self._sync()
            if writer is not None and self._keeps() and writer.commit(self):
                self._recorded = True
        finally:
            if writer is not None:
                writer.abort()
            if locked:
                self._lock.release()


    def _sync(self) -> None:
        """Take the inner programme's length, spans and level, final once it has played to its end (a streaming one
        lays itself out, and learns its level, as it plays)."""
        inner = self._inner
        self.n_samples, self.spans, self.speech_lufs, self.gain_db = (
            inner.n_samples, inner.spans, inner.speech_lufs, inner.gain_db
        )

    def _keeps(self) -> bool:
        """Whether the programme just played may be kept: still the one its key names, and within the bound."""
        if self._valid is not None and not self._valid():
            return False
        if self.n_samples == self._checked_n_samples:
            return True
        # grown as it played: its entry is on the card already, so only the store's reserve is checked again
        return self._cache.within_share(2 * self.n_samples) and self._cache.speech_cache.make_room(0)


class _Writer:
    """A temporary entry being written; :meth:`commit` renames it into place. A cache that cannot be written is
    logged, never fatal: the play goes on."""

    def __init__(self, cache: ProgrammeCache, key: str) -> None:
        self._cache = cache
        self._path = cache.path(key)
        self._tmp = self._path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        self._crc = 0
        self._size = 0
        self._file: BinaryIO | None = None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._tmp.open("wb")
            self._file.write(bytes(HEADER.size))  # filled in by commit()
        except OSError as exc:
            self._failed(exc)

    def write(self, samples: np.ndarray) -> bool:
        """Append ``samples`` (int16); False once the entry cannot be written."""
        if self._file is None:
            return False
        data = np.ascontiguousarray(samples, dtype="<i2")
        try:
            self._file.write(data)
        except OSError as exc:
            self._failed(exc)
            return False
        self._crc = crc32(data, self._crc)
        self._size += data.nbytes
        return True

    def commit(self, programme: Programme) -> bool:
        """Put the entry in place if it holds the whole programme; then keep the cache within its bound."""
        if self._file is None or self._size != 2 * programme.n_samples:
            return False
        try:
            self._file.seek(0)
            p = programme
            self._file.write(header_bytes(p.rate, self._crc, p.speech_lufs, p.gain_db, self._size))
            self._file.close()
            self._file = None
            os.replace(self._tmp, self._path)
        except OSError as exc:
            self._failed(exc)
            return False
        self._cache.speech_cache.evict()
        return True

    def abort(self) -> None:
        """Drop the temporary entry (nothing once committed)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def _failed(self, exc: OSError) -> None:
        log.warning("programme cache: cannot write %s: %s", self._path, exc)
        self.abort()
