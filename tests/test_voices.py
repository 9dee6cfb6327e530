"""The voice engines on the real espeak-ng: every shipped voice speaks Vietnamese, with its own engine voice."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import pytest

from radiod.errors import SynthesisError, VoiceError
from radiod.speech.tts import BatchEngine, Engine, EspeakEngine, engine_for
from radiod.speech.tts.espeak import split_at_breaks
from radiod.speech.voices import Voice, load_voice, voice_files

VOICES = Path(__file__).resolve().parent.parent / "voices"
SHIPPED = [p.stem for p in voice_files(VOICES)]
SENTENCE = "Ban Chỉ huy Phòng chống thiên tai xã yêu cầu các hộ gia đình chằng chống nhà cửa, không ra đồng."
SYLLABLES = len(SENTENCE.split())


def speech_span_s(samples: np.ndarray, rate: int) -> float:
    """Seconds from the first to the last non-zero sample: the speech without espeak-ng's silence."""
    loud = np.flatnonzero(samples)
    return (loud[-1] - loud[0]) / rate


def test_the_three_regional_voices_are_shipped() -> None:
    assert {"vi-north", "vi-central", "vi-south"} <= set(SHIPPED)


@pytest.mark.parametrize("voice_id", SHIPPED)
def test_each_shipped_voice_speaks_vietnamese(voice_id: str) -> None:
    voice = load_voice(voice_id, VOICES)
    engine = engine_for(voice)
    pcm = engine.synthesize(SENTENCE, voice, timeout_s=30)
    assert pcm.samples.dtype == np.int16
    assert pcm.rate == 22050
    rms = np.sqrt(np.mean(pcm.samples.astype(np.float64) ** 2))
    assert rms > 500, "speech, not near-silence"
    # 21 syllables: a commune announcer's pace is 2 to 6 syllables a second
    assert SYLLABLES / 6 < speech_span_s(pcm.samples, pcm.rate) < SYLLABLES / 2


@pytest.mark.parametrize("voice_id", SHIPPED)
def test_the_engine_uses_the_voice_files_espeak_voice_rate_and_pitch(voice_id: str, tmp_path: Path) -> None:
    """Same samples as espeak-ng itself gives for that voice name, rate and pitch on the command line."""
    voice = load_voice(voice_id, VOICES)
    pcm = engine_for(voice).synthesize(SENTENCE, voice, timeout_s=30)
    reference = tmp_path / "reference.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice.voice, "-s", str(voice.rate), "-p", str(voice.pitch), "-w", str(reference), SENTENCE],
        check=True,
    )
    with wave.open(str(reference)) as w:
        expected = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.array_equal(pcm.samples, expected)


def test_central_and_south_sound_different_from_north() -> None:
    clips = {}
    for voice_id in ("vi-north", "vi-central", "vi-south"):
        voice = load_voice(voice_id, VOICES)
        clips[voice_id] = engine_for(voice).synthesize(SENTENCE, voice, timeout_s=30).samples
    assert not np.array_equal(clips["vi-north"], clips["vi-central"])
    assert not np.array_equal(clips["vi-north"], clips["vi-south"])
    assert not np.array_equal(clips["vi-central"], clips["vi-south"])


def test_rate_speeds_speech_up() -> None:
    slow = Voice(description="slow", voice="vi", rate=120, id="slow")
    fast = Voice(description="fast", voice="vi", rate=240, id="fast")
    engine = engine_for(slow)
    slow_s = speech_span_s(engine.synthesize(SENTENCE, slow, 30).samples, 22050)
    fast_s = speech_span_s(engine.synthesize(SENTENCE, fast, 30).samples, 22050)
    assert 0.35 < fast_s / slow_s < 0.7


def test_espeak_engine_has_the_engine_interface_and_a_version() -> None:
    engine = engine_for(load_voice("vi-north", VOICES))
    assert isinstance(engine, Engine)
    assert isinstance(engine, BatchEngine)
    assert engine.name == "espeak-ng"
    installed = re.search(
        r"text-to-speech:\s*(\S+)",
        subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout,
    )
    assert installed is not None
    assert engine.version().startswith(f"espeak-ng {installed[1]} data ")
    assert EspeakEngine(engine.program).version() == engine.version()


def test_a_piper_voice_without_its_model_cannot_run() -> None:
    voice = Voice(description="neural", engine="piper", model="vi.onnx", id="vi-neural")
    with pytest.raises(VoiceError, match=r"vi-neural.*piper"):
        engine_for(voice)


def test_missing_espeak_says_which_package_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without espeak-ng
    with pytest.raises(VoiceError, match="install the Debian package espeak-ng"):
        engine_for(load_voice("vi-north", VOICES))


@pytest.mark.parametrize("name", ["vi-vn-x-nort", "no-such-voice", "nonexist"])
def test_unknown_espeak_voice_is_refused_when_the_engine_is_chosen(name: str) -> None:
    """espeak-ng would read the first two as Vietnamese and Norwegian without a word; radiod refuses them."""
    voice = Voice(description="typo", voice=name, id="vi-typo")
    with pytest.raises(VoiceError, match=rf"vi-typo.*no voice '{name}'.*vi-vn-x-central"):
        engine_for(voice)


@pytest.mark.parametrize("name", ["vi", "VI-VN-X-SOUTH", "aav/vi-VN-x-central", "Vietnamese_(Northern)", "vi+f3"])
def test_espeak_voice_names_in_any_of_its_spellings_are_accepted(name: str) -> None:
    engine_for(Voice(description="ok", voice=name, id="vi-ok"))


def test_a_failing_espeak_run_raises_synthesis_error_with_its_stderr() -> None:
    engine = EspeakEngine(shutil.which("espeak-ng") or "espeak-ng")
    voice = Voice(description="typo", voice="nonexist", id="vi-typo")  # engine_for would refuse it
    with pytest.raises(SynthesisError, match=r"exit code 1.*vi-typo.*does not exist"):
        engine.synthesize("Xin chào.", voice, timeout_s=30)


def test_timeout_stops_espeak_and_names_the_voice() -> None:
    voice = load_voice("vi-north", VOICES)
    long_sentence = ", ".join([SENTENCE.rstrip(".")] * 60) + "."
    with pytest.raises(SynthesisError, match=r"longer than 0\.01 s.*vi-north"):
        engine_for(voice).synthesize(long_sentence, voice, timeout_s=0.01)


def test_espeak_runs_leave_no_temporary_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where tempfile puts its folders
    voice = load_voice("vi-north", VOICES)
    engine = engine_for(voice)
    engine.synthesize(SENTENCE, voice, timeout_s=30)
    engine.synthesize_many([SENTENCE, "Xin chào."], voice, timeout_s=30)
    with pytest.raises(SynthesisError):
        engine.synthesize(", ".join([SENTENCE] * 60), voice, timeout_s=0.01)
    assert list(tmp_path.iterdir()) == []


def test_a_batch_is_cut_back_into_its_sentences() -> None:
    voice = load_voice("vi-north", VOICES)
    engine = engine_for(voice)
    assert isinstance(engine, BatchEngine)
    texts = ["Xin chào bà con.", SENTENCE, "Có họp không?", "Ngày mai, trời mưa to & gió <cấp 6>."]
    batch = engine.synthesize_many(texts, voice, timeout_s=30)
    alone = [engine.synthesize(t, voice, timeout_s=30) for t in texts]
    assert len(batch) == len(texts)
    for together, single in zip(batch, alone, strict=True):
        ratio = speech_span_s(together.samples, together.rate) / speech_span_s(single.samples, single.rate)
        assert 0.9 < ratio < 1.1  # the same words; espeak-ng's context only nudges the timing


def test_breaks_are_found_only_when_they_stand_out() -> None:
    def voiced(n: int) -> np.ndarray:
        return np.full(n, 1000, dtype=np.int16)

    def silence(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.int16)

    # three sentences; the second has a short pause of its own
    audio = np.concatenate([silence(300), voiced(5000), silence(44000), voiced(3000), silence(2000),
                            voiced(3000), silence(44000), voiced(4000), silence(9000)])  # fmt: skip
    parts = split_at_breaks(audio, 3)
    assert parts is not None
    assert [int(np.count_nonzero(p)) for p in parts] == [5000, 6000, 4000]
    # a pause inside a sentence as long as a break: no trustworthy cut
    assert split_at_breaks(np.concatenate([voiced(5000), silence(40000), voiced(5000), silence(44000),
                                           voiced(5000)]), 2) is None  # fmt: skip
    # a sentence that made no sound merges two breaks: fewer breaks than needed
    assert split_at_breaks(np.concatenate([voiced(5000), silence(88000), voiced(5000)]), 3) is None
