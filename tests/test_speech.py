"""The speech pipeline on the real espeak-ng and real files: sentences, pauses, parallel synthesis, the cache."""

from __future__ import annotations

import os
import shutil
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from harness import article_text, bulletin_text, corpus, read_text
from hypothesis import given
from hypothesis import strategies as st

from radiod.audio.pcm import Pcm
from radiod.errors import SynthesisError, VoiceError
from radiod.speech.cache import SpeechCache
from radiod.speech.speaker import EDGE_S, PARAGRAPH_PAUSE_S, SENTENCE_PAUSE_S, Speaker, split_sentences
from radiod.speech.tts import engine_for

VOICES = Path(__file__).resolve().parent.parent / "voices"
BULLETIN = bulletin_text("02-canh-bao-bao")  # the storm warning
CLAUSE = "các hộ gia đình chằng chống nhà cửa, thu hoạch lúa và hoa màu, không ra đồng"


def article_start(limit: int) -> str:
    """The first paragraphs of the article-length text, at least ``limit`` bytes."""
    text = ""
    for paragraph in article_text().splitlines():
        text += paragraph + "\n"
        if len(text.encode()) >= limit:
            return text
    raise AssertionError("article too short")


def speech_span_s(pcm: Pcm) -> float:
    """Seconds from the first to the last non-zero sample: the clip without its silence and pause."""
    loud = np.flatnonzero(pcm.samples)
    return (loud[-1] - loud[0]) / pcm.rate


def trailing_silence_s(pcm: Pcm) -> float:
    return (len(pcm.samples) - 1 - np.flatnonzero(pcm.samples)[-1]) / pcm.rate


def voices_with(tmp_path: Path, **variants: dict[str, object]) -> Path:
    """A copy of the shipped voices plus variants of vi-north: ``name={"rate": 200}``."""
    folder = tmp_path / "voices"
    shutil.copytree(VOICES, folder)
    north = (VOICES / "vi-north.yaml").read_text(encoding="utf-8")
    for name, changes in variants.items():
        lines = [line for line in north.splitlines() if line.split(":")[0] not in changes]
        lines += [f"{key}: {value}" for key, value in changes.items()]
        (folder / f"{name}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def cache_files(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("*/*.wav"))


# ---------------------------------------------------------------- sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Xin chào bà con. Hôm nay trời mưa!", ["Xin chào bà con.", "Hôm nay trời mưa!"]),
        ("Có họp không? Có.", ["Có họp không?", "Có."]),
        ("Thứ nhất, đi họp; thứ hai: mang theo giấy tờ.", ["Thứ nhất, đi họp; thứ hai: mang theo giấy tờ."]),
        ("Giá 1.000 đồng, lãi 2,5%. Xong.", ["Giá 1.000 đồng, lãi 2,5%.", "Xong."]),
        ("Gạo, ngô, v.v. và các loại khác.", ["Gạo, ngô, v.v. và các loại khác."]),
        ("Chờ đã... rồi đi. Hết.", ["Chờ đã... rồi đi.", "Hết."]),
        ('Ông nói: "Đi thôi." Mọi người đi.', ['Ông nói: "Đi thôi."', "Mọi người đi."]),
        ("Dòng một\nDòng hai\r\n\r\nDòng ba", ["Dòng một", "Dòng hai", "Dòng ba"]),
        ("  Xin   chào\tbà con.  ", ["Xin chào bà con."]),
        ("Xin chào.\n...\n- - -\n", ["Xin chào."]),
        ("", []),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


@given(st.text(alphabet=st.sampled_from("aàbcđêô1 .,!?;:…\n\"'”)"), max_size=80))
def test_splitting_loses_no_letter_or_digit_and_keeps_lines_apart(text: str) -> None:
    sentences = split_sentences(text)
    assert [c for c in text if c.isalnum()] == [c for s in sentences for c in s if c.isalnum()]
    assert all(s and s == s.strip() and "\n" not in s for s in sentences)


def test_sentences_are_normalized_for_the_voices_region() -> None:
    speaker = Speaker(VOICES, None)
    (north,) = speaker.sentences("Giá 1.000 đồng.", "vi-north")
    (south,) = speaker.sentences("Giá 1.000 đồng.", "vi-south")
    assert "nghìn" in north
    assert "ngàn" in south
    assert not any(ch.isdigit() for ch in north + south)


# ---------------------------------------------------------------- speaking


@pytest.mark.parametrize("path", corpus("bulletins"), ids=lambda path: path.stem)
def test_a_bulletin_becomes_one_int16_clip_per_sentence(path: Path) -> None:
    text = read_text(path)
    speaker = Speaker(VOICES, None)
    clips = speaker.speak(text, "vi-north")
    assert len(clips) == len(speaker.sentences(text, "vi-north"))
    for clip in clips:
        assert clip.samples.dtype == np.int16
        assert clip.rate == 22050
        assert np.abs(clip.samples.astype(np.int32)).max() > 3000
        assert speech_span_s(clip) > 0.3


def test_pauses_follow_sentences_and_longer_ones_follow_lines() -> None:
    speaker = Speaker(VOICES, None)
    text = "Một hai ba bốn. Năm sáu bảy tám.\nChín mười một."
    assert len(speaker.sentences(text, "vi-north")) == 3
    first, second, last = speaker.speak(text, "vi-north")
    assert SENTENCE_PAUSE_S <= trailing_silence_s(first) <= SENTENCE_PAUSE_S + EDGE_S + 0.01
    assert PARAGRAPH_PAUSE_S <= trailing_silence_s(second) <= PARAGRAPH_PAUSE_S + EDGE_S + 0.01
    assert trailing_silence_s(last) <= EDGE_S + 0.01  # the renderer decides what follows the speech
    leading = np.flatnonzero(first.samples)[0] / first.rate
    assert leading <= EDGE_S + 0.001  # espeak-ng's own leading silence is trimmed


def test_long_text_is_read_completely_in_parallel() -> None:
    """Over 1000 bytes (espeak-ng 1.51 garbles stdin lines that long): every sentence is there, as long as
    it is when read on its own, and the batches were cut at the right places."""
    text = article_start(3000)
    speaker = Speaker(VOICES, None, workers=2)
    voice = speaker.voice("vi-north")
    sentences = speaker.sentences(text, "vi-north")
    clips = speaker.speak(text, "vi-north")
    assert len(clips) == len(sentences) >= 10
    assert speaker.stats.engine_runs >= 2  # both workers had work
    engine = engine_for(voice)
    alone = [speech_span_s(engine.synthesize(s, voice, timeout_s=30)) for s in sentences]
    together = [speech_span_s(c) for c in clips]
    for sentence, single, batched in zip(sentences, alone, together, strict=True):
        assert 0.9 < batched / single < 1.1, sentence
    assert sum(together) == pytest.approx(sum(alone), rel=0.03)
    assert sum(together) > len(text.split()) / 6  # at most 6 syllables a second: nothing was skipped


def test_clips_handed_out_as_they_are_read_are_the_clips_of_speak(tmp_path: Path) -> None:
    """speak_iter (radiod speak -o renders while the rest is synthesized): the first clip comes once the first
    run is read, before the others are; all together they are exactly speak's, a repeated sentence included."""
    text = article_start(3000) + "Xin chào bà con.\nXin chào bà con.\n"
    speaker = Speaker(VOICES, tmp_path / "cache", workers=2)
    sentences = speaker.sentences(text, "vi-north")
    clips = speaker.speak_iter(text, "vi-north")
    first = next(clips)
    assert 0 < len(cache_files(tmp_path / "cache")) < len(set(sentences))  # the later runs are not kept yet
    handed = [first, *clips]
    spoken = Speaker(VOICES, None, workers=2).speak(text, "vi-north")
    assert len(handed) == len(spoken) == len(sentences)
    for one, other in zip(handed, spoken, strict=True):
        assert one.rate == other.rate and np.array_equal(one.samples, other.samples)
    assert speaker.stats.misses == len(set(sentences)) and speaker.stats.engine_runs >= 2


def test_one_sentence_over_1000_bytes_is_read_to_the_end() -> None:
    speaker = Speaker(VOICES, None)
    clause_s = speech_span_s(speaker.speak(CLAUSE.capitalize() + ".", "vi-north")[0])
    long_sentence = ", ".join([CLAUSE] * 14).capitalize() + "."
    assert len(long_sentence.encode()) > 1000
    clips = speaker.speak(long_sentence, "vi-north")  # in units of at most MAX_UNIT_CHARS, cut at commas
    assert sum(map(speech_span_s, clips)) == pytest.approx(14 * clause_s, rel=0.15)


def test_a_sentence_said_twice_is_synthesized_once() -> None:
    speaker = Speaker(VOICES, None)
    clips = speaker.speak("Xin chào bà con. Xin chào bà con.", "vi-north")
    assert len(clips) == 2
    assert speaker.stats.misses == 1
    assert np.array_equal(clips[0].samples[: len(clips[1].samples)], clips[1].samples)


def test_volume_scales_the_voice(tmp_path: Path) -> None:
    speaker = Speaker(voices_with(tmp_path, quiet={"volume": 0.5}), None)
    (full,) = speaker.speak("Xin chào bà con.", "vi-north")
    (half,) = speaker.speak("Xin chào bà con.", "quiet")
    assert len(half.samples) == len(full.samples)
    assert np.abs(half.samples.astype(np.int32) - np.rint(full.samples * 0.5)).max() <= 1


def test_unknown_voice_names_the_voices_there_are() -> None:
    with pytest.raises(VoiceError, match=r"vi-nort.*vi-central, vi-north, vi-south"):
        Speaker(VOICES, None).speak("Xin chào.", "vi-nort")


def test_a_voice_that_cannot_run_here_falls_back(tmp_path: Path) -> None:
    voices = voices_with(
        tmp_path,
        neural={"engine": "piper", "model": "vi.onnx", "fallback": "vi-north"},
        neural_only={"engine": "piper", "model": "vi.onnx"},
    )
    speaker = Speaker(voices, None)
    (fallback,) = speaker.speak("Xin chào bà con.", "neural")
    (north,) = speaker.speak("Xin chào bà con.", "vi-north")
    assert np.array_equal(fallback.samples, north.samples)
    with pytest.raises(VoiceError, match=r"neural_only.*piper"):
        speaker.speak("Xin chào bà con.", "neural_only")


def test_a_sentence_too_slow_to_synthesize_raises_naming_voice_and_timeout() -> None:
    speaker = Speaker(VOICES, None, timeout_s=0.01)
    long_sentence = ", ".join([CLAUSE] * 40).capitalize() + "."
    with pytest.raises(SynthesisError, match=r"longer than 0\.0\d s.*vi-south"):
        speaker.speak(long_sentence, "vi-south")


# ---------------------------------------------------------------- the cache


def test_second_speak_comes_from_the_cache_identical(tmp_path: Path) -> None:
    first = Speaker(VOICES, tmp_path / "cache")
    cold = first.speak(BULLETIN, "vi-north")
    unique = len(set(first.sentences(BULLETIN, "vi-north")))
    assert (first.stats.hits, first.stats.misses) == (0, unique)
    assert len(cache_files(tmp_path / "cache")) == unique

    second = Speaker(VOICES, tmp_path / "cache")  # a new process, as after a reboot
    warm = second.speak(BULLETIN, "vi-north")
    assert (second.stats.hits, second.stats.misses, second.stats.engine_runs) == (unique, 0, 0)
    assert len(warm) == len(cold)
    for a, b in zip(cold, warm, strict=True):
        assert np.array_equal(a.samples, b.samples)
        assert a.rate == b.rate


def test_sentence_keys_name_the_entries_speak_writes_and_the_pauses_it_leaves(tmp_path: Path) -> None:
    speaker = Speaker(VOICES, tmp_path / "cache")
    text = "Xin chào bà con.\nSáng mai tiêm phòng. Xin chào bà con."
    keys = speaker.sentence_keys(text, "vi-north")
    assert speaker.stats.misses == 0  # nothing synthesized to know them
    clips = speaker.speak(text, "vi-north")
    assert keys is not None and len(keys) == len(clips) == 3
    assert keys[0][0] == keys[2][0] != keys[1][0]  # the same sentence, the same entry
    assert {p.stem for p in cache_files(tmp_path / "cache")} == {key for key, _ in keys}
    assert [pause for _, pause in keys] == [PARAGRAPH_PAUSE_S, SENTENCE_PAUSE_S, 0.0]
    for clip, (_, pause) in zip(clips, keys, strict=True):
        assert trailing_silence_s(clip) == pytest.approx(pause + EDGE_S, abs=0.005)


def test_sentence_keys_are_none_for_a_voice_that_would_fall_back(tmp_path: Path) -> None:
    voices = voices_with(tmp_path, neural={"engine": "piper", "model": "vi.onnx", "fallback": "vi-north"})
    assert Speaker(voices, None).sentence_keys("Xin chào bà con.", "neural") is None


def test_no_cache_dir_means_nothing_is_kept(tmp_path: Path) -> None:
    speaker = Speaker(VOICES, None)
    speaker.speak("Xin chào bà con.", "vi-north")
    speaker.speak("Xin chào bà con.", "vi-north")
    assert (speaker.stats.hits, speaker.stats.misses) == (0, 2)


def test_rate_and_pitch_are_part_of_the_cache_key_but_the_voice_name_is_not(tmp_path: Path) -> None:
    voices = voices_with(tmp_path, fast={"rate": 200}, high={"pitch": 80}, twin={"description": '"same voice"'})
    text = "Xin chào bà con. Hôm nay trời mưa to."
    speaker = Speaker(voices, tmp_path / "cache")
    (north, _) = speaker.speak(text, "vi-north")
    (fast, _) = speaker.speak(text, "fast")
    (high, _) = speaker.speak(text, "high")
    assert speaker.stats.misses == 6 and speaker.stats.hits == 0
    assert speech_span_s(fast) < 0.85 * speech_span_s(north)
    assert not np.array_equal(high.samples, north.samples)
    speaker.speak(text, "twin")  # another file with the same engine parameters shares the entries
    assert speaker.stats.hits == 2


def test_a_corrupt_cache_entry_is_dropped_and_synthesized_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    text = "Xin chào bà con. Hôm nay trời mưa to. Không ra đồng."
    Speaker(VOICES, cache).speak(text, "vi-north")
    truncated, flipped, zeroed = cache_files(cache)
    truncated.write_bytes(truncated.read_bytes()[:-1000])  # a power cut mid-write
    blob = bytearray(flipped.read_bytes())
    blob[5000] ^= 0xFF
    flipped.write_bytes(bytes(blob))  # a bad block
    zeroed.write_bytes(bytes(len(zeroed.read_bytes())))  # a renamed file whose data never reached the card

    speaker = Speaker(VOICES, cache)
    clips = speaker.speak(text, "vi-north")
    assert (speaker.stats.corrupt, speaker.stats.misses, speaker.stats.hits) == (3, 3, 0)
    assert all(speech_span_s(c) > 0.3 for c in clips)
    again = Speaker(VOICES, cache)  # the entries were written again, whole
    again.speak(text, "vi-north")
    assert (again.stats.hits, again.stats.corrupt) == (3, 0)


def test_an_entry_is_a_wav_a_technician_can_play(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path / "cache", max_mb=16)
    pcm = Pcm(np.arange(-500, 500, dtype=np.int16), 22050)
    cache.put("ab" * 32, pcm)
    with wave.open(str(cache.path("ab" * 32))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
        assert np.array_equal(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), pcm.samples)
    back = cache.get("ab" * 32, pad_s=0.01)
    assert back is not None
    assert np.array_equal(back.samples, np.concatenate((pcm.samples, np.zeros(220, np.int16))))


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: b"",
        lambda blob: blob[:40],
        lambda blob: blob[:-2],
        lambda blob: blob + b"\0\0",
        lambda blob: blob[:-1] + b"\x7f",
        lambda blob: blob[:20] + b"\x11" + blob[21:],  # the header's sample rate
    ],
)
def test_a_damaged_entry_is_never_returned(tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    cache = SpeechCache(tmp_path / "cache", max_mb=16)
    cache.put("ab" * 32, Pcm(np.arange(-500, 500, dtype=np.int16), 22050))
    path = cache.path("ab" * 32)
    path.write_bytes(damage(path.read_bytes()))
    assert cache.get("ab" * 32) is None
    assert cache.corrupt == 1
    assert not path.exists()


def test_leftover_temporary_files_are_never_read_and_cleaned_up_when_stale(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    speaker = Speaker(VOICES, cache_dir)
    speaker.speak("Xin chào bà con.", "vi-north")
    (entry,) = cache_files(cache_dir)
    leftover = entry.with_name(f".{entry.stem}.999.1.tmp")
    leftover.write_bytes(b"half a file")
    speaker.speak("Xin chào bà con.", "vi-north")
    assert speaker.stats.hits == 1
    old = time.time() - 2 * 3600
    os.utime(leftover, (old, old))
    SpeechCache(cache_dir, 512).evict()
    assert not leftover.exists()
    assert entry.exists()


def test_the_cache_keeps_to_its_size_dropping_the_least_recently_used(tmp_path: Path) -> None:
    cache = SpeechCache(tmp_path / "cache", max_mb=1)
    clip = Pcm(np.ones(150_000, dtype=np.int16), 22050)  # 300 kB each
    now = time.time()
    for i in range(5):
        cache.put(f"{i:02d}" + "0" * 62, clip)
        os.utime(cache.path(f"{i:02d}" + "0" * 62), (now - 100 + i, now - 100 + i))
    assert cache.get("00" + "0" * 62) is not None  # the oldest is used again: now the most recent
    assert cache.evict() == 2  # 1.5 MB down to 0.9 MB, under the bound with room to spare
    assert cache.size_bytes() <= 1024 * 1024
    kept = [i for i in range(5) if cache.get(f"{i:02d}" + "0" * 62) is not None]
    assert kept == [0, 3, 4]


def test_speaking_keeps_the_cache_within_its_bound(tmp_path: Path) -> None:
    speaker = Speaker(VOICES, tmp_path / "cache", cache_max_mb=1)
    clips = speaker.speak(article_start(2000), "vi-north")
    assert sum(c.samples.nbytes for c in clips) > 2 * 1024 * 1024  # more speech than the cache may hold
    assert SpeechCache(tmp_path / "cache", 1).size_bytes() <= 1024 * 1024


# ---------------------------------------------------------------- memory bound (issue 11, item 2)

import random  # noqa: E402 (this section was added after the file's imports)

from radiod.speech.normalize import normalize  # noqa: E402
from radiod.speech.speaker import CLAUSE_PAUSE_S, MAX_UNIT_CHARS  # noqa: E402


def test_a_20000_digit_sentence_is_cut_into_short_units_losing_no_word() -> None:
    """A signed 20 000-digit bulletin read as one unit took the daemon past 1 GB: no unit may be long."""
    speaker = Speaker(VOICES, None)
    digits = "".join(str(i * 7 % 10) for i in range(20_000))
    units = speaker.sentences(digits, "vi-north")
    assert max(map(len, units)) <= MAX_UNIT_CHARS
    assert " ".join(units) == " ".join(normalize(digits, region="north", lexicon=speaker.lexicon).split())


def test_a_long_sentence_is_cut_at_clause_boundaries_with_a_short_pause() -> None:
    long_sentence = ", ".join([CLAUSE] * 14).capitalize() + ". Hết."
    units = split_sentences(long_sentence)
    assert len(units) >= 3
    assert all(len(u) <= MAX_UNIT_CHARS and u.endswith(",") for u in units[:-2])
    assert " ".join(units).split() == long_sentence.split()
    first, *_ = Speaker(VOICES, None).speak(long_sentence, "vi-north")
    assert CLAUSE_PAUSE_S <= trailing_silence_s(first) <= CLAUSE_PAUSE_S + EDGE_S + 0.01


def test_a_long_digit_string_streams_in_short_clips() -> None:
    """The first clip of 2000 digits (8 minutes of speech) is one short unit, not the whole text."""
    stream = Speaker(VOICES, None).stream("5" * 2000, "vi-north")
    try:
        clips = [next(stream) for _ in range(3)]
    finally:
        stream.close()
    assert all(len(c.samples) / c.rate < 60 for c in clips)


def test_a_clip_over_the_entry_bound_is_not_kept_and_an_oversized_entry_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = SpeechCache(tmp_path / "cache", max_mb=64)
    clip = Pcm(np.ones(150_000, dtype=np.int16), 22050)  # 300 kB, within the shipped bound
    cache.put("aa" + "0" * 62, clip)
    monkeypatch.setattr("radiod.speech.cache.MAX_ENTRY_BYTES", 200_000)
    cache.put("bb" + "0" * 62, clip)
    assert not cache.path("bb" + "0" * 62).exists()
    assert cache.get("aa" + "0" * 62) is None  # written under a larger bound: dropped, never read whole
    assert not cache.path("aa" + "0" * 62).exists()


def test_a_long_stream_keeps_the_cache_within_its_bound_while_it_plays(tmp_path: Path) -> None:
    """A long bulletin's entries must not fill the card before it ends: 2000 digits are about 30 MB of entries."""
    speaker = Speaker(VOICES, tmp_path / "cache", cache_max_mb=4)
    digits = random.Random(2000)  # not periodic: every unit is new text, a new entry
    stream = speaker.stream("".join(digits.choice("0123456789") for _ in range(2000)), "vi-north")
    try:
        for _ in range(10):
            next(stream)
            assert SpeechCache(tmp_path / "cache", 4).size_bytes() <= 6 * 1024 * 1024  # the bound and an entry or so
    finally:
        stream.close()


# ---------------------------------------------------------------- how the misses are cut into engine runs

from radiod.speech.speaker import CHUNK_BYTES, _chunks  # noqa: E402


@given(
    st.lists(st.text(alphabet="abcđệ ", min_size=1, max_size=MAX_UNIT_CHARS), max_size=60),
    st.integers(min_value=1, max_value=4),
)
def test_engine_runs_keep_every_sentence_in_order_and_end_short(texts: list[str], workers: int) -> None:
    """Runs are consecutive sentences (the clips come back in order), every worker gets one when there are
    enough sentences, none is much over CHUNK_BYTES, and the last run is no longer than the first, so the
    workers finish together rather than waiting on one long last run."""
    chunks = _chunks(texts, workers)
    assert [t for chunk in chunks for t in chunk] == texts
    assert all(chunks)
    assert len(chunks) >= min(workers, len(texts))
    for chunk in chunks:
        size = sum(len(t.encode()) for t in chunk)
        assert len(chunk) == 1 or size <= CHUNK_BYTES + max(len(t.encode()) for t in chunk)
    if len(chunks) > workers:
        sizes = [sum(len(t.encode()) for t in chunk) for chunk in chunks]
        assert sizes[-1] <= max(sizes[:workers])


def test_article_runs_shrink_towards_the_end() -> None:
    """A 9-minute article: the first runs are about CHUNK_BYTES, the last ones much shorter."""
    speaker = Speaker(VOICES, None, workers=2)
    sentences = speaker.sentences(article_text(), "vi-north")
    sizes = [sum(len(t.encode()) for t in chunk) for chunk in _chunks(sentences, 2)]
    assert sizes[0] >= CHUNK_BYTES * 0.8
    assert sizes[-1] <= CHUNK_BYTES / 2
