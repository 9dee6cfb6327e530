"""The finished-programme cache, on the real espeak-ng and real files: the same bulletin asked for again is replayed
from disk sample for sample; anything that changes a sample is a miss; a damaged entry is never played."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from harness import article_text

from radiod.audio.pcm import read_wav, to_int16
from radiod.audio.render import PROBE_S, Programme
from radiod.config import PROGRAMMES_DIR, Config, load_config
from radiod.node.programme import ProgrammeMaker
from radiod.node.programme_cache import CachedProgramme
from radiod.node.programme_index import LINK_SUFFIX

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Xin chào bà con. Sáng mai xã tổ chức tiêm phòng cho trâu bò tại nhà văn hóa thôn."


def config_in(tmp_path: Path, extra: str = "") -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(f"storage:\n  dir: {tmp_path / 'state'}\n{extra}", encoding="utf-8")
    return load_config(path)


def entries(config: Config) -> list[Path]:
    """The programmes' folder but the links (:mod:`radiod.node.programme_index`): entries and temporary files."""
    folder = config.cache_dir / PROGRAMMES_DIR
    return sorted(p for p in folder.iterdir() if p.suffix != LINK_SUFFIX) if folder.is_dir() else []


def links(config: Config) -> list[Path]:
    folder = config.cache_dir / PROGRAMMES_DIR
    return sorted(folder.glob(f"*{LINK_SUFFIX}"))


def played(programme: Programme) -> np.ndarray:
    """What an output is given, to the end: the int16 samples of a WAV file."""
    return np.concatenate(list(programme.int16_blocks(4096)))


def test_the_same_programme_again_is_replayed_from_disk_sample_for_sample(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    first = ProgrammeMaker(config).make(TEXT, "vi-north")
    assert not isinstance(first, CachedProgramme)
    rendered = played(first)
    (entry,) = entries(config)

    again = ProgrammeMaker(config)  # a new process, as the next morning
    replay = again.make(TEXT, "vi-north")
    assert isinstance(replay, CachedProgramme)
    assert again.speaker.stats.hits == again.speaker.stats.misses == 0  # no sentence even read
    assert (replay.rate, replay.n_samples) == (first.rate, first.n_samples)
    assert np.array_equal(played(replay), rendered)
    as_float = np.concatenate(list(replay.blocks(1000)))  # what a sound card is given
    assert np.array_equal(to_int16(as_float), rendered)
    assert np.max(np.abs(as_float - first.to_pcm().samples)) <= 0.5 / 32767 + 1e-7  # 16-bit rounding only
    assert replay.speech_lufs == first.speech_lufs and replay.gain_db == first.gain_db
    assert entries(config) == [entry]


def test_a_programme_rendered_while_its_speech_is_synthesized_is_the_whole_one_and_kept(tmp_path: Path) -> None:
    """radiod speak -o renders as the speech arrives (progressive): the same samples as the programme made whole,
    kept the same way, and replayed. The text is longer than the opening the level is measured on."""
    text = article_text()[:4000]
    for name in ("whole", "progressive"):
        (tmp_path / name).mkdir()
    whole = ProgrammeMaker(config_in(tmp_path / "whole")).make(text, "vi-north", repeat=2)
    config = config_in(tmp_path / "progressive")
    progressive = ProgrammeMaker(config).make(text, "vi-north", repeat=2, progressive=True)
    assert np.array_equal(played(progressive), played(whole))
    assert (progressive.n_samples, progressive.spans) == (whole.n_samples, whole.spans)
    speech_s = sum(span.stop - span.start for span in whole.spans if span.kind == "speech") / whole.rate
    assert speech_s > 2 * PROBE_S  # in each of the two repeats, more speech than the level is measured on
    assert len(entries(config)) == 1
    replay = ProgrammeMaker(config).make(text, "vi-north", repeat=2, progressive=True)
    assert isinstance(replay, CachedProgramme)
    assert np.array_equal(played(replay), played(whole))
    assert (replay.speech_lufs, replay.gain_db) == (whole.speech_lufs, whole.gain_db)


def test_anything_that_changes_a_sample_is_a_miss(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    shutil.copytree(ROOT / "voices", voices)
    north = (voices / "vi-north.yaml").read_text(encoding="utf-8")
    (voices / "vi-fast.yaml").write_text(north.replace("rate: 145", "rate: 175"), encoding="utf-8")
    config = config_in(tmp_path, f"speech:\n  voices_dir: {voices}\n")
    maker = ProgrammeMaker(config)
    played(maker.make(TEXT, "vi-north"))
    variants = [
        {"text": TEXT.replace("Sáng mai", "Chiều mai")},
        {"voice_id": "vi-fast"},
        {"volume": 0.5},
        {"repeat": 2},
        {"gap_s": 5.0},
        {"chime": False},
        {"preamble": "Thông báo diễn tập."},
    ]
    for changes in variants:
        kwargs = {"text": TEXT, "voice_id": "vi-north", **changes}
        programme = maker.make(kwargs.pop("text"), kwargs.pop("voice_id"), **kwargs)
        assert not isinstance(programme, CachedProgramme), changes
        played(programme)
    assert len(entries(config)) == 1 + len(variants)
    assert isinstance(maker.make(TEXT, "vi-north", volume=0.5), CachedProgramme)  # each is kept under its own key


def test_a_programme_stopped_before_its_end_is_not_kept(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    programme = ProgrammeMaker(config).make(TEXT, "vi-north")
    blocks = programme.blocks(4096)
    next(blocks)
    blocks.close()  # the bulletin was stopped
    assert entries(config) == []  # not even a temporary file
    assert not isinstance(ProgrammeMaker(config).make(TEXT, "vi-north"), CachedProgramme)


def test_a_streamed_programme_is_not_kept(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    played(ProgrammeMaker(config).make(TEXT, "vi-north", stream=True))
    assert entries(config) == []


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:-2], id="one-sample-short"),
        pytest.param(lambda data: data[:5000] + bytes([data[5000] ^ 1]) + data[5001:], id="one-bit-flipped"),
        pytest.param(lambda data: b"RIFX" + data[4:], id="bad-header"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_a_damaged_entry_is_a_miss_and_never_played(tmp_path: Path, damage) -> None:
    config = config_in(tmp_path)
    rendered = played(ProgrammeMaker(config).make(TEXT, "vi-north"))
    (entry,) = entries(config)
    entry.write_bytes(damage(entry.read_bytes()))

    maker = ProgrammeMaker(config)
    programme = maker.make(TEXT, "vi-north")
    assert not isinstance(programme, CachedProgramme)
    assert maker.programmes is not None and maker.programmes.corrupt == 1
    assert np.array_equal(played(programme), rendered)  # rendered again from the sentences
    assert isinstance(ProgrammeMaker(config).make(TEXT, "vi-north"), CachedProgramme)  # and kept again


def test_a_voice_replaced_by_its_fallback_is_not_kept_under_its_name(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    shutil.copytree(ROOT / "voices", voices)
    north = (voices / "vi-north.yaml").read_text(encoding="utf-8")
    neural = north.replace("engine: espeak-ng", "engine: piper\nmodel: vi.onnx\nfallback: vi-north")
    (voices / "neural.yaml").write_text(neural, encoding="utf-8")
    config = config_in(tmp_path, f"speech:\n  voices_dir: {voices}\n")
    maker = ProgrammeMaker(config)
    warnings: list[str] = []
    for _ in range(2):
        programme = maker.make(TEXT, "neural", on_fallback=lambda fb: warnings.append(fb.voice))
        assert not isinstance(programme, CachedProgramme)
        played(programme)
    assert warnings == ["neural", "neural"]  # told every time, never hidden behind a replay
    assert entries(config) == []


def test_programmes_count_in_the_cache_bound_and_the_least_recently_used_go_first(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    maker = ProgrammeMaker(config)
    played(maker.make(TEXT, "vi-north"))
    played(maker.make(TEXT, "vi-north", chime=False))
    assert maker.speaker.cache is not None
    cache = maker.speaker.cache
    old, recent = sorted(entries(config), key=lambda p: p.stat().st_size)  # the one without chimes is smaller
    past = time.time() - 3600
    os.utime(old, (past, past))  # not played for an hour; the sentences and the other programme were
    total = cache.size_bytes()
    assert total > sum(p.stat().st_size for p in (old, recent))  # the sentences are counted with them
    cache.max_bytes = total - 1
    assert cache.evict() == 1
    assert entries(config) == [recent]


def test_radiod_speak_twice_writes_the_same_file(tmp_path: Path) -> None:
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "config.yaml").write_text(f"storage:\n  dir: {tmp_path / 'state'}\n", encoding="utf-8")
    command = [sys.executable, "-m", "radiod.cli", "speak", "--config", str(tmp_path / "config.yaml")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    outputs = []
    for name in ("rendered.wav", "replayed.wav"):
        out = tmp_path / name
        done = subprocess.run(
            [*command, "-f", str(tmp_path / "text.txt"), "-o", str(out)], check=True, env=env, capture_output=True,
            text=True,
        )
        assert done.stdout.endswith(" s at 48000 Hz\n")
        outputs.append(out.read_bytes())
    assert len(entries(load_config(tmp_path / "config.yaml"))) == 1
    assert outputs[0] == outputs[1]
    assert read_wav(tmp_path / "replayed.wav").rate == 48000


# ------------------------------------------------- radiod speak -o: a programme found again by its request's link


def speak(tmp_path: Path, out: Path, *extra: str, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``radiod speak -f text.txt -o OUT`` with the config in ``tmp_path`` (written by :func:`config_in`)."""
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    command = [sys.executable, *python, "-m", "radiod.cli", "speak", "--config", str(tmp_path / "config.yaml")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [*command, "-f", str(tmp_path / "text.txt"), "-o", str(out), *extra]
    done = subprocess.run(args, check=False, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(" s at 48000 Hz\n")
    return done


def test_the_same_request_again_is_copied_from_its_link_without_the_audio_stack(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    speak(tmp_path, tmp_path / "first.wav")
    (link,) = links(config)
    (entry,) = entries(config)
    assert link.read_text(encoding="utf-8").split("\n")[0] == entry.stem  # the link names the entry

    again = speak(tmp_path, tmp_path / "again.wav", python=("-X", "importtime"))
    assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "first.wav").read_bytes()
    imported = {line.rsplit("|", 1)[-1].strip() for line in again.stderr.splitlines() if "|" in line}
    assert "radiod.node.programme_index" in imported
    assert not {"numpy", "radiod.speech.normalize", "radiod.node.programme"} & imported  # not worked out again


def test_a_programme_kept_without_its_link_is_copied_and_linked_again(tmp_path: Path) -> None:
    """An entry whose link is gone (evicted, or kept by an older radiod) is found from the sentences' keys."""
    config = config_in(tmp_path)
    speak(tmp_path, tmp_path / "first.wav")
    (link,) = links(config)
    link.unlink()
    again = speak(tmp_path, tmp_path / "again.wav", python=("-X", "importtime"))
    assert "radiod.speech.normalize" in again.stderr  # its key worked out from the sentences again
    assert len(entries(config)) == 1 and links(config) == [link]
    assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "first.wav").read_bytes()


def test_an_older_longer_file_is_written_over_and_cut_to_the_programme(tmp_path: Path) -> None:
    config_in(tmp_path)
    speak(tmp_path, tmp_path / "first.wav")
    out = tmp_path / "out.wav"
    out.write_bytes(b"\x7f" * 3 * (tmp_path / "first.wav").stat().st_size)
    speak(tmp_path, out)
    assert out.read_bytes() == (tmp_path / "first.wav").read_bytes()


def test_what_changes_the_sound_is_another_link(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    shutil.copytree(ROOT / "voices", voices)
    config = config_in(tmp_path, f"speech:\n  voices_dir: {voices}\n")
    speak(tmp_path, tmp_path / "first.wav")
    speak(tmp_path, tmp_path / "no-chime.wav", "--no-chime")
    north = voices / "vi-north.yaml"
    north.write_text(north.read_text(encoding="utf-8").replace("rate: 145", "rate: 170"), encoding="utf-8")
    speak(tmp_path, tmp_path / "faster.wav")
    durations = [read_wav(tmp_path / f"{name}.wav").duration_s for name in ("first", "no-chime", "faster")]
    assert durations[1] < durations[0] and durations[2] < durations[0]  # none of them replayed the first
    assert len(links(config)) == len(entries(config)) == 3


def test_a_damaged_entry_found_by_its_link_is_dropped_said_and_made_again(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    speak(tmp_path, tmp_path / "first.wav")
    (entry,) = entries(config)
    data = entry.read_bytes()
    entry.write_bytes(data[:5000] + bytes([data[5000] ^ 1]) + data[5001:])

    again = speak(tmp_path, tmp_path / "again.wav")
    assert "dropped a corrupt programme cache entry" in again.stderr and "checksum" in again.stderr
    assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "first.wav").read_bytes()
    assert entries(config) == [entry] and entry.read_bytes() == data  # kept again, whole


def test_a_link_made_by_another_espeak_ng_is_not_followed(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    speak(tmp_path, tmp_path / "first.wav")
    (link,) = links(config)
    key, version = link.read_text(encoding="utf-8").split("\n")[:2]
    link.write_text(f"{key}\nespeak-ng 1.49 data 0000\n", encoding="utf-8")  # as if espeak-ng was upgraded since

    again = speak(tmp_path, tmp_path / "again.wav", python=("-X", "importtime"))
    assert "radiod.speech.normalize" in again.stderr  # worked out from the sentences
    assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "first.wav").read_bytes()
    assert link.read_text(encoding="utf-8") == f"{key}\n{version}\n"  # linked again by this espeak-ng


@pytest.mark.parametrize("made_before", [False, True], ids=["made", "copied"])
def test_an_output_that_cannot_be_written_is_said_not_a_traceback(tmp_path: Path, made_before: bool) -> None:
    config_in(tmp_path)
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    if made_before:
        speak(tmp_path, tmp_path / "first.wav")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for out in (tmp_path / "no-such-folder" / "out.wav", tmp_path):
        done = subprocess.run(
            [sys.executable, "-m", "radiod.cli", "speak", "--config", str(tmp_path / "config.yaml"),
             "-f", str(tmp_path / "text.txt"), "-o", str(out)],
            check=False, env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 1
        assert done.stderr.startswith(f"radiod speak: cannot write {out}: "), done.stderr
        assert "Traceback" not in done.stderr
