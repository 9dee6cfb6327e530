"""The hub's media library: recordings checked, measured and kept under their SHA-256 for the nodes to fetch.

A recorded programme travels as a URL and the file's signed ``sha256`` (docs/protocol.md, "Media and relay"), so
the file itself may sit on any plain web server: here, the hub service's ``/media/`` (hub.yaml ``media.dir`` and
``media.base_url``). Files are named ``<sha256>.<format>``: adding the same recording twice is one file, a new
recording never replaces one a posted bulletin still points at, and the name alone says it is intact.

Every file is decoded once before it is kept: a file no node could play (not audio, empty, longer than the
protocol's six hours, a container the protocol does not name) is refused at the hub with its name and what is
wrong, never discovered at 06:00 on every loudspeaker. Decoding streams block by block at the file's own rate
(:func:`radiod.audio.decode.decode`), so measuring a two-hour programme holds a fraction of a second of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from radiod.audio.decode import decode, probe
from radiod.audio.loudness import LoudnessMeter
from radiod.errors import MediaError
from radiod.protocol.messages import MAX_MEDIA_BYTES, MAX_MEDIA_S, MEDIA_FORMATS

CHUNK = 1 << 20
"""Bytes read at a time when hashing, copying and downloading."""
DOWNLOAD_TIMEOUT_S = 30.0
"""How long a stalled download of ``--media URL`` may wait for the next bytes."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
INFO_SUFFIX = ".json"
"""Beside each kept file, what was measured of it: adding it again, or posting it from the console, reads this
instead of decoding the file again."""


@dataclass(frozen=True)
class MediaInfo:
    """A checked recording: the protocol's ``media`` fields, and its integrated loudness for the operator (the
    nodes level it to -16 LUFS themselves)."""

    url: str
    sha256: str
    bytes: int
    duration_s: float
    format: str
    lufs: float  # -inf for silence

    @property
    def name(self) -> str:
        """Its file name in the library: ``<sha256>.<format>``."""
        return f"{self.sha256}.{self.format}"

    def descriptor(self) -> dict[str, Any]:
        """The bulletin's ``media`` object (:func:`radiod.protocol.builders.bulletin`)."""
        return {"url": self.url, "sha256": self.sha256, "bytes": self.bytes, "duration_s": self.duration_s,
                "format": self.format}


@dataclass(frozen=True)
class Measured:
    """What decoding a file says of it."""

    format: str
    duration_s: float
    lufs: float


def measure(path: Path, label: str | None = None) -> Measured:
    """Decode ``path`` whole, block by block, for its duration and loudness; MediaError naming ``label`` (the
    file or URL as the operator gave it) and what is wrong when no node could play it."""
    label = label or str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MediaError(f"{label}: cannot read it: {exc.strerror or exc}") from None
    if size == 0:
        raise MediaError(f"{label}: the file is empty")
    if size > MAX_MEDIA_BYTES:
        raise MediaError(f"{label}: {size} bytes, more than the protocol's {MAX_MEDIA_BYTES} (2 GiB)")
    try:
        info = probe(path)
    except MediaError as exc:
        raise MediaError(f"{label}: not an audio file the nodes can play ({_cause(exc, path)})") from None
    fmt = container_format(path, info.codec, label)
    if info.duration_s is not None and info.duration_s > MAX_MEDIA_S + 1:
        raise MediaError(f"{label}: {_hms(info.duration_s)} long; a recording is at most {_hms(MAX_MEDIA_S)}")
    meter = LoudnessMeter()
    samples = 0
    limit = int((MAX_MEDIA_S + 1) * info.rate)  # a container may not say its duration, or say it wrong
    blocks = decode(path, info.rate)
    try:
        for block in blocks:
            meter.feed(block, info.rate)
            samples += len(block)
            if samples > limit:
                break
    except MediaError as exc:
        raise MediaError(f"{label}: does not decode to the end ({_cause(exc, path)})") from None
    finally:
        blocks.close()
    if samples > limit:
        raise MediaError(f"{label}: longer than {_hms(MAX_MEDIA_S)}, the most a recording may last")
    if samples == 0:
        raise MediaError(f"{label}: holds no audio ({info.codec} stream with no samples)")
    return Measured(fmt, round(samples / info.rate, 3), meter.lufs())


def container_format(path: Path, codec: str, label: str) -> str:
    """The protocol's ``format`` of ``path``: its container as an extension would name it (Opus and Vorbis
    both come in Ogg; MP4 audio is ``m4a``); MediaError for a container the protocol does not list."""
    import av  # already loaded by probe(): PyAV is FFmpeg, and only the container knows its own name

    with av.open(str(path)) as container:
        names = set(container.format.name.split(","))
    if names & {"mp4", "m4a", "mov"}:
        return "m4a"
    if "ogg" in names:
        return "opus" if codec == "opus" else "ogg"
    for fmt in ("mp3", "aac", "flac", "wav"):
        if fmt in names:
            return fmt
    raise MediaError(f"{label}: a {'/'.join(sorted(names))} file ({codec}); the nodes take {', '.join(MEDIA_FORMATS)}"
                     f": convert it, e.g. ffmpeg -i {path.name} -c:a libmp3lame -b:a 128k out.mp3")


class MediaLibrary:
    """The hub's media folder, served at ``base_url``: :meth:`add` checks and keeps a file, :meth:`get` finds one
    kept before by its name."""

    def __init__(self, folder: Path, base_url: str) -> None:
        self.folder = folder
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"

    def add(self, path: Path, label: str | None = None) -> MediaInfo:
        """Check, measure and keep ``path`` as ``<sha256>.<format>``; the same content again is the same entry,
        measured once. Raises MediaError naming the file and what is wrong."""
        label = label or str(path)
        sha256, size = file_sha256(path, label)
        kept = [p for p in self.folder.glob(f"{sha256}.*") if p.suffix != INFO_SUFFIX]
        if kept and (info := self.get(kept[0].name)) is not None:
            return info
        measured = measure(path, label)
        info = MediaInfo(self.base_url + f"{sha256}.{measured.format}", sha256, size, measured.duration_s,
                         measured.format, measured.lufs)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            _copy_atomically(path, self.folder / info.name)
            _write_atomically(self.folder / (info.name + INFO_SUFFIX),
                              json.dumps({**asdict(info), "lufs": _finite(info.lufs)}).encode())
        except OSError as exc:
            raise MediaError(f"cannot keep {label} in {self.folder}: {exc.strerror or exc} (hub.yaml media.dir)") \
                from None
        return info

    def get(self, name: str) -> MediaInfo | None:
        """The recording kept as ``name`` (``<sha256>.<format>``), None when there is none; its URL is the
        library's current base URL, so moving the service moves the links of new posts with it."""
        if self.file(name) is None:
            return None
        stem, _, fmt = name.partition(".")
        try:
            saved = json.loads((self.folder / (name + INFO_SUFFIX)).read_text(encoding="utf-8"))
            lufs = saved["lufs"] if saved["lufs"] is not None else -math.inf
            return MediaInfo(self.base_url + name, stem, int(saved["bytes"]), float(saved["duration_s"]), fmt,
                             float(lufs))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # measured by nobody, or the note is damaged: add() measures it again

    def file(self, name: str) -> Path | None:
        """The kept file called ``name``, if ``name`` is a library name (``<sha256>.<format>``, nothing else: no
        folders, no notes) and the file is there."""
        stem, _, fmt = name.partition(".")
        if not _SHA256.fullmatch(stem) or fmt not in MEDIA_FORMATS:
            return None
        path = self.folder / name
        return path if path.is_file() else None


def file_sha256(path: Path, label: str | None = None) -> tuple[str, int]:
    """The SHA-256 (hex) and size of ``path``, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise MediaError(f"{label or path}: cannot read it: {exc.strerror or exc}") from None
    return digest.hexdigest(), size


@contextlib.contextmanager
def downloaded(url: str, max_bytes: int = MAX_MEDIA_BYTES) -> Iterator[Path]:
    """``url`` fetched once into a temporary file (deleted afterwards), as a node would fetch it; MediaError
    naming the URL when it cannot be fetched or is larger than the protocol allows."""
    if not url.startswith(("http://", "https://")):
        raise MediaError(f"{url}: not an http:// or https:// URL, which is all a node fetches")
    with tempfile.TemporaryDirectory(prefix="radiod-media-") as tmp:
        target = Path(tmp) / "download"
        try:
            # the scheme is checked above: http(s) only, as the nodes' parser requires of media.url
            opened = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)  # noqa: S310
            with opened as answer, target.open("wb") as out:
                size = 0
                while chunk := answer.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaError(f"{url}: larger than the protocol's {max_bytes} bytes")
                    out.write(chunk)
        except urllib.error.HTTPError as exc:
            raise MediaError(f"{url}: the server answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise MediaError(f"{url}: cannot fetch it: {getattr(exc, 'reason', exc)}") from None
        yield target


def media_at(url: str) -> MediaInfo:
    """A recording already on a web server, fetched once to measure it: its ``media`` fields point at ``url``."""
    with downloaded(url) as path:
        sha256, size = file_sha256(path, url)
        measured = measure(path, url)
    return MediaInfo(url, sha256, size, measured.duration_s, measured.format, measured.lufs)


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy under a temporary name, then rename: the web server never serves half a file under the real name."""
    if target.is_file():
        return  # content-addressed: the same name is the same bytes
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_atomically(target: Path, data: bytes) -> None:
    """Write under a temporary name, then rename, as :func:`_copy_atomically`; no ``.incoming-`` left on failure."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _cause(exc: MediaError, path: Path) -> str:
    """FFmpeg's own words for what failed, without the path the message already names."""
    text = re.sub(r"\[Errno -?\d+\] ", "", str(exc))
    parts = [p for p in text.split(": ") if str(path) not in p]
    return ": ".join(parts) or text.replace(str(path), "the file").strip()


def _hms(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def loudness_text(lufs: float) -> str:
    """Integrated loudness as the operator reads it: the nodes bring every programme to -16 LUFS."""
    return f"{lufs:.1f} LUFS (the nodes level it to -16)" if math.isfinite(lufs) else "silent"


def length_text(seconds: float) -> str:
    """A duration as H:MM:SS, for an hour-long programme, and in seconds, for a short clip."""
    return f"{_hms(seconds)} ({seconds:.1f} s)"


def describe(info: MediaInfo) -> str:
    """One line for the operator: duration, format, size and loudness."""
    return f"{length_text(info.duration_s)}, {info.format}, {info.bytes} bytes, {loudness_text(info.lufs)}"
