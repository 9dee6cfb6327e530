"""Audio outputs: where a rendered programme goes. A WAV file per play, nothing, or a sound card.

Every output plays in real time, a block at a time, and stops within a block when asked: the relays, the
play log and pre-emption by an emergency bulletin all rely on a play taking as long as the audio does, so
the file and null outputs pace themselves by the clock as a sound card would. A node without a sound card
(a test rig, a lab Pi, CI) therefore behaves exactly like one with.

``sounddevice`` is imported only by the sound-card output: importing it fails when PortAudio is missing,
which must not stop a node that writes files.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import wave
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np

from radiod.audio.pcm import to_int16
from radiod.audio.render import Programme
from radiod.errors import AudioOutputError

log = logging.getLogger(__name__)

PACED_BLOCK_S = 0.02  # file and null outputs: stop is noticed within this
DEVICE_BLOCK_S = 0.05  # sound card: each blocking write; larger blocks ride out a busy CPU without underruns
_MAX_STEM = 100  # characters of the caller's name kept in a file name


@dataclass(frozen=True)
class PlayResult:
    """What happened to one play."""

    completed: bool  # False when ``stop`` was set before the end
    audio_start: float  # time.time() when the first sample left
    audio_end: float  # time.time() when the last sample left, or when stopped
    path: Path | None  # file output: the WAV written


class Output(ABC):
    """One per node; plays one programme at a time."""

    rate: int

    @abstractmethod
    def play(
        self,
        programme: Programme,
        name: str,
        stop: threading.Event,
        on_start: Callable[[float], None] | None = None,
    ) -> PlayResult:
        """Play ``programme`` to the end or until ``stop`` is set; ``on_start`` gets the wall time of the first
        sample as soon as it has left. ``name`` identifies the play (file output: the WAV's name)."""

    @abstractmethod
    def check(self) -> None:
        """Raise AudioOutputError if the output cannot be used now (missing directory, vanished device)."""

    def prepare(self) -> None:
        """Make the output ready to play now, or raise AudioOutputError: called before any relay moves, so a
        broken output never switches the amplifier on over silence. By default, :meth:`check`."""
        self.check()

    def close(self) -> None:  # noqa: B027 (most outputs hold nothing between plays)
        """Release what the output holds between plays."""

    def _check_rate(self, programme: Programme) -> None:
        if programme.rate != self.rate:
            raise AudioOutputError(
                f"{self}: programme rendered at {programme.rate} Hz, but this output runs at {self.rate} Hz"
            )


def _play_paced(
    programme: Programme,
    stop: threading.Event,
    on_start: Callable[[float], None] | None,
    sink: Callable[[np.ndarray], None],
) -> tuple[bool, float, float]:
    """Hand ``programme`` to ``sink`` block by block, each when a sound card would take it.

    Returns (completed, audio_start, audio_end). Block times are counted from the first block on the
    monotonic clock, so neither the time spent rendering nor a wall-clock jump makes the play drift.
    """
    rate = programme.rate
    start_mono: float | None = None
    audio_start = time.time()
    sent = 0
    for block in programme.blocks(max(1, round(PACED_BLOCK_S * rate))):
        if start_mono is None:
            if stop.is_set():
                return False, audio_start, audio_start
            start_mono, audio_start = time.monotonic(), time.time()
        elif stop.wait(max(0.0, start_mono + sent / rate - time.monotonic())):
            return False, audio_start, time.time()
        sink(block)
        if sent == 0 and on_start is not None:
            on_start(audio_start)
        sent += len(block)
    if start_mono is not None and stop.wait(max(0.0, start_mono + sent / rate - time.monotonic())):
        return False, audio_start, time.time()  # stopped while the last block was still playing
    return True, audio_start, time.time()


def _file_stem(name: str) -> str:
    """``name`` made safe as a file name: letters, digits, '.', '-' and '_' only, no leading dot."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:_MAX_STEM]
    return stem or "programme"


class FileOutput(Output):
    """``file:<dir>``: one 16-bit mono WAV per play, written in real time, never overwriting another.

    ``keep`` bounds the folder: after each play all but the newest ``keep`` WAVs go (0 keeps every one), so a node
    left on a file sink for weeks (a bench, a demo) does not fill its SD card.
    """

    def __init__(self, directory: Path, rate: int, *, keep: int = 0) -> None:
        self.directory = directory
        self.rate = rate
        self.keep = keep
        self._make_directory()

    def __str__(self) -> str:
        return f"audio output file:{self.directory}"

    def _make_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AudioOutputError(f"{self}: cannot create the directory: {exc.strerror or exc}") from None

    def prepare(self) -> None:
        self._make_directory()  # a folder removed since the output was opened is made again
        self.check()

    def check(self) -> None:
        if not self.directory.is_dir():
            raise AudioOutputError(f"{self}: the directory does not exist")
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise AudioOutputError(f"{self}: the directory is not writable by this user")

    def play(
        self,
        programme: Programme,
        name: str,
        stop: threading.Event,
        on_start: Callable[[float], None] | None = None,
    ) -> PlayResult:
        self._check_rate(programme)
        self._make_directory()  # it may have been removed since the output was opened
        path = self.directory / f"{_file_stem(name)}.wav"
        try:
            path, file = self._create(_file_stem(name))
            with file, wave.open(file, "wb") as wav:  # closing the writer first fixes the header's lengths
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(programme.rate)

                def write(block: np.ndarray) -> None:
                    wav.writeframes(to_int16(block).tobytes())
                    file.flush()  # on disk as it "plays", like a card's buffer: a reader sees it at once

                completed, start, end = _play_paced(programme, stop, on_start, write)
        except OSError as exc:
            raise AudioOutputError(f"{self}: cannot write {path}: {exc.strerror or exc}") from None
        self._prune()
        return PlayResult(completed, start, end, path)

    def _prune(self) -> None:
        """All but the ``keep`` newest WAVs (by modification time) go. Runs after a play, when none is being
        written; a file that cannot be listed or deleted is logged and left: pruning never fails a play."""
        if self.keep <= 0:
            return
        try:
            wavs = sorted(((p.stat().st_mtime, p) for p in self.directory.glob("*.wav") if p.is_file()), reverse=True)
        except OSError as exc:  # the directory vanished, or a file went between glob and stat
            log.warning("%s: cannot list the old WAVs: %s", self, exc)
            return
        removed = 0
        for _mtime, old in wavs[self.keep :]:
            try:
                old.unlink()
                removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("%s: cannot delete the old WAV %s: %s", self, old, exc)
        if removed:
            log.info("%s: deleted %d old WAV(s), keeping the newest %d (audio.file_keep)", self, removed, self.keep)

    def _create(self, stem: str) -> tuple[Path, BinaryIO]:
        """Create ``<stem>.wav``, or ``<stem>-1.wav``, ``-2``... if taken; exclusive, so two plays with the same
        name can never write into one file."""
        n = 0
        while True:
            path = self.directory / (f"{stem}.wav" if n == 0 else f"{stem}-{n}.wav")
            try:
                return path, path.open("xb")
            except FileExistsError:
                n += 1


class NullOutput(Output):
    """``null``: discards the audio, in real time, so plays take as long as with a sound card."""

    def __init__(self, rate: int) -> None:
        self.rate = rate

    def __str__(self) -> str:
        return "audio output null"

    def check(self) -> None:
        """Always usable."""

    def play(
        self,
        programme: Programme,
        name: str,
        stop: threading.Event,
        on_start: Callable[[float], None] | None = None,
    ) -> PlayResult:
        self._check_rate(programme)
        completed, start, end = _play_paced(programme, stop, on_start, lambda block: None)
        return PlayResult(completed, start, end, None)


def _import_sounddevice(device: str) -> ModuleType:
    try:
        import sounddevice  # here only: a node writing files must run without PortAudio
    except OSError as exc:
        raise AudioOutputError(
            f"audio output '{device}': PortAudio is not available ({exc}); install libportaudio2, "
            "or set audio.output to file:<dir> or null"
        ) from None
    return sounddevice


class DeviceOutput(Output):
    """``default`` or a PortAudio device name (a unique part of it will do, as sounddevice allows).

    The stream is opened by :meth:`prepare`, before any relay moves: PortAudio takes the device when the stream
    is made, so a card that is gone or held by another program fails there, never with the amplifier on.
    """

    def __init__(self, device: str, rate: int) -> None:
        self.device = device
        self.rate = rate
        self._sd = _import_sounddevice(device)
        self._stream: Any = None  # opened by prepare(), started and closed by the next play()
        self._find_device()

    def __str__(self) -> str:
        return f"audio output '{self.device}'"

    def _find_device(self) -> int:
        """The device's index; checks it takes mono at our rate."""
        sd = self._sd
        try:
            info = sd.query_devices(None if self.device == "default" else self.device, kind="output")
        except (ValueError, sd.PortAudioError) as exc:
            known = ", ".join(repr(d["name"]) for d in sd.query_devices() if d["max_output_channels"] > 0)
            missing = "no default output device" if self.device == "default" else "no such output device"
            raise AudioOutputError(f"{self}: {missing} ({exc}); output devices: {known or 'none'}") from None
        try:
            sd.check_output_settings(device=info["index"], channels=1, dtype="float32", samplerate=self.rate)
        except (ValueError, sd.PortAudioError) as exc:
            raise AudioOutputError(f"{self}: {info['name']} cannot play mono at {self.rate} Hz: {exc}") from None
        return int(info["index"])

    def _refresh(self) -> None:
        """PortAudio lists devices once, at initialization; re-initializing it is the known way to see a USB
        card plugged in or gone since (python-sounddevice issue #125). It would cut an open stream, so the one
        opened by prepare() is closed first (it is opened again after)."""
        self.close()
        try:
            self._sd._terminate()
            self._sd._initialize()
        except self._sd.PortAudioError as exc:
            raise AudioOutputError(f"{self}: cannot re-initialize PortAudio: {exc}") from None

    def check(self) -> None:
        self._refresh()
        self._find_device()

    def prepare(self) -> None:
        self._refresh()
        device = self._find_device()
        sd = self._sd
        try:
            self._stream = sd.OutputStream(samplerate=self.rate, channels=1, dtype="float32", device=device,
                                           blocksize=max(1, round(DEVICE_BLOCK_S * self.rate)))
        except sd.PortAudioError as exc:
            raise AudioOutputError(f"{self}: cannot open the device: {exc}") from None

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def play(
        self,
        programme: Programme,
        name: str,
        stop: threading.Event,
        on_start: Callable[[float], None] | None = None,
    ) -> PlayResult:
        self._check_rate(programme)
        if self._stream is None:  # not prepared by the station (the caller plays at once): open it now
            self.prepare()
        stream, self._stream = self._stream, None
        sd = self._sd
        audio_start: float | None = None
        completed = True
        try:
            with stream:  # starts it; leaving waits for the buffered audio to play out (or drops it after abort)
                for samples in programme.blocks(stream.blocksize):
                    if stop.is_set():
                        completed = False
                        stream.abort()
                        break
                    if stream.write(np.ascontiguousarray(samples)):
                        log.warning("%s: buffer underrun while playing %s", self, name)
                    if audio_start is None:
                        audio_start = time.time() + stream.latency  # when the first sample reaches the card
                        if on_start is not None:
                            on_start(audio_start)
        except sd.PortAudioError as exc:
            raise AudioOutputError(f"{self}: playing {name} failed: {exc}") from None
        audio_end = time.time()
        return PlayResult(completed, audio_start if audio_start is not None else audio_end, audio_end, None)


def open_output(spec: str, rate: int, *, file_keep: int = 0) -> Output:
    """The output for the config's ``audio.output``: ``file:<dir>`` (keeping its newest ``file_keep`` WAVs),
    ``null``, ``default`` or a device name."""
    if spec.startswith("file:"):
        directory = spec.removeprefix("file:")
        if not directory:
            raise AudioOutputError("audio output 'file:' needs a directory, e.g. file:/var/lib/radiod/out")
        return FileOutput(Path(directory).expanduser(), rate, keep=file_keep)
    if spec == "null":
        return NullOutput(rate)
    if not spec.strip():
        raise AudioOutputError('audio output is empty: use "file:<dir>", "null", "default" or a device name')
    return DeviceOutput(spec, rate)
