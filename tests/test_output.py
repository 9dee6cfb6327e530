"""Audio outputs: the file sink writes a valid WAV in real time and stops when told; null paces the same way;
a sound-card name that does not exist is a clear error. Timing bounds are generous: tests share two cores.
"""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from radiod.audio.output import FileOutput, NullOutput, open_output
from radiod.audio.pcm import Pcm, read_wav, to_int16
from radiod.audio.render import Programme, RenderOptions, render_programme
from radiod.errors import AudioOutputError

RATE = 16000  # a low rate keeps the real-time tests light


def programme(seconds: float, rate: int = RATE) -> Programme:
    """A rendered programme of about ``seconds``: a tone with a little vibrato, as audible content."""
    t = np.arange(round(seconds * rate)) / rate
    clip = Pcm((0.3 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5 * t))).astype(np.float32), rate)
    return render_programme([clip], RenderOptions(rate=rate, chime=False))


def wav_frames(path: Path) -> tuple[int, int, int, int]:
    """(channels, sample width, rate, frames) as the header says; raises if it is not a valid WAV."""
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()


def test_file_output_plays_in_real_time_and_writes_the_programme(tmp_path: Path) -> None:
    prog = programme(1.5)
    output = open_output(f"file:{tmp_path / 'out'}", RATE)
    started: list[float] = []
    before = time.time()
    t0 = time.monotonic()
    result = output.play(prog, "bt-42-r3-20260101T070000", threading.Event(), on_start=started.append)
    elapsed = time.monotonic() - t0
    assert result.completed
    assert prog.duration_s - 0.05 <= elapsed < prog.duration_s + 3.0
    assert len(started) == 1 and before <= started[0] == result.audio_start <= result.audio_end
    assert result.audio_end - result.audio_start >= prog.duration_s - 0.05
    assert result.path is not None and result.path.parent == tmp_path / "out"
    assert "bt-42-r3-20260101T070000" in result.path.name and result.path.suffix == ".wav"
    assert wav_frames(result.path) == (1, 2, RATE, prog.n_samples)
    written = read_wav(result.path)
    np.testing.assert_array_equal(to_int16(written.samples), to_int16(prog.to_pcm().samples))


def test_file_output_never_overwrites_and_makes_names_safe(tmp_path: Path) -> None:
    output = open_output(f"file:{tmp_path}", RATE)
    prog = programme(0.1)
    first = output.play(prog, "../bản tin: 7/1", threading.Event()).path
    second = output.play(prog, "../bản tin: 7/1", threading.Event()).path
    assert first is not None and second is not None and first != second
    for path in (first, second):
        assert path.parent == tmp_path and path.is_file()
        assert "/" not in path.name and not path.name.startswith(".")
        assert wav_frames(path)[3] == prog.n_samples


def test_stop_interrupts_a_file_play_and_leaves_a_valid_shorter_wav(tmp_path: Path) -> None:
    prog = programme(6.0)
    output = open_output(f"file:{tmp_path}", RATE)
    stop = threading.Event()
    results = []
    player = threading.Thread(target=lambda: results.append(output.play(prog, "stopped", stop)))
    player.start()
    time.sleep(0.6)
    stop.set()
    stopped_at = time.monotonic()
    player.join(timeout=5)
    assert not player.is_alive()
    assert time.monotonic() - stopped_at < 0.5  # one 20 ms block, plus a busy machine's slack
    (result,) = results
    assert not result.completed
    assert result.audio_end - result.audio_start < prog.duration_s - 3
    channels, width, rate, frames = wav_frames(result.path)
    assert (channels, width, rate) == (1, 2, RATE)
    assert 0 < frames < prog.n_samples // 2
    # what was written is the start of the programme
    np.testing.assert_array_equal(to_int16(read_wav(result.path).samples), to_int16(prog.to_pcm().samples[:frames]))


def test_a_play_stopped_before_it_starts_writes_an_empty_valid_wav(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    started: list[float] = []
    result = open_output(f"file:{tmp_path}", RATE).play(programme(2.0), "early", stop, on_start=started.append)
    assert not result.completed and not started
    assert wav_frames(result.path) == (1, 2, RATE, 0)


def test_file_output_creates_its_directory_and_says_when_it_cannot(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    output = open_output(f"file:{nested}", RATE)
    assert isinstance(output, FileOutput) and nested.is_dir()
    output.check()
    nested.rmdir()
    with pytest.raises(AudioOutputError, match="does not exist"):
        output.check()
    assert output.play(programme(0.1), "again", threading.Event()).path.parent == nested  # made again
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file in the way")
    with pytest.raises(AudioOutputError, match="not-a-dir"):
        open_output(f"file:{blocker / 'out'}", RATE)


def test_a_programme_at_another_rate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AudioOutputError, match="48000 Hz"):
        open_output(f"file:{tmp_path}", 48000).play(programme(0.1, rate=RATE), "x", threading.Event())


def test_null_output_takes_real_time_and_can_be_stopped() -> None:
    output = open_output("null", RATE)
    assert isinstance(output, NullOutput)
    prog = programme(1.0)
    t0 = time.monotonic()
    result = output.play(prog, "n", threading.Event())
    assert result.completed and result.path is None
    assert prog.duration_s - 0.05 <= time.monotonic() - t0 < prog.duration_s + 3.0
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    t0 = time.monotonic()
    result = output.play(programme(5.0), "n", stop)
    assert not result.completed and time.monotonic() - t0 < 2.0


def test_an_unknown_sound_card_is_a_clear_error() -> None:
    with pytest.raises(AudioOutputError, match="radiod-test-no-such-card"):
        open_output("radiod-test-no-such-card", 48000)


def test_an_empty_file_spec_is_a_clear_error() -> None:
    with pytest.raises(AudioOutputError, match="needs a directory"):
        open_output("file:", 48000)
