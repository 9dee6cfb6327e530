"""The Piper engine on the real piper-tts and ONNX Runtime, with a tiny model built by the tests (piper_model.py).

Every test runs piper's own loading, espeak-ng phonemization and inference: only the model is small. What is
checked: the engine and its settings, the warm model, the cache, ``radiod voices install`` and its checks,
streaming, the fallback to espeak-ng (missing model, failing model, a voice too slow to stream, no piper-tts),
and the memory warning.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("piper", reason="piper-tts is not installed: pip install -e '.[test]' installs it")
pytest.importorskip("onnx", reason="onnx (which builds the test model) is not installed: pip install -e '.[test]'")

from piper import PiperVoice
from piper_model import HOP, build_voice, phoneme_id_map, write_config

from radiod.audio.pcm import Pcm
from radiod.cli import main
from radiod.errors import SynthesisError, VoiceError
from radiod.speech.speaker import Speaker
from radiod.speech.tts import engine_for
from radiod.speech.tts.piper import PEAK, PiperEngine, memory_warning, read_config
from radiod.speech.voice_install import install
from radiod.speech.voices import load_voice

VOICES = Path(__file__).resolve().parent.parent / "voices"
MODEL = "models/vi_VN-test-x_low.onnx"
SENTENCE = "Xin chào bà con, hôm nay trời mưa to."
TEXT = "Xin chào bà con. Hôm nay trời mưa to.\nCác hộ gia đình chằng chống nhà cửa."
ESPEAK_RATE = 22050
MODEL_RATE = 16000


def write_voice(folder: Path, name: str, **fields: object) -> str:
    lines = [f"description: {name}", "engine: piper", "region: north"]
    lines += [f"{key}: {value}" for key, value in fields.items()]
    (folder / f"{name}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return name


@pytest.fixture
def voices(tmp_path: Path) -> Path:
    """The shipped espeak-ng voices, the test model in models/, and voice 'neural' that falls back on vi-north."""
    folder = tmp_path / "voices"
    shutil.copytree(VOICES, folder)
    build_voice(folder / "models")
    write_voice(folder, "neural", model=MODEL, fallback="vi-north")
    return folder


def zero_crossings_per_s(pcm: Pcm) -> float:
    signs = np.signbit(pcm.samples[pcm.samples != 0])
    return np.count_nonzero(signs[1:] != signs[:-1]) / (len(pcm.samples) / pcm.rate)


def expected_samples(model: Path, text: str, length_scale: float = 1.0) -> int:
    """What the test model must produce for ``text``: piper's own phoneme ids, HOP samples each."""
    voice = PiperVoice.load(model)
    ids = sum(len(voice.phonemes_to_ids(p)) for p in voice.phonemize(text))
    return ids * round(HOP * length_scale)


def slow_model(folder: Path, name: str, seconds: float) -> str:
    """A test model that takes about ``seconds`` per short sentence on this machine, whatever its speed."""
    probe = PiperVoice.load(build_voice(folder, f"{name}-probe", work=20))
    list(probe.synthesize("Một."))  # warm up ONNX Runtime
    started = time.monotonic()
    list(probe.synthesize("Một hai ba."))
    work = max(1, round(20 * seconds / (time.monotonic() - started)))
    return build_voice(folder, name, work=work).name


def join_stream_threads() -> None:
    """Wait for streams' synthesis threads that a test abandoned, so they do not load the next test's CPU."""
    for thread in threading.enumerate():
        if thread.name == "speech-stream":
            thread.join(timeout=30)


# ---------------------------------------------------------------- the engine


def test_a_piper_voice_speaks_through_piper_at_the_models_rate(voices: Path) -> None:
    voice = load_voice("neural", voices)
    engine = engine_for(voice)
    assert isinstance(engine, PiperEngine)
    pcm = engine.synthesize(SENTENCE, voice, timeout_s=30)
    assert pcm.samples.dtype == np.int16
    assert pcm.rate == MODEL_RATE
    assert len(pcm.samples) == expected_samples(voices / MODEL, SENTENCE)
    assert abs(int(np.abs(pcm.samples.astype(np.int32)).max()) - PEAK * 32767) <= 2  # headroom for the volume


def test_length_scale_noise_and_speaker_from_the_voice_file_reach_the_model(voices: Path) -> None:
    build_voice(voices / "models", "vi_VN-multi-x_low", speakers=3)
    write_voice(voices, "slow", model=MODEL, length_scale=2.0)
    write_voice(voices, "plain", model=MODEL, noise_scale=0.0, noise_w=0.0)
    write_voice(voices, "noisy", model=MODEL, noise_scale=1.0, noise_w=0.0)
    write_voice(voices, "wide", model=MODEL, noise_scale=0.0, noise_w=1.0)
    write_voice(voices, "first", model="models/vi_VN-multi-x_low.onnx", noise_scale=0.0, noise_w=0.0, speaker=0)
    write_voice(voices, "third", model="models/vi_VN-multi-x_low.onnx", noise_scale=0.0, noise_w=0.0, speaker=2)
    said = {}
    for name in ("neural", "slow", "plain", "noisy", "wide", "first", "third"):
        voice = load_voice(name, voices)
        said[name] = engine_for(voice).synthesize(SENTENCE, voice, timeout_s=30)
    assert len(said["slow"].samples) == expected_samples(voices / MODEL, SENTENCE, 2.0)
    assert len(said["slow"].samples) == 2 * len(said["neural"].samples)
    pitch = {name: zero_crossings_per_s(pcm) for name, pcm in said.items()}
    # the model's pitch is proportional to (1 + noise_scale) (1 + noise_w) (1 + speaker)
    assert pitch["noisy"] / pitch["plain"] == pytest.approx(2.0, rel=0.05)
    assert pitch["wide"] / pitch["plain"] == pytest.approx(2.0, rel=0.05)
    assert pitch["neural"] / pitch["plain"] == pytest.approx(1.667 * 1.8, rel=0.05)  # the model's own settings
    assert pitch["third"] / pitch["first"] == pytest.approx(3.0, rel=0.05)


def test_a_speaker_the_model_does_not_have_is_refused_when_the_engine_is_chosen(voices: Path) -> None:
    write_voice(voices, "nobody", model=MODEL, speaker=1)
    with pytest.raises(VoiceError, match=r"'nobody': speaker 1, but vi_VN-test-x_low.onnx has 1 speaker"):
        engine_for(load_voice("nobody", voices))


def test_a_missing_model_is_named_with_how_to_install_one(voices: Path) -> None:
    write_voice(voices, "lost", model="models/vi_VN-vais1000-medium.onnx")
    with pytest.raises(VoiceError, match=r"'lost'.*vi_VN-vais1000-medium.onnx not found.*radiod voices install"):
        engine_for(load_voice("lost", voices))
    write_voice(voices, "nameless")
    with pytest.raises(VoiceError, match=r"'nameless' \(engine piper\) names no model"):
        engine_for(load_voice("nameless", voices))


def test_the_model_is_loaded_once_per_process_and_again_when_reinstalled(voices: Path) -> None:
    write_voice(voices, "slower", model=MODEL, length_scale=1.5)
    first, second = (engine_for(load_voice(name, voices)) for name in ("neural", "slower"))
    assert isinstance(first, PiperEngine)
    assert isinstance(second, PiperEngine)
    loaded = first.load()
    assert second.load() is loaded  # two voice files, one model in memory
    assert first.version() != second.version()  # but their sentences are cached apart
    build_voice(voices / "models")  # re-installed: new files
    os.utime(voices / MODEL, ns=(time.time_ns(), time.time_ns() + 10**9))
    reloaded = engine_for(load_voice("neural", voices))
    assert reloaded.load() is not loaded
    assert first.load() is reloaded.load()  # the old model is dropped, not kept beside the new one


def test_a_too_slow_run_ends_with_a_synthesis_error_naming_the_voice(voices: Path) -> None:
    build_voice(voices / "models", "vi_VN-slow-x_low", work=40)
    write_voice(voices, "sluggish", model="models/vi_VN-slow-x_low.onnx")
    voice = load_voice("sluggish", voices)
    with pytest.raises(SynthesisError, match=r"piper took longer than 0\.001 s for voice 'sluggish'"):
        engine_for(voice).synthesize("Xin chào. Hôm nay trời mưa. Bà con chú ý.", voice, timeout_s=0.001)


# ---------------------------------------------------------------- the Speaker: cache, stream, fallback


def test_piper_sentences_are_cached_by_voice_settings_and_model(voices: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    speaker = Speaker(voices, cache)
    clips = speaker.speak(TEXT, "neural")
    assert len(clips) == 3
    assert all(c.rate == MODEL_RATE for c in clips)
    assert (speaker.stats.hits, speaker.stats.misses) == (0, 3)
    again = Speaker(voices, cache)  # another process: a new Speaker on the same cache
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(again.speak(TEXT, "neural"), clips, strict=True))
    assert (again.stats.hits, again.stats.misses) == (3, 0)
    write_voice(voices, "neural", model=MODEL, fallback="vi-north", length_scale=1.2)  # the technician edits it
    longer = again.speak(TEXT, "neural")
    assert again.stats.misses == 3  # new settings, new sound: not the stale clips
    assert len(longer[0].samples) > len(clips[0].samples)


def test_stream_gives_the_clips_speak_gives(voices: Path, tmp_path: Path) -> None:
    speaker = Speaker(voices, tmp_path / "cache")
    streamed = list(speaker.stream(TEXT, "neural"))
    spoken = Speaker(voices, None).speak(TEXT, "neural")
    assert len(streamed) == len(spoken) == 3
    for a, b in zip(streamed, spoken, strict=True):
        assert a.rate == b.rate
        assert np.array_equal(a.samples, b.samples)  # same sentence, same pause after it
    assert speaker.stats.misses == 3
    cached = list(speaker.stream(TEXT, "neural"))
    assert speaker.stats.hits == 3
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(cached, spoken, strict=True))
    assert speaker.stats.fallbacks == 0


def test_stream_hands_out_the_first_sentence_while_the_rest_is_synthesized(voices: Path) -> None:
    model = slow_model(voices / "models", "vi_VN-slow-x_low", seconds=0.4)
    write_voice(voices, "sluggish", model=f"models/{model}")  # no fallback: the stream just waits
    text = "Một hai ba. Bốn năm sáu. Bảy tám chín. Mười mười một."
    speaker = Speaker(voices, None)
    started = time.monotonic()
    arrivals = [time.monotonic() - started for _ in speaker.stream(text, "sluggish")]
    assert len(arrivals) == 4
    assert arrivals[0] < 0.5 * arrivals[-1]  # the first sentence did not wait for the other three
    assert speaker.stats.fallbacks == 0


def test_a_stream_played_in_real_time_by_a_fast_voice_never_falls_back(voices: Path) -> None:
    write_voice(voices, "brisk", model=MODEL, length_scale=0.3)
    speaker = Speaker(voices, None)
    for clip in speaker.stream(TEXT, "brisk"):
        time.sleep(len(clip.samples) / clip.rate)  # the output playing it
    assert speaker.stats.fallbacks == 0
    assert speaker.last_fallback is None


def test_a_voice_that_cannot_keep_up_hands_the_rest_of_the_stream_to_its_fallback(voices: Path) -> None:
    model = slow_model(voices / "models", "vi_VN-slow-x_low", seconds=2.0)
    # sentences of ~0.05 s of speech and a 0.35 s pause, each taking the model 2 s: far behind real time
    write_voice(voices, "sluggish", model=f"models/{model}", length_scale=0.1, fallback="vi-north")
    text = "Một hai ba. Bốn năm sáu. Bảy tám chín."
    speaker = Speaker(voices, None)
    try:
        clips = list(speaker.stream(text, "sluggish"))
        assert [c.rate for c in clips] == [MODEL_RATE, ESPEAK_RATE, ESPEAK_RATE]  # the first one was ready in time
        assert speaker.last_fallback is not None
        assert (speaker.last_fallback.voice, speaker.last_fallback.fallback) == ("sluggish", "vi-north")
        assert "cannot keep up" in speaker.last_fallback.reason
        # the next stream does not try again mid-bulletin: the fallback reads it from the start
        assert [c.rate for c in speaker.stream(text, "sluggish")] == [ESPEAK_RATE] * 3
        assert speaker.stats.fallbacks == 2
    finally:
        join_stream_threads()


def test_a_piper_voice_that_cannot_run_here_is_read_by_its_fallback(voices: Path) -> None:
    write_voice(voices, "lost", model="models/vi_VN-vais1000-medium.onnx", fallback="vi-north")
    speaker = Speaker(voices, None)
    clips = speaker.speak(SENTENCE, "lost")
    north = Speaker(voices, None).speak(SENTENCE, "vi-north")
    assert np.array_equal(clips[0].samples, north[0].samples)
    assert speaker.last_fallback is not None
    assert speaker.last_fallback.voice == "lost"
    assert "not found" in speaker.last_fallback.reason
    assert speaker.stats.fallbacks == 1


def test_a_piper_voice_that_fails_on_a_text_is_read_by_its_fallback(voices: Path) -> None:
    build_voice(voices / "models", "vi_VN-mute-x_low", silent=True)  # runs, but says nothing
    write_voice(voices, "mute", model="models/vi_VN-mute-x_low.onnx", fallback="vi-north")
    write_voice(voices, "mute_alone", model="models/vi_VN-mute-x_low.onnx")
    speaker = Speaker(voices, None)
    assert [c.rate for c in speaker.speak(TEXT, "mute")] == [ESPEAK_RATE] * 3  # the whole text, one voice
    assert speaker.last_fallback is not None
    assert "piper produced no audio for voice 'mute'" in speaker.last_fallback.reason
    assert [c.rate for c in speaker.stream(TEXT, "mute")] == [ESPEAK_RATE] * 3
    assert speaker.stats.fallbacks == 2
    with pytest.raises(SynthesisError, match="'mute_alone'"):
        speaker.speak(TEXT, "mute_alone")
    with pytest.raises(SynthesisError, match="'mute_alone'"):
        list(speaker.stream(TEXT, "mute_alone"))


def test_without_piper_tts_espeak_voices_run_and_piper_voices_say_why_not(voices: Path, tmp_path: Path) -> None:
    """A node without the extra, in a child process where importing piper fails as it does when not installed."""
    config = tmp_path / "node.yaml"
    config.write_text(f"speech:\n  voices_dir: {voices}\n", encoding="utf-8")
    code = (
        "import sys; sys.modules['piper'] = None\n"  # `import piper` now raises ImportError
        "from pathlib import Path\n"
        "from radiod.cli import main\n"
        "from radiod.speech.speaker import Speaker\n"
        f"main(['voices', '--config', {str(config)!r}])\n"
        f"speaker = Speaker(Path({str(voices)!r}), None)\n"
        "clips = speaker.speak('Xin chào bà con.', 'neural')\n"
        "print('read at', clips[0].rate, 'by', speaker.last_fallback.fallback)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    neural = next(line for line in result.stdout.splitlines() if line.startswith("neural"))
    assert "unavailable: voice 'neural' uses engine piper, but piper-tts is not installed here" in neural
    assert "pip install 'radiod[piper]'" in neural
    assert "falls back on vi-north" in neural
    assert "vi-north" in result.stdout
    assert f"read at {ESPEAK_RATE} by vi-north" in result.stdout


# ---------------------------------------------------------------- installing a voice


@pytest.fixture
def download(tmp_path: Path) -> Path:
    """A folder as an operator brings it from the internet: one model and its config."""
    return build_voice(tmp_path / "download", "vi_VN-vais1000-medium").parent


def test_install_copies_the_model_and_writes_a_voice_that_speaks(voices: Path, download: Path) -> None:
    (done,) = install(download / "vi_VN-vais1000-medium.onnx", voices, region="north")
    assert done.voice_id == "vi-vais1000-medium"
    assert done.fallback == "vi-north"
    assert (voices / "models" / "vi_VN-vais1000-medium.onnx").is_file()
    assert (voices / "models" / "vi_VN-vais1000-medium.onnx.json").is_file()
    voice = load_voice("vi-vais1000-medium", voices)
    assert (voice.engine, voice.region, voice.fallback) == ("piper", "north", "vi-north")
    assert done.test_audio_s > 0
    (clip,) = Speaker(voices, None).speak(SENTENCE, "vi-vais1000-medium")
    assert clip.rate == MODEL_RATE
    assert not list(voices.glob(".*.tmp")) and not list((voices / "models").glob(".*.tmp"))


def test_install_takes_a_folder_or_the_config_and_a_region_picks_the_fallback(voices: Path, download: Path) -> None:
    (done,) = install(download, voices, voice_id="giong-nam", region="south")
    assert (done.voice_id, done.fallback) == ("giong-nam", "vi-south")
    with pytest.raises(VoiceError, match=r"giong-nam.yaml exists: add --force"):
        install(download / "vi_VN-vais1000-medium.onnx.json", voices, voice_id="giong-nam")
    (again,) = install(download / "vi_VN-vais1000-medium.onnx.json", voices, voice_id="giong-nam", force=True)
    assert again.voice_file == voices / "giong-nam.yaml"


@pytest.mark.parametrize(
    ("config", "model", "complaint"),
    [
        ({"espeak_voice": "en-us", "language": "en_US"}, {}, r"espeak.voice: 'en-us' is not Vietnamese"),
        ({"sample_rate": 441}, {}, r"audio.sample_rate: 441 Hz is not a speech rate"),
        ({"phoneme_type": "text"}, {}, r"phoneme_type: 'text'"),
        ({"id_map": {k: v for k, v in phoneme_id_map().items() if k not in "ɗŋ"}}, {}, r"no id for ŋ ɗ"),
        ({}, {"scales": False}, r"input 'scales': missing, Piper gives tensor\(float\)"),
        ({"speakers": 2}, {"speakers": 1}, r"the config has 2 speakers but the model takes no speaker id"),
        ({}, {"silent": True}, r"reads a test sentence as silence"),
    ],
)
def test_install_refuses_a_model_that_is_not_a_usable_vietnamese_piper_voice(
    voices: Path, tmp_path: Path, config: dict, model: dict, complaint: str
) -> None:
    model_path = build_voice(tmp_path / "bad", "vi_VN-bad-medium", **model)
    write_config(model_path.with_name(model_path.name + ".json"), **config)
    with pytest.raises(VoiceError, match=complaint):
        install(model_path, voices)
    assert not (voices / "models" / model_path.name).exists()
    assert not (voices / "vi-bad-medium.yaml").exists()


def test_a_config_with_several_problems_lists_them_all(tmp_path: Path) -> None:
    path = tmp_path / "x.onnx.json"
    path.write_text(json.dumps({"audio": {"sample_rate": "22050"}, "espeak": {"voice": "de"}}), encoding="utf-8")
    with pytest.raises(VoiceError) as caught:
        read_config(path)
    message = str(caught.value)
    for key in ("audio.sample_rate", "espeak.voice: 'de'", "num_speakers: missing", "phoneme_id_map: missing"):
        assert key in message
    assert str(path) in message


def test_install_from_the_command_line(voices: Path, download: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "node.yaml"
    config.write_text(f"speech:\n  voices_dir: {voices}\n", encoding="utf-8")
    assert main(["voices", "--config", str(config), "install", str(download), "--region", "central"]) == 0
    out = capsys.readouterr().out
    assert "vi-vais1000-medium: installed" in out
    assert "fallback: vi-central" in out
    assert main(["voices", "install", str(download), "--config", str(config)]) == 1
    assert "exists: add --force" in capsys.readouterr().err
    assert main(["voices", "--config", str(config)]) == 0
    listed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("vi-vais1000-medium"))
    assert "piper" in listed
    assert "[ok]" in listed


# ---------------------------------------------------------------- memory


def meminfo(tmp_path: Path, total_kb: int, available_kb: int) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal: {total_kb} kB\nMemFree: 1000 kB\nMemAvailable: {available_kb} kB\n", encoding="utf-8")
    return path


def test_memory_warning_on_a_pi_zero_2_w_and_none_on_a_pi_4(voices: Path, tmp_path: Path) -> None:
    medium = voices / "models" / "vi_VN-vais1000-medium.onnx"
    with medium.open("wb") as file:  # the size of the real medium voice (sparse: no disk used)
        file.truncate(63 * 2**20)
    write_voice(voices, "medium", model="models/vi_VN-vais1000-medium.onnx", fallback="vi-north")
    voice = load_voice("medium", voices)
    zero_2_w = memory_warning(voice, meminfo(tmp_path, 427_000, 300_000))  # 512 MB, part of it for the GPU
    assert zero_2_w is not None
    assert "voice 'medium'" in zero_2_w
    assert "63 MB" in zero_2_w
    assert "vi-north" in zero_2_w
    assert memory_warning(voice, meminfo(tmp_path, 3_884_000, 3_000_000)) is None  # Pi 4, 4 GB
    busy = memory_warning(voice, meminfo(tmp_path, 3_884_000, 100_000))
    assert busy is not None
    assert "available now" in busy
    assert memory_warning(load_voice("vi-north", voices), meminfo(tmp_path, 427_000, 300_000)) is None
