"""On-disk cache of synthesized sentences, so the daily 6:30 bulletin is not synthesized every day.

An entry is one sentence's clip, keyed by everything that shapes its sound: the normalized sentence text,
the voice's engine parameters and the engine's version. Entries live in 256 sharded folders
(``ab/abcdef….wav``) so no folder grows huge on an SD card.

Each entry is a small 16-bit mono WAV that any player can open, with one extra RIFF chunk (``rdck``)
holding a CRC-32 of the samples. Entries are written to a temporary name and renamed into place, so a
reader never sees a half-written file under the real name; and because a power cut can still leave a
renamed file whose data never reached the card (no fsync is done, to spare the card a flush per sentence),
every read checks the header, the length and the CRC. An entry that fails is deleted and reported as a
miss, and the sentence is synthesized again.

Size is bounded by ``max_mb``, which also counts the finished programmes kept in ``programmes/`` (see
:mod:`radiod.node.programme_cache`): reading an entry touches its modification time, and :meth:`evict` deletes
the least recently used entries down to 90 % of the bound; :meth:`evict_if_grown`, which the Speaker calls after
each synthesis, runs it once a tenth of the bound has been put since, so a long bulletin cannot fill the disk
before it ends. One entry is bounded by
``MAX_ENTRY_BYTES``: a clip longer than that is not kept, and an entry announcing more is dropped unread.

The cache lives by default beside the node's store, on the same SD card, and must never take the space the store
needs (a full card once kept an emergency from being stored): whatever ``max_mb`` says, :meth:`SpeechCache.put`
leaves ``reserve_bytes`` free on the cache's file system, evicting the least recently used entries first and not
keeping the clip at all when that is not enough.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np
from zlib_ng.zlib_ng import crc32  # zlib's CRC-32, several times faster (SIMD; the CRC instructions of a Pi's Arm)

from radiod.audio.pcm import Pcm
from radiod.config import PROGRAMMES_DIR  # finished programmes: within the same bound and eviction
from radiod.speech.voices import Voice

log = logging.getLogger(__name__)

KEY_VERSION = 1
"""Bump when what an entry holds changes (trimming, volume, format), so old entries are never reused."""

LOW_WATER = 0.9  # eviction goes down to this fraction of the bound, so it does not run after every sentence
MAX_ENTRY_BYTES = 8 * 1024 * 1024
"""About 3 minutes at 22050 Hz, several times the longest unit the Speaker synthesizes (``MAX_UNIT_CHARS``)."""
RESERVE_BYTES = 64 * 1024 * 1024
"""Free space the cache leaves on its file system for the store, the logs and the OS (see the module docstring)."""
STALE_TMP_S = 3600.0  # a temporary file this old was left by a crash or power cut: delete it

# RIFF/WAVE header with an 'rdck' chunk (CRC-32 of the samples) before 'data'; 56 bytes, fixed layout.
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sII4sI")
_CHECK_CHUNK = b"rdck"


class CorruptEntry(ValueError):
    """A cache file that is not a complete entry written by :meth:`SpeechCache.put`."""


def cache_key(text: str, voice: Voice, engine_version: str) -> str:
    """The entry name for ``text`` spoken by ``voice`` with this engine version.

    The voice's id, description, region and fallback are left out: two voice files with the same engine
    parameters sound the same and share entries (the region already shaped ``text`` in the normalizer).
    """
    identity = {
        "key_version": KEY_VERSION,
        "text": text,
        "engine": voice.engine,
        "engine_version": engine_version,
        "voice": voice.voice,
        "rate": voice.rate,
        "pitch": voice.pitch,
        "volume": voice.volume,
        "model": voice.model,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _read(file: BinaryIO, pad_s: float) -> Pcm:
    """The clip in an open entry, followed by ``pad_s`` of silence; :class:`CorruptEntry` unless the header,
    the file's length and the CRC all agree. The samples are read straight into their final array, so a
    cached clip and its pause cost one copy from the page cache and nothing more."""
    header = file.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise CorruptEntry(f"{len(header)} bytes, shorter than the {_HEADER.size}-byte header")
    fields = _HEADER.unpack(header)
    rate, crc, size = fields[7], fields[13], fields[15]
    if rate <= 0 or size % 2 or header != _header(rate, crc, size):
        raise CorruptEntry("not a radiod speech cache header")
    if size > MAX_ENTRY_BYTES:
        raise CorruptEntry(f"{size} bytes of samples, more than an entry may hold ({MAX_ENTRY_BYTES})")
    on_disk = os.fstat(file.fileno()).st_size
    if on_disk != _HEADER.size + size:
        raise CorruptEntry(f"{on_disk} bytes, but the header announces {size} bytes of samples")
    samples = np.zeros(size // 2 + round(pad_s * rate), dtype="<i2")
    if file.readinto(samples[: size // 2]) != size or crc32(samples[: size // 2]) != crc:
        raise CorruptEntry("the samples do not match their checksum")
    return Pcm(samples, rate)


def _header(rate: int, crc: int, size: int) -> bytes:
    return _HEADER.pack(
        b"RIFF", _HEADER.size - 8 + size, b"WAVE",
        b"fmt ", 16, 1, 1, rate, 2 * rate, 2, 16,
        _CHECK_CHUNK, 4, crc,
        b"data", size,
    )  # fmt: skip


class SpeechCache:
    """Sentence clips under ``directory``, at most about ``max_mb`` megabytes of them.

    Safe to share between processes (the daemon and ``radiod speak``) and to :meth:`put` from several
    threads: every write is a rename of a private temporary file, and a reader only trusts checked entries.
    """

    def __init__(self, directory: Path, max_mb: int, *, reserve_bytes: int = RESERVE_BYTES) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_mb * 1024 * 1024
        self.reserve_bytes = reserve_bytes
        self.corrupt = 0
        """Entries found corrupt and dropped since this cache was opened."""
        self._written = 0  # bytes put since the last eviction
        self._written_lock = threading.Lock()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.wav"

    def get(self, key: str, pad_s: float = 0.0) -> Pcm | None:
        """The clip for ``key`` followed by ``pad_s`` of silence, or None when there is none (or it was
        corrupt and has been dropped). Called from one thread at a time."""
        path = self.path(key)
        try:
            with path.open("rb") as file:
                pcm = _read(file, pad_s)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("speech cache: cannot read %s (%s); synthesizing instead", path, exc)
            return None
        except CorruptEntry as exc:
            log.warning("speech cache: dropping corrupt entry %s: %s", path, exc)
            self.corrupt += 1
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # recently used: eviction keeps it
        except OSError as exc:
            log.debug("speech cache: cannot touch %s: %s", path, exc)
        return pcm

    def put(self, key: str, pcm: Pcm) -> None:
        """Store a clip atomically, unless it is over ``MAX_ENTRY_BYTES``. A cache that cannot be written is logged,
        never fatal: the speech is fine."""
        if pcm.samples.nbytes > MAX_ENTRY_BYTES:
            log.info("speech cache: not keeping a %.1f MB clip (at most %d MB)", pcm.samples.nbytes / 2**20,
                     MAX_ENTRY_BYTES // 2**20)  # fmt: skip
            return
        path = self.path(key)
        tmp = path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self.make_room(_HEADER.size + pcm.samples.nbytes):
                log.warning("speech cache: not keeping a clip: %s has less than %.0f MB free beside it",
                            self.directory, self.reserve_bytes / 2**20)
                return
            samples = np.ascontiguousarray(pcm.samples, dtype="<i2")
            with tmp.open("wb") as file:
                file.write(_header(pcm.rate, crc32(samples), samples.nbytes))
                file.write(samples)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("speech cache: cannot write %s: %s", path, exc)
            tmp.unlink(missing_ok=True)
            return
        with self._written_lock:
            self._written += samples.nbytes

    def evict_if_grown(self) -> int:
        """:meth:`evict` once a tenth of the bound has been put since the last eviction (a scan of the folder is
        not free on an SD card); returns how many entries were deleted."""
        with self._written_lock:
            grown = self._written >= (1 - LOW_WATER) * self.max_bytes
        return self.evict() if grown else 0

    def size_bytes(self) -> int:
        """Bytes held by entries now."""
        return sum(size for _, size, _ in self._entries())

    def evict(self) -> int:
        """Delete the least recently used entries (sentences and programmes alike) until the cache is within its
        bound; returns how many."""
        try:
            entries = self._entries()
        except OSError as exc:  # an unreadable cache folder must not stop a bulletin
            log.warning("speech cache: cannot scan %s for eviction: %s", self.directory, exc)
            return 0
        with self._written_lock:
            self._written = 0
        total = sum(size for _, size, _ in entries)
        if total <= self.max_bytes:
            return 0
        removed = 0
        for _, size, path in sorted(entries):
            if total <= LOW_WATER * self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        log.info("speech cache: evicted %d entries, %.1f MB left in %s", removed, total / 2**20, self.directory)
        return removed

    def make_room(self, size: int) -> bool:
        """Whether ``size`` more bytes still leave :attr:`reserve_bytes` free on the cache's file system, after
        deleting the least recently used entries as needed; for :meth:`put` and the programme cache."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            free = _free_bytes(self.directory)
        except OSError as exc:
            log.warning("speech cache: cannot use %s: %s", self.directory, exc)
            return False
        if free - size >= self.reserve_bytes:
            return True
        removed = 0
        for _, _, path in sorted(self._entries()):
            path.unlink(missing_ok=True)
            removed += 1
            free = _free_bytes(self.directory)
            if free - size >= self.reserve_bytes:
                break
        if removed:
            log.info("speech cache: evicted %d entries to leave %.0f MB free on the disk of %s", removed,
                     self.reserve_bytes / 2**20, self.directory)
        return free - size >= self.reserve_bytes

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every entry, sentence or programme; temporary files left by a crash are deleted on
        the way."""
        entries: list[tuple[float, int, Path]] = []
        if not self.directory.is_dir():
            return entries
        stale_before = time.time() - STALE_TMP_S
        for shard in os.scandir(self.directory):
            if not (shard.is_dir() and (len(shard.name) == 2 or shard.name == PROGRAMMES_DIR)):
                continue
            for item in os.scandir(shard.path):
                try:
                    st = item.stat()
                except FileNotFoundError:  # evicted or replaced by another process meanwhile
                    continue
                if item.name.endswith(".tmp"):
                    if st.st_mtime < stale_before:
                        Path(item.path).unlink(missing_ok=True)
                elif item.name.endswith(".wav") or shard.name == PROGRAMMES_DIR:  # a programme or its link
                    entries.append((st.st_mtime, st.st_size, Path(item.path)))
        return entries


def _free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system of ``directory``."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize
