"""The node's recordings: fetched ahead of their time, checked against their signed sha256, kept in a bounded cache.

A bulletin's ``media`` names a file by its SHA-256, in the signed payload: the URL may be any server (normally
the hub's), and what it serves is kept only if it is exactly the bytes the hub signed. So the file is streamed
to a temporary file while it is hashed, the download is cut at ``bytes`` + 1, and a mismatch is refused (a
``rejected`` event, reason ``bad_media``, naming what was expected and what came) and deleted.

:class:`MediaCache`: files under ``<cache_dir>/media/``, named by their sha256, each with a small JSON beside it
holding its measured level (:func:`radiod.audio.recording.measure`, one streaming pass after the fetch), within
``storage.media_max_mb``, and leaving the speech cache's reserve free on the disk (the store's SD card): the least
recently used go first, those a stored bulletin still needs last.

:class:`MediaFetcher`: when a bulletin with media is accepted, its file is fetched at once on a background thread,
with retries and a growing back-off until the bulletin expires. At play time the playout waits (a bounded time,
never on the player's behalf past its deadline) for a fetch in flight, after waking a back-off so that one last
try is made; a file still missing by then is the play's ``skipped`` event, reason ``media_unavailable``. Whatever
the server does (down, slow, wrong bytes) the daemon goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from radiod import __version__
from radiod.audio.recording import MediaLevel, measure
from radiod.errors import MediaError
from radiod.protocol.messages import Media
from radiod.speech.cache import RESERVE_BYTES

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 20.0
"""Connecting and each read: a server that accepts and then sends nothing counts as down after this."""
FIRST_RETRY_S = 5.0
MAX_RETRY_S = 300.0
"""A failed fetch is tried again after ``FIRST_RETRY_S``, doubling up to this, until the bulletin expires."""
MAX_FETCHES = 2
"""Downloads at once: a dozen recordings accepted together do not share the uplink twelve ways."""
_READ = 1 << 16


class BadMedia(MediaError):
    """The server's file is not the one the hub signed (sha256 or size), or it holds no audio we can decode."""


@dataclass
class MediaCache:
    """Recordings by sha256 under ``directory``, at most ``max_bytes`` in all; see the module doc.

    ``needed()`` gives the sha256 of the recordings stored bulletins still have to play: evicted only when the
    others are gone and the cache is still too full. ``rate`` and ``target_lufs`` are what a level is measured at.
    """

    directory: Path
    max_bytes: int
    rate: int
    target_lufs: float
    needed: Callable[[], Iterable[str]] = field(default=lambda: ())
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        for stale in self.directory.glob(".*.part"):  # a fetch cut short by a restart (none if no folder yet)
            with contextlib.suppress(OSError):
                stale.unlink(missing_ok=True)

    def path(self, sha256: str) -> Path:
        return self.directory / sha256

    def get(self, media: Media) -> tuple[Path, MediaLevel] | None:
        """The file and its level if both are here and the level was taken at this rate and target (marking the
        file used); None otherwise, and :meth:`fetch` (on a fetch thread, never the player's) measures it again."""
        path = self.path(media.sha256)
        level = self._read_level(path)
        if not path.exists() or level is None or (level.rate, level.target_lufs) != (self.rate, self.target_lufs):
            return None
        with contextlib.suppress(OSError):  # a read-only or full card: the order of eviction is all it costs
            os.utime(path)  # least recently used is by mtime
        return path, level

    def fetch(self, media: Media) -> tuple[Path, MediaLevel]:
        """Download ``media``, check it, measure it and keep it (or only measure it again, when it is here but its
        level is not: the config changed). Raises :class:`BadMedia` for the wrong bytes (or audio that cannot be
        decoded), :class:`MediaError` for a server that cannot be reached or breaks off."""
        if (got := self.get(media)) is not None:
            return got
        path = self.path(media.sha256)
        if path.exists():
            try:
                level = self._measure(path)
            except MediaError as exc:  # it decoded when it came: the card is failing; fetch it again
                log.error("media %s: %s; fetching it again", media.sha256[:12], exc)
                self._remove(path)
            else:
                self._keep(path, level)
                return path, level
        if media.bytes > self.max_bytes:
            raise MediaError(f"{media.url}: {media.bytes} bytes do not fit in the media cache "
                             f"(storage.media_max_mb is {self.max_bytes >> 20})")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._make_room(media.bytes, keep=media.sha256)
        except OSError as exc:  # a full or failing card: the daemon plays on, the fetch is tried again later
            raise MediaError(f"media cache {self.directory}: {exc}") from exc
        part = self.directory / f".{media.sha256}.{threading.get_ident()}.part"
        try:
            digest, size = self._download(media, part)
            if digest != media.sha256 or size != media.bytes:
                got_size = f"more than {media.bytes}" if size > media.bytes else str(size)
                raise BadMedia(f"{media.url}: expected sha256 {media.sha256} and {media.bytes} bytes, "
                               f"got sha256 {digest} and {got_size} bytes")
            try:
                level = self._measure(part)
            except MediaError as exc:
                raise BadMedia(f"{media.url}: {exc}") from exc
            path = self._keep(part, level, as_name=media.sha256)
            log.info("media %s fetched from %s: %.1f s at %.1f LUFS", media.sha256[:12], media.url,
                     level.duration_s, level.lufs)
            return path, level
        finally:
            part.unlink(missing_ok=True)

    def _keep(self, path: Path, level: MediaLevel, *, as_name: str | None = None) -> Path:
        """Write ``level`` beside ``path`` (renamed to ``as_name`` first, if given); a card that refuses is a
        :class:`MediaError`, tried again later like a server that is down."""
        try:
            if as_name is not None:
                path = path.replace(self.path(as_name))
            self._level_path(path).write_text(json.dumps(asdict(level)), encoding="utf-8")
        except OSError as exc:
            raise MediaError(f"media cache {self.directory}: {exc}") from exc
        return path

    def _download(self, media: Media, part: Path) -> tuple[str, int]:
        """Stream ``media.url`` into ``part`` while hashing it, stopping at ``bytes`` + 1; (sha256, size read)."""
        request = urllib.request.Request(media.url, headers={"User-Agent": f"radiod/{__version__}"})  # noqa: S310
        hasher, size = hashlib.sha256(), 0
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response, part.open("wb") as out:  # noqa: S310
                while size <= media.bytes and (data := response.read(min(_READ, media.bytes + 1 - size))):
                    hasher.update(data)
                    out.write(data)
                    size += len(data)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # HTTPError is a URLError
            raise MediaError(f"{media.url}: {exc}") from exc
        return hasher.hexdigest(), size

    def _measure(self, path: Path) -> MediaLevel:
        return measure(path, self.rate, self.target_lufs)

    @staticmethod
    def _level_path(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def _read_level(self, path: Path) -> MediaLevel | None:
        try:
            return MediaLevel(**json.loads(self._level_path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def _remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._level_path(path).unlink(missing_ok=True)

    def _make_room(self, incoming: int, *, keep: str) -> None:
        """Evict until ``incoming`` more bytes fit within ``max_bytes`` and leave ``RESERVE_BYTES`` free on the
        disk (the store's SD card, as the speech cache does): least recently used first, the recordings stored
        bulletins still need after all others. Raises :class:`MediaError` when even that leaves too little."""
        files = [p for p in self.directory.iterdir() if len(p.name) == 64 and p.name != keep]
        total = sum(p.stat().st_size for p in files) + incoming
        needed = set(self.needed())
        for path in sorted(files, key=lambda p: (p.name in needed, p.stat().st_mtime)):
            if total <= self.max_bytes and self._free() - incoming >= RESERVE_BYTES:
                break
            total -= path.stat().st_size
            log.info("media cache full: %s removed%s", path.name[:12], " (still needed)" if path.name in needed else "")
            self._remove(path)
        if (free := self._free()) - incoming < RESERVE_BYTES:
            raise MediaError(f"{incoming} bytes would leave less than {RESERVE_BYTES >> 20} MB free on "
                             f"{self.directory}'s disk ({free >> 20} MB free): not fetched")

    def _free(self) -> int:
        """Bytes an unprivileged writer may still use on the cache's file system."""
        st = os.statvfs(self.directory)
        return st.f_bavail * st.f_frsize


@dataclass
class _Job:
    """One recording being fetched in the background, until ``until`` (its bulletins' latest expiry)."""

    media: Media
    until: float
    bulletins: dict[str, int]  # id -> rev: whom a bad_media event names
    now: threading.Event = field(default_factory=threading.Event)  # a play wants it: end the back-off
    tries: int = 0  # fetches tried so far
    over: bool = False  # fetched, given up, or the node stops
    changed: threading.Condition = field(default_factory=threading.Condition)  # tries or over changed


OnBad = Callable[[Media, str, dict[str, int]], None]
"""``on_bad(media, message, bulletins)``: the bytes were wrong; the daemon sends ``rejected`` with ``bad_media``."""


class MediaFetcher:
    """Background fetches with retries, and the bounded wait at play time; see the module doc."""

    def __init__(self, cache: MediaCache, on_bad: OnBad) -> None:
        self.cache = cache
        self._on_bad = on_bad
        self._jobs: dict[str, _Job] = {}
        self._bad: set[tuple[str, str]] = set()  # (sha256, message) already reported
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(MAX_FETCHES)
        self._closing = threading.Event()

    def want(self, media: Media, *, until: float, bulletin: str, rev: int) -> None:
        """Fetch ``media`` for ``bulletin`` now, in the background, retrying until ``until`` (unless it is here
        already)."""
        self._job(media, until, {bulletin: rev})

    def forget(self, bulletin: str) -> None:
        """``bulletin`` was cancelled or replaced by a new rev: a fetch only it wanted stops retrying."""
        with self._lock:
            for job in self._jobs.values():
                if job.bulletins.pop(bulletin, None) is not None and not job.bulletins:
                    job.until = 0.0
                    job.now.set()

    def wait(self, media: Media, stop: threading.Event, until: float) -> tuple[Path, MediaLevel] | None:
        """The file and its level, waiting for a fetch (and waking a back-off for one last try) until the wall
        clock reads ``until`` or ``stop`` is set; None if it is not here by then. The fetch goes on afterwards."""
        if (got := self.cache.get(media)) is not None:
            return got
        job = self._job(media, until, {})
        with job.changed:
            seen = job.tries
            job.now.set()
            while job.tries == seen and not job.over and not stop.is_set() and (left := until - time.time()) > 0:
                job.changed.wait(min(left, 0.1))
        return self.cache.get(media)

    def close(self) -> None:
        """End the background fetches' retries; a download in progress is on a daemon thread, which does not hold
        up the process's exit."""
        self._closing.set()
        with self._lock:
            for job in self._jobs.values():
                job.now.set()

    def _job(self, media: Media, until: float, bulletins: dict[str, int]) -> _Job:
        with self._lock:
            job = self._jobs.get(media.sha256)
            if job is not None and not job.over:
                job.until = max(job.until, until)
                job.bulletins.update(bulletins)
                return job
            job = _Job(media, until, dict(bulletins))
            self._jobs[media.sha256] = job
        threading.Thread(target=self._run, args=(job,), name=f"media-{media.sha256[:8]}", daemon=True).start()
        return job

    def _run(self, job: _Job) -> None:
        """Try, then try again after a growing back-off, until fetched, the deadline passes, no bulletin wants it
        any more or the node stops; a play's wait cuts a back-off short (``job.now``)."""
        delay = FIRST_RETRY_S
        try:
            while True:
                job.now.clear()
                try:
                    with self._slots:
                        self.cache.fetch(job.media)
                    return
                except BadMedia as exc:
                    self._report_bad(job, str(exc))
                except MediaError as exc:
                    log.warning("media %s: %s; trying again in %.0f s", job.media.sha256[:12], exc, delay)
                with job.changed:  # a play waiting for this try hears of it now, not after the back-off
                    job.tries += 1
                    job.changed.notify_all()
                if not self._going(job, delay):
                    return
                job.now.wait(delay)
                if not self._going(job, 0.0):
                    return
                delay = min(2 * delay, MAX_RETRY_S)
        finally:
            with self._lock:
                job.over = True
                if self._jobs.get(job.media.sha256) is job:
                    del self._jobs[job.media.sha256]
            with job.changed:
                job.changed.notify_all()

    def _going(self, job: _Job, delay: float) -> bool:
        """Whether to try again after ``delay``; if not, the job is over from now on (under the lock, so that a
        :meth:`want` from now on starts a new one rather than extending one that is ending)."""
        with self._lock:
            if self._closing.is_set() or time.time() + delay > job.until:
                job.over = True
            return not job.over

    def _report_bad(self, job: _Job, message: str) -> None:
        """One ``bad_media`` report per digest and message: a server that keeps serving the wrong file is
        retried, not reported every few minutes."""
        log.error("media refused: %s", message)
        key = (job.media.sha256, message)
        if key not in self._bad:
            self._bad.add(key)
            self._on_bad(job.media, message, dict(job.bulletins))
