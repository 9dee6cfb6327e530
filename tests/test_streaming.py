"""Streamed ``now`` and emergency bulletins: the first sentence plays while the rest is synthesized.

All real: the Speaker on espeak-ng (and on a Piper model made deliberately slower than real time by
``piper_model.py``), the renderer, the real-time file sink, and for the last test the daemon on a real broker.
What is checked is what a technician checks in the WAV a node wrote and in its events: chimes at both ends, no
sample over the ceiling, the speech at the target loudness, no pause longer than a line's, when the first words
came out compared with when the synthesis finished, and that a stopped bulletin stops synthesizing.
"""

from __future__ import annotations

import gc
import shutil
import threading
import time
import types
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import EventLog, Hub, ThreadNode, article_text, wait_for

from radiod.audio.loudness import integrated_lufs
from radiod.audio.output import FileOutput
from radiod.audio.pcm import Pcm, read_wav, to_int16
from radiod.audio.render import CEILING_DBFS, Programme
from radiod.config import Config, StorageConfig
from radiod.node.programme import ProgrammeMaker
from radiod.speech.speaker import EDGE_S, PARAGRAPH_PAUSE_S, SENTENCE_PAUSE_S

VOICES = Path(__file__).resolve().parent.parent / "voices"
CEILING = 10 ** (CEILING_DBFS / 20)
QUIET = 1e-3  # below -60 dBFS: silence in a WAV
WARNING = (
    "Tin khẩn cấp về cơn bão số 3.\n"  # a short heading, read louder than the rest
    "Điện lực huyện thông báo tạm ngừng cung cấp điện để bảo dưỡng lưới điện. "
    "Khu vực mất điện gồm toàn bộ thôn Đông và một phần thôn Tây."
)
ARTICLE = article_text()  # 72 sentences, 7 400 characters: under a bulletin's 20 000
TWO_SENTENCES = (
    "Điện lực huyện thông báo tạm ngừng cung cấp điện để bảo dưỡng lưới điện. "
    "Khu vực mất điện gồm toàn bộ thôn Đông và một phần thôn Tây."
)

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def make_maker(tmp_path: Path, voices: Path = VOICES, **kwargs: Any) -> ProgrammeMaker:
    """The node's programme maker (mock board, 48 kHz), its sentence cache under ``tmp_path``."""
    config = replace(Config(), storage=StorageConfig(dir=str(tmp_path / "state"), cache_dir=str(tmp_path / "cache")))
    config = replace(config, speech=replace(config.speech, voices_dir=str(voices)))
    return ProgrammeMaker(config, **kwargs)


def cached_sentences(tmp_path: Path) -> int:
    return len(list((tmp_path / "cache").glob("*/*.wav")))


def synthesizing() -> bool:
    """A Speaker's stream is still synthesizing (its thread is named so)."""
    return any(t.name == "speech-stream" and t.is_alive() for t in threading.enumerate())


def silences_s(samples: np.ndarray, rate: int) -> np.ndarray:
    """The length of every run of silence in ``samples``."""
    quiet = np.concatenate([[0], (np.abs(samples) < QUIET).astype(np.int8), [0]])
    edges = np.diff(quiet)
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)) / rate


def speech_of(samples: np.ndarray, programme: Programme) -> tuple[np.ndarray, list[Pcm]]:
    """The programme's samples from the first speech to the last, and each speech clip's samples."""
    spans = [s for s in programme.spans if s.kind == "speech"]
    clips = [Pcm(samples[s.start : s.stop], programme.rate) for s in spans]
    return samples[spans[0].start : spans[-1].stop], clips


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


# ---------------------------------------------------------------- espeak-ng


def test_a_streamed_bulletin_plays_through_the_file_sink_with_chimes_at_its_level_without_gaps(
    tmp_path: Path,
) -> None:
    maker = make_maker(tmp_path)
    programme = maker.make(WARNING, "vi-north", stream=True)
    output = FileOutput(tmp_path / "out", programme.rate)
    result = output.play(programme, "warning", threading.Event())
    assert result.completed and programme.complete and result.path is not None
    wav = read_wav(result.path)
    rate, samples = wav.rate, wav.samples
    assert len(samples) == programme.n_samples
    assert [s.kind for s in programme.spans] == ["chime", "speech", "speech", "speech", "chime"]
    # a rising chime opens it and a falling one closes it
    note, last = round(0.25 * rate), round(3 * 0.28 * rate)
    opening, closing = (samples[s.start : s.stop] for s in (programme.spans[0], programme.spans[-1]))
    assert dominant_hz(opening[:note], rate) == pytest.approx(523, abs=8)
    assert dominant_hz(closing[:note], rate) == pytest.approx(1047, abs=8)
    assert dominant_hz(closing[last : last + note], rate) == pytest.approx(523, abs=8)
    # never over the ceiling (one int16 step of rounding), the speech at the target though its gain was set
    # from the first sentences only
    assert np.max(np.abs(samples)) <= CEILING + 1 / 32768
    speech, clips = speech_of(samples, programme)
    assert integrated_lufs(clips) == pytest.approx(-16.0, abs=1.5)
    # between the first and the last word, no silence longer than the pause after a line
    assert silences_s(speech, rate).max() <= PARAGRAPH_PAUSE_S + 2 * EDGE_S + 0.01
    # it played in real time
    assert result.audio_end - result.audio_start == pytest.approx(programme.duration_s, abs=1.0)


def test_the_first_words_come_out_while_the_rest_is_still_being_synthesized(tmp_path: Path) -> None:
    maker = make_maker(tmp_path)
    sentences = len(maker.speaker.sentences(ARTICLE, "vi-north"))
    programme = maker.make(ARTICLE, "vi-north", chime=False, stream=True)
    blocks = programme.blocks(960)
    first = next(blocks)
    still_synthesizing, cached = synthesizing(), cached_sentences(tmp_path)
    blocks.close()
    assert np.abs(first).max() > QUIET  # the first block is speech: no chime here
    assert still_synthesizing
    assert cached < sentences / 2, f"{cached} of {sentences} sentences were synthesized before the first block"
    wait_for(lambda: not synthesizing(), 10, "the stream's synthesis to end")


def test_stopping_a_streamed_play_stops_its_synthesis(tmp_path: Path) -> None:
    maker = make_maker(tmp_path)
    sentences = len(maker.speaker.sentences(ARTICLE, "vi-north"))
    programme = maker.make(ARTICLE, "vi-north", chime=False, stream=True)
    stop = threading.Event()
    result = FileOutput(tmp_path / "out", programme.rate).play(programme, "long", stop, on_start=lambda _: stop.set())
    assert not result.completed and not programme.complete
    wait_for(lambda: not synthesizing(), 10, "the stream's synthesis to end")
    assert maker.speaker.stats.misses < sentences / 2
    assert cached_sentences(tmp_path) == maker.speaker.stats.misses


def test_a_stopped_bulletin_played_again_plays_whole(tmp_path: Path) -> None:
    # A `now` bulletin pre-empted by an emergency is played again with the same programme afterwards.
    maker = make_maker(tmp_path)
    programme = maker.make(TWO_SENTENCES, "vi-north", chime=False, stream=True)
    output = FileOutput(tmp_path / "out", programme.rate)
    stop = threading.Event()
    threading.Timer(1.5, stop.set).start()  # in the first sentence, before the second is taken from the stream
    first = output.play(programme, "cut", stop)
    assert not first.completed
    assert [s.kind for s in programme.spans] == ["speech"]
    again = output.play(programme, "again", threading.Event())
    assert again.completed and programme.complete and again.path is not None
    assert [s.kind for s in programme.spans] == ["speech", "speech"]
    replayed = read_wav(again.path).samples
    assert len(replayed) == programme.n_samples
    whole = sum(clip.duration_s for clip in maker.speaker.stream(TWO_SENTENCES, "vi-north"))  # from the cache
    assert programme.duration_s == pytest.approx(whole, abs=0.01)
    assert first.path is not None
    cut = read_wav(first.path).samples
    np.testing.assert_array_equal(replayed[: len(cut)], cut)  # the same audio up to where it was stopped
    _, clips = speech_of(replayed, programme)
    assert integrated_lufs(clips) == pytest.approx(-16.0, abs=1.5)


def test_repeat_two_replays_the_speech_received(tmp_path: Path) -> None:
    maker = make_maker(tmp_path)
    text = "Thông báo thử. Xin chào bà con."
    programme = maker.make(text, "vi-north", chime=False, repeat=2, gap_s=0.5, stream=True)
    result = FileOutput(tmp_path / "out", programme.rate).play(programme, "twice", threading.Event())
    assert result.completed and result.path is not None
    samples = read_wav(result.path).samples
    assert [s.kind for s in programme.spans] == ["speech", "speech"] * 2
    spans = programme.spans
    once = spans[1].stop - spans[0].start
    gap = spans[2].start - spans[1].stop
    assert gap == round(0.5 * programme.rate)
    assert not np.any(samples[spans[1].stop : spans[2].start])
    np.testing.assert_array_equal(samples[spans[2].start : spans[2].start + once], samples[:once])
    assert maker.speaker.stats.misses == 2  # the second time was not synthesized again


def held_bytes(root: object) -> int:
    """Bytes of the numpy arrays reachable from ``root`` (each counted once, views with their base): the samples
    a programme keeps in memory. Modules, classes and functions' globals are not followed, closures are."""
    seen: set[int] = set()
    arrays: dict[int, int] = {}
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, str, bytes, int, float)):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            while isinstance(obj.base, np.ndarray):
                obj = obj.base
            arrays[id(obj)] = obj.nbytes
        elif isinstance(obj, types.FunctionType):
            todo += [cell.cell_contents for cell in obj.__closure__ or ()]
        else:
            todo += gc.get_referents(obj)
    return sum(arrays.values())


def play_all(programme: Programme, watch: list[int] | None = None) -> np.ndarray:
    """The programme's samples as a WAV holds them, taken as fast as they are computed; ``watch`` gets the
    bytes it holds (:func:`held_bytes`) after each block."""
    played = []
    for block in programme.blocks(4800):
        played.append(to_int16(block))
        if watch is not None:
            watch.append(held_bytes(programme))
    return np.concatenate(played)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_a_long_programme_holds_a_few_clips_at_a_time_and_repeats_the_same_speech(tmp_path: Path, stream: bool) -> None:
    # An 80-minute bulletin's clips are 200 MB: a programme must not keep every clip it has played.
    maker = make_maker(tmp_path, hold_chars=0)  # as a text past HOLD_CHARS
    text = ARTICLE[: ARTICLE.index(".", len(ARTICLE) // 2) + 1]  # 38 sentences, 4.7 minutes
    speech_bytes = sum(clip.samples.nbytes for clip in maker.speaker.speak(text, "vi-north"))
    programme = maker.make(text, "vi-north", chime=False, repeat=2, gap_s=0.5, stream=stream)
    held: list[int] = []
    samples = play_all(programme, held)
    assert max(held) < speech_bytes / 4, f"held {max(held)} bytes of the {speech_bytes} of its speech at once"
    spans = programme.spans
    assert len(samples) == programme.n_samples and len(spans) == 2 * 38
    first, second = spans[0].start, spans[38].start
    once = spans[37].stop - first
    np.testing.assert_array_equal(samples[second : second + once], samples[first : first + once])


def test_a_programme_whose_sentences_left_the_cache_plays_the_same_again(tmp_path: Path) -> None:
    # The cache may evict a sentence between the rendering of a scheduled bulletin and its play (or between two
    # plays): the programme synthesizes it again.
    maker = make_maker(tmp_path, hold_chars=0)  # as a text past HOLD_CHARS
    programme = maker.make(WARNING, "vi-north", repeat=2, gap_s=0.5, stream=False)
    before = play_all(programme)
    shutil.rmtree(tmp_path / "cache")
    again = play_all(programme)
    np.testing.assert_array_equal(again, before)
    assert maker.speaker.stats.misses == 2 * len(maker.speaker.sentences(WARNING, "vi-north"))


# ---------------------------------------------------------------- a neural voice slower than real time


def slow_voice(tmp_path: Path, seconds: float, **fields: object) -> Path:
    """A copy of the shipped voices plus 'sluggish': the Piper test model made to take about ``seconds`` per
    short sentence on this machine, with no fallback voice, so a stream can only wait for it."""
    pytest.importorskip("piper", reason="piper-tts is not installed")
    pytest.importorskip("onnx", reason="onnx (which builds the test model) is not installed")
    from piper import PiperVoice
    from piper_model import build_voice

    voices = tmp_path / "voices"
    shutil.copytree(VOICES, voices)
    probe = PiperVoice.load(build_voice(voices / "models", "probe", work=20))
    list(probe.synthesize("Một."))  # ONNX Runtime's first run is slow
    started = time.monotonic()
    list(probe.synthesize("Một hai ba."))
    work = max(1, round(20 * seconds / (time.monotonic() - started)))
    model = build_voice(voices / "models", "vi_VN-slow-x_low", work=work)
    lines = ["description: slow", "engine: piper", "region: north", f"model: models/{model.name}"]
    lines += [f"{key}: {value}" for key, value in fields.items()]
    (voices / "sluggish.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return voices


SHORT_SENTENCES = "Một hai ba. Bốn năm sáu. Bảy tám chín. Mười mười một. Mười hai mười ba."


def test_a_voice_slower_than_real_time_is_waited_for_and_the_file_has_no_gap(tmp_path: Path) -> None:
    # ~0.06 s of speech and a 0.35 s pause per sentence, each taking the voice ~1 s: far behind real time
    maker = make_maker(tmp_path, slow_voice(tmp_path, seconds=1.0, length_scale=0.1))
    programme = maker.make(SHORT_SENTENCES, "sluggish", chime=False, stream=True)
    result = FileOutput(tmp_path / "out", programme.rate).play(programme, "slow", threading.Event())
    assert result.completed and result.path is not None
    samples = read_wav(result.path).samples
    assert len(samples) == programme.n_samples
    assert [s.kind for s in programme.spans] == ["speech"] * 5
    assert maker.speaker.stats.fallbacks == 0
    # the synthesis was slower than the audio: the play took longer than what it wrote...
    assert result.audio_end - result.audio_start > programme.duration_s
    # ...and yet what it wrote has only the sentences' own pauses
    speech, _ = speech_of(samples, programme)
    assert silences_s(speech, programme.rate).max() <= SENTENCE_PAUSE_S + 2 * EDGE_S + 0.01
    assert np.max(np.abs(samples)) <= CEILING + 1 / 32768


def test_a_play_stopped_before_the_first_sentence_arrived_stops_the_synthesis(tmp_path: Path) -> None:
    maker = make_maker(tmp_path, slow_voice(tmp_path, seconds=0.5))
    programme = maker.make(" ".join([SHORT_SENTENCES] * 3), "sluggish", stream=True)  # 15 sentences, with the chime
    stop = threading.Event()
    result = FileOutput(tmp_path / "out", programme.rate).play(programme, "cut", stop, on_start=lambda _: stop.set())
    assert not result.completed
    assert [s.kind for s in programme.spans] == ["chime"]  # stopped in the chime, no speech laid out yet
    wait_for(lambda: not synthesizing(), 10, "the stream's synthesis to end")
    assert maker.speaker.stats.misses < 15 / 2  # it stopped after the sentence it was reading


# ---------------------------------------------------------------- the daemon


def test_the_node_starts_a_long_emergency_while_synthesizing_it_and_a_cancel_stops_both(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path
) -> None:
    node = start_node()
    sentences = len(node.daemon.maker.speaker.sentences(ARTICLE, "vi-north"))
    bid = hub.post(ARTICLE, priority="emergency", chime=True)["id"]
    events.wait("started", bulletin=bid)
    assert cached_sentences(tmp_path) < sentences / 2  # on air long before the text was all synthesized
    hub.operator().cancel(bid)
    assert events.wait("interrupted", bulletin=bid)[0]["reason"] == "cancelled"
    wait_for(lambda: not synthesizing(), 10, "the stream's synthesis to end")
    assert cached_sentences(tmp_path) < sentences


def test_warming_a_long_text_fills_the_cache_one_clip_at_a_time(tmp_path: Path) -> None:
    """A scheduled bulletin past HOLD_CHARS is synthesized ahead into the cache without being held whole: every
    sentence is then a cache hit when it plays."""
    maker = make_maker(tmp_path, hold_chars=0)  # as a text past HOLD_CHARS
    keys = maker.speaker.sentence_keys(WARNING, "vi-north")
    assert keys and maker.speaker.cache is not None
    assert all(maker.speaker.cache.get(key) is None for key, _ in keys)
    maker.warm(WARNING, "vi-north")
    assert all(maker.speaker.cache.get(key) is not None for key, _ in keys)
