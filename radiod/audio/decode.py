"""Recorded files and live streams as float32 mono blocks at the board's rate, decoded with PyAV (FFmpeg).

PyAV ships FFmpeg in its wheels (aarch64 included), so MP3, AAC/M4A, Ogg/Opus, FLAC and WAV decode on a Pi
without Debian's codecs. It is imported here only, when a recording or a relay is first played: a node that
only reads text never loads FFmpeg. Decoding streams one packet at a time and FFmpeg's resampler converts
each frame to mono float at the output rate as it comes, so a two-hour programme costs no more memory than
a second of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from radiod.errors import MediaError

OPEN_TIMEOUT_S = 10.0
"""How long opening a stream and each read may take before the source counts as gone (a live relay's server
that accepts the connection and sends nothing must not hold the node)."""


@dataclass(frozen=True)
class SourceInfo:
    """What the container says of a source: its codec, its own rate and channels, and its duration if known
    (None for a live stream)."""

    codec: str
    rate: int
    channels: int
    duration_s: float | None


def decode(
    source: str | Path, rate: int, *, timeout_s: float = OPEN_TIMEOUT_S, start_s: float = 0.0
) -> Iterator[np.ndarray]:
    """The first audio stream of ``source`` (a file or an http(s) URL) as float32 mono blocks at ``rate``.

    ``start_s``: from that far into a file (a recording resumed after an emergency), seeked to rather than decoded
    up to; the samples before it in the first frames after the seek are dropped.

    Blocks are as long as the codec's frames (about 20 to 100 ms). Closing the iterator closes the source.
    Raises :class:`MediaError` when the source cannot be opened, has no audio, or breaks off with an error; a
    live stream that simply ends ends the iteration.
    """
    av = _av()
    try:
        container = av.open(str(source), timeout=(timeout_s, timeout_s))
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot open {source}: {exc}") from exc
    try:
        if not container.streams.audio:
            raise MediaError(f"{source} has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        drop: int | None = 0  # samples still to drop before start_s; None: not known until the first frame
        if start_s > 0:
            container.seek(round(start_s * 1_000_000))  # in av.time_base; to the nearest point at or before it
            drop = None
        try:
            for frame in container.decode(stream):
                if drop is None:  # a frame without a time (rare): taken to be where the seek went
                    drop = 0 if frame.time is None else max(0, round((start_s - frame.time) * rate))
                for out in resampler.resample(frame):
                    block = out.to_ndarray().reshape(-1)
                    if drop:
                        block, drop = block[drop:], max(0, drop - len(block))
                    yield block
            for out in resampler.resample(None):  # what the resampler still holds
                yield out.to_ndarray().reshape(-1)
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"{source} broke off: {exc}") from exc
    finally:
        container.close()


def probe(source: str | Path, *, timeout_s: float = OPEN_TIMEOUT_S) -> SourceInfo:
    """The codec, rate, channels and duration of ``source``'s first audio stream, without decoding it."""
    av = _av()
    try:
        with av.open(str(source), timeout=(timeout_s, timeout_s)) as container:
            if not container.streams.audio:
                raise MediaError(f"{source} has no audio stream")
            stream = container.streams.audio[0]
            duration = None
            if container.duration is not None:
                duration = container.duration / 1_000_000  # av.time_base: microseconds
            return SourceInfo(stream.codec_context.name, stream.rate, stream.channels, duration)
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot read {source}: {exc}") from exc


def _av() -> ModuleType:
    """PyAV, imported on first use: it loads all of FFmpeg, which a node that only reads text never needs.

    FFmpeg's own log stays off (PyAV's default): a relay whose station goes off the air would fill the journal
    with its errors ("Stream ends prematurely"), while the exceptions it raises already say what the node
    reports."""
    import av
    import av.error

    return av
