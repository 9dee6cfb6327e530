"""Programme rendering: loudness, chimes, repeats, resampling, the ceiling; and the BS.1770 meter it relies on.

Speech comes from espeak-ng, as on a node; the renderer's output is checked the way a technician would with
a meter and a spectrum: the level, the peaks, where the chimes are, how long it lasts.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from radiod.audio.chime import default_chimes
from radiod.audio.limiter import limit
from radiod.audio.loudness import integrated_lufs
from radiod.audio.pcm import Pcm, read_wav, to_int16
from radiod.audio.render import (
    CEILING_DBFS,
    CHIME_LEVEL_LU,
    CHIME_PAUSE_S,
    RenderOptions,
    StreamingProgramme,
    render_programme,
)

CEILING = 10 ** (CEILING_DBFS / 20)
SENTENCES = [
    "Kính thưa bà con, ủy ban nhân dân xã xin thông báo lịch tiêm phòng cho trẻ em.",
    "Buổi tiêm diễn ra vào sáng thứ bảy tuần này tại trạm y tế xã.",
    "Kính mời bà con đến đúng giờ.",
]


def espeak(text: str, path: Path) -> Pcm:
    """Vietnamese speech as the speech module keeps it: int16 at espeak-ng's rate."""
    subprocess.run(["espeak-ng", "-v", "vi", "-w", str(path), text], check=True)
    pcm = read_wav(path)
    return Pcm(to_int16(pcm.samples), pcm.rate)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[Pcm]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    tmp = tmp_path_factory.mktemp("speech")
    return [espeak(text, tmp / f"{i}.wav") for i, text in enumerate(SENTENCES)]


def scaled(clips: list[Pcm], factor: float) -> list[Pcm]:
    return [Pcm((c.as_float() * factor).astype(np.float32), c.rate) for c in clips]


def tone(freq: float, seconds: float, rate: int, amplitude: float = 1.0) -> Pcm:
    t = np.arange(round(seconds * rate)) / rate
    return Pcm((amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def part(pcm: Pcm, programme, kind: str) -> list[Pcm]:
    """The rendered samples of every span of ``kind``."""
    return [Pcm(pcm.samples[s.start : s.stop], pcm.rate) for s in programme.spans if s.kind == kind]


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


# ---------------------------------------------------------------- loudness meter


@pytest.mark.parametrize("rate", [48000, 44100, 22050])
def test_a_997_hz_sine_reads_as_the_standard_says(rate: int) -> None:
    # BS.1770-4: a 0 dBFS 997 Hz sine reads -3.01 LUFS; the level follows the amplitude in dB.
    assert integrated_lufs([tone(997, 5, rate)]) == pytest.approx(-3.01, abs=0.05)
    assert integrated_lufs([tone(997, 5, rate, amplitude=0.1)]) == pytest.approx(-23.01, abs=0.05)


def sine_dbfs(level_dbfs: float, seconds: float, rate: int) -> Pcm:
    """A 1 kHz sine whose peak is at ``level_dbfs``."""
    return tone(1000, seconds, rate, amplitude=10 ** (level_dbfs / 20))


@pytest.mark.parametrize("rate", [48000, 22050])
def test_ebu_tech_3341_cases_read_minus_23_lufs_in_the_mono_convention(rate: int) -> None:
    # EBU Tech 3341 plays its 1 kHz tones on two channels; one channel of weight 1.0 reads 3 dB lower, so the
    # mono equivalent of "-23 dBFS on both channels" is a sine peaking at -20 dBFS. Cases 1-5, tolerance 0.1 LU.
    assert integrated_lufs([sine_dbfs(-20, 20, rate)]) == pytest.approx(-23.0, abs=0.1)  # case 1
    assert integrated_lufs([sine_dbfs(-30, 20, rate)]) == pytest.approx(-33.0, abs=0.1)  # case 2
    gated = [sine_dbfs(-33, 10, rate), sine_dbfs(-20, 60, rate), sine_dbfs(-33, 10, rate)]
    assert integrated_lufs(gated) == pytest.approx(-23.0, abs=0.1)  # case 3: the relative gate
    quiet = sine_dbfs(-69, 10, rate)
    assert integrated_lufs([quiet, *gated, quiet]) == pytest.approx(-23.0, abs=0.1)  # case 4: the absolute gate
    steps = [sine_dbfs(-23, 20, rate), sine_dbfs(-17, 20.1, rate), sine_dbfs(-23, 20, rate)]
    assert integrated_lufs(steps) == pytest.approx(-23.0, abs=0.1)  # case 5


def test_k_weighting_favours_presence_over_bass() -> None:
    # Equal amplitude: 4 kHz (on the +4 dB shelf) reads louder than 1 kHz, 30 Hz (below the high-pass) quieter.
    at_1k = integrated_lufs([tone(997, 5, 48000, 0.1)])
    assert integrated_lufs([tone(4000, 5, 48000, 0.1)]) > at_1k + 3
    assert integrated_lufs([tone(30, 5, 48000, 0.1)]) < at_1k - 1


def test_silence_is_gated_out_and_quiet_passages_by_the_relative_gate() -> None:
    rate = 48000
    loud = tone(997, 5, rate, 0.1)
    alone = integrated_lufs([loud])
    # Absolute gate: silence after the tone does not count, however long (only the three blocks that straddle
    # the tone's end, partly tone, pass the gates and lower the result a little, as the standard has it).
    after_1s = integrated_lufs([loud, Pcm.silence(1, rate)])
    assert integrated_lufs([loud, Pcm.silence(20, rate)]) == pytest.approx(after_1s, abs=1e-6)
    assert after_1s == pytest.approx(alone, abs=0.2)
    # Relative gate: a passage 20 dB down (more than 10 LU below) is left out...
    assert integrated_lufs([loud, tone(997, 5, rate, 0.01)]) == pytest.approx(after_1s, abs=0.05)
    # ...but one only 6 dB down counts and pulls the result down.
    assert integrated_lufs([loud, tone(997, 5, rate, 0.05)]) < alone - 1.5


def test_clips_are_measured_as_if_concatenated(speech: list[Pcm]) -> None:
    joined = Pcm(np.concatenate([c.samples for c in speech]), speech[0].rate)
    assert integrated_lufs(speech) == pytest.approx(integrated_lufs([joined]), abs=1e-6)
    # int16 and float copies of the same audio read the same
    assert integrated_lufs(speech) == pytest.approx(integrated_lufs(scaled(speech, 1.0)), abs=1e-3)


def test_silence_and_audio_shorter_than_a_block_have_no_loudness() -> None:
    assert integrated_lufs([Pcm.silence(3, 48000)]) == -math.inf
    assert integrated_lufs([tone(997, 0.3, 48000)]) == -math.inf
    assert integrated_lufs([]) == -math.inf


# ---------------------------------------------------------------- level and ceiling


@pytest.mark.parametrize("factor", [0.01, 1.0, 10.0])
def test_speech_reaches_the_target_and_never_clips_whatever_its_level(speech: list[Pcm], factor: float) -> None:
    programme = render_programme(scaled(speech, factor), RenderOptions())
    pcm = programme.to_pcm()
    assert np.max(np.abs(pcm.samples)) <= CEILING + 1e-6
    assert integrated_lufs(part(pcm, programme, "speech")) == pytest.approx(-16.0, abs=1.0)


@pytest.mark.parametrize("target", [-23.0, -14.0])
def test_other_targets_are_reached(speech: list[Pcm], target: float) -> None:
    programme = render_programme(speech, RenderOptions(target_lufs=target))
    pcm = programme.to_pcm()
    assert np.max(np.abs(pcm.samples)) <= CEILING + 1e-6
    assert integrated_lufs(part(pcm, programme, "speech")) == pytest.approx(target, abs=1.0)


def test_the_limiter_leaves_audio_under_the_ceiling_alone_and_holds_peaks_to_it() -> None:
    rate = 48000
    quiet = tone(440, 1, rate, amplitude=0.5).samples
    assert limit(quiet, rate) is quiet  # nothing over: not even a copy
    loud = tone(440, 1, rate, amplitude=2.0).samples
    limited = limit(loud, rate)
    assert len(limited) == len(loud)
    assert np.max(np.abs(limited)) <= CEILING + 1e-6
    # a gain, not a clipper: the waveform keeps its shape (a sine stays a sine, scaled)
    middle = slice(rate // 4, 3 * rate // 4)
    ratio = limited[middle][np.abs(loud[middle]) > 0.5] / loud[middle][np.abs(loud[middle]) > 0.5]
    assert np.ptp(ratio) < 0.02
    assert np.median(ratio) == pytest.approx(CEILING / 2.0, rel=0.02)


def test_a_square_wave_and_a_click_train_stay_under_the_ceiling() -> None:
    rate = 22050
    t = np.arange(3 * rate) / rate
    square = Pcm(np.sign(np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate)
    clicks = np.zeros(3 * rate, dtype=np.float32)
    clicks[::2205] = 1.0  # ten full-scale clicks a second: a crest factor no voice has
    for clip in (square, Pcm(clicks, rate)):
        programme = render_programme([clip], RenderOptions(chime=False))
        assert np.max(np.abs(programme.to_pcm().samples)) <= CEILING + 1e-6
    pcm = render_programme([square], RenderOptions(chime=False)).to_pcm()
    assert integrated_lufs([pcm]) == pytest.approx(-16.0, abs=1.0)


def test_volume_scales_the_whole_programme(speech: list[Pcm]) -> None:
    full = render_programme(speech, RenderOptions())
    half = render_programme(speech, RenderOptions(volume=0.5))
    full_pcm, half_pcm = full.to_pcm(), half.to_pcm()
    drop = integrated_lufs(part(full_pcm, full, "speech")) - integrated_lufs(part(half_pcm, half, "speech"))
    assert drop == pytest.approx(6.02, abs=0.5)
    assert not np.any(render_programme(speech, RenderOptions(volume=0.0)).to_pcm().samples)


def test_a_preamble_is_spoken_before_the_speech_at_the_same_loudness(speech: list[Pcm]) -> None:
    notice = scaled(speech[2:], 0.05)  # recorded much quieter than the speech
    programme = render_programme(speech, RenderOptions(preamble=tuple(notice), repeat=2, chime=False))
    kinds = [s.kind for s in programme.spans]
    assert kinds == ["preamble", "speech", "speech", "speech"] * 2
    pcm = programme.to_pcm()
    assert integrated_lufs(part(pcm, programme, "preamble")) == pytest.approx(-16.0, abs=1.0)


# ---------------------------------------------------------------- chimes, fades, repeats


def test_chimes_open_rising_and_close_falling_a_few_db_under_the_speech(speech: list[Pcm]) -> None:
    rate = 48000
    programme = render_programme(speech, RenderOptions(rate=rate))
    spans = programme.spans
    assert [s.kind for s in spans] == ["chime", "speech", "speech", "speech", "chime"]
    assert spans[0].start == 0 and spans[-1].stop == programme.n_samples
    pcm = programme.to_pcm()
    opening, closing = (pcm.samples[s.start : s.stop] for s in (spans[0], spans[-1]))
    note = round(0.25 * rate)  # the first and the last note of each arpeggio, before the next one starts
    last = round(3 * 0.28 * rate)
    assert dominant_hz(opening[:note], rate) == pytest.approx(523, abs=8)
    assert dominant_hz(opening[last : last + note], rate) == pytest.approx(1047, abs=8)
    assert dominant_hz(closing[:note], rate) == pytest.approx(1047, abs=8)
    assert dominant_hz(closing[last : last + note], rate) == pytest.approx(523, abs=8)
    chime_lufs = integrated_lufs([Pcm(opening, rate)])
    assert chime_lufs == pytest.approx(-16.0 + CHIME_LEVEL_LU, abs=1.0)
    # the pauses between the chimes and the speech are silent
    assert not np.any(pcm.samples[spans[0].stop : spans[1].start])
    assert spans[1].start - spans[0].stop == round(CHIME_PAUSE_S * rate)


def test_without_chimes_the_programme_is_just_the_speech(speech: list[Pcm]) -> None:
    programme = render_programme(speech, RenderOptions(chime=False))
    assert [s.kind for s in programme.spans] == ["speech"] * 3
    assert programme.duration_s == pytest.approx(sum(c.duration_s for c in speech), abs=0.001)


def test_custom_chimes_are_resampled_and_used(speech: list[Pcm]) -> None:
    ding = tone(880, 1.0, 44100, 0.5)
    dong = tone(660, 1.0, 44100, 0.5)
    programme = render_programme(speech[:1], RenderOptions(rate=48000, chimes=(ding, dong)))
    opening, closing = programme.spans[0], programme.spans[-1]
    assert opening.stop - opening.start == 48000
    pcm = programme.to_pcm()
    assert dominant_hz(pcm.samples[opening.start : opening.stop], 48000) == pytest.approx(880, abs=2)
    assert dominant_hz(pcm.samples[closing.start : closing.stop], 48000) == pytest.approx(660, abs=2)


def test_every_clip_fades_in_and_out_so_nothing_clicks() -> None:
    rate = 48000
    # A clip that starts and ends at full level (a DC step would click at both edges without fades).
    block = Pcm(np.full(rate, 0.5, dtype=np.float32), rate)
    programme = render_programme([block, block], RenderOptions(rate=rate, chime=False, fade_s=0.02))
    samples = programme.to_pcm().samples
    fade = round(0.02 * rate)
    for span in programme.spans:
        clip = samples[span.start : span.stop]
        assert abs(clip[0]) < 0.01 and abs(clip[-1]) < 0.01
        # A smooth ramp up and down; where the limiter's gain (it holds this loud DC down) turns from one 5 ms
        # segment to the next, the ramp may ripple by far less than a click: under -60 dBFS.
        assert np.all(np.diff(clip[:fade]) >= -1e-3)
        assert np.all(np.diff(clip[-fade:]) <= 1e-3)
        assert clip[fade // 2] > clip[fade // 4] > clip[0]
        assert np.ptp(clip[fade:-fade]) < 1e-6  # full level in between


def test_every_repeat_sounds_exactly_the_same(speech: list[Pcm]) -> None:
    programme = render_programme(scaled(speech, 4.0), RenderOptions(repeat=3, gap_s=1.3))  # the limiter busy
    pcm = programme.to_pcm()
    chimes = [s for s in programme.spans if s.kind == "chime"]
    first = pcm.samples[chimes[0].start : chimes[1].stop]
    for opening, closing in zip(chimes[2::2], chimes[3::2], strict=True):
        np.testing.assert_array_equal(pcm.samples[opening.start : closing.stop], first)


def test_a_streamed_programme_is_laid_out_as_the_whole_one(speech: list[Pcm]) -> None:
    preamble = tuple(scaled(speech[2:], 0.5))
    opts = RenderOptions(repeat=2, gap_s=1.0, preamble=preamble)
    whole = render_programme(speech, opts)
    streamed = StreamingProgramme(lambda: iter(speech), opts)
    samples = streamed.to_pcm().samples
    assert streamed.complete
    assert streamed.spans == whole.spans
    assert len(samples) == whole.n_samples == streamed.n_samples
    assert np.max(np.abs(samples)) <= CEILING + 1e-6
    # the chimes and the preamble do not depend on the speech's level: the same samples in both
    same = [s for s in whole.spans if s.kind != "speech"]
    whole_samples = whole.to_pcm().samples
    for span in same:
        np.testing.assert_array_equal(samples[span.start : span.stop], whole_samples[span.start : span.stop])


def test_repeats_are_separated_by_the_gap(speech: list[Pcm]) -> None:
    rate = 48000
    once = render_programme(speech, RenderOptions(rate=rate))
    thrice = render_programme(speech, RenderOptions(rate=rate, repeat=3, gap_s=2.0))
    gap = round(2.0 * rate)
    assert thrice.n_samples == 3 * once.n_samples + 2 * gap
    assert thrice.duration_s == pytest.approx(3 * once.duration_s + 4.0, abs=0.001)
    chimes = [s for s in thrice.spans if s.kind == "chime"]
    assert len(chimes) == 6  # an opening and a closing chime around every repeat
    pcm = thrice.to_pcm()
    for closing, opening in ((chimes[1], chimes[2]), (chimes[3], chimes[4])):
        assert opening.start - closing.stop == gap
        assert not np.any(pcm.samples[closing.stop : opening.start])
    # each repeat is the same audio
    first = pcm.samples[: once.n_samples]
    second = pcm.samples[once.n_samples + gap : 2 * once.n_samples + gap]
    np.testing.assert_allclose(first, second, atol=1e-6)


# ---------------------------------------------------------------- resampling and blocks


@pytest.mark.parametrize("rate", [48000, 44100, 16000])
def test_speech_is_resampled_to_the_output_rate_with_its_duration(speech: list[Pcm], rate: int) -> None:
    programme = render_programme(speech, RenderOptions(rate=rate, chime=False))
    assert programme.rate == rate
    for clip, span in zip(speech, programme.spans, strict=True):
        assert span.stop - span.start == math.ceil(len(clip.samples) * rate / clip.rate)
    assert programme.duration_s == pytest.approx(sum(c.duration_s for c in speech), abs=3 / rate)


def test_a_tone_keeps_its_pitch_and_gains_no_images_when_resampled() -> None:
    rate = 48000
    clip = tone(1000, 2.0, 22050, 0.3)
    samples = render_programme([clip], RenderOptions(rate=rate, chime=False)).to_pcm().samples
    middle = samples[rate // 2 : rate // 2 + rate]
    assert dominant_hz(middle, rate) == pytest.approx(1000, abs=1)
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    freqs = np.fft.rfftfreq(len(middle), 1 / rate)
    # 22050 Hz audio has nothing above 11025 Hz; an upsampler that leaves images would put 21050 Hz there.
    assert spectrum[freqs > 11025].max() < spectrum.max() * 10 ** (-70 / 20)


def test_blocks_concatenated_are_the_programme_whatever_the_block_size(speech: list[Pcm]) -> None:
    programme = render_programme(speech, RenderOptions(repeat=2, gap_s=0.5))
    whole = programme.to_pcm()
    assert whole.rate == programme.rate and len(whole.samples) == programme.n_samples
    for size in (960, 4096, 48000):
        blocks = list(programme.blocks(size))
        assert all(b.dtype == np.float32 for b in blocks)
        assert all(len(b) == size for b in blocks[:-1]) and 0 < len(blocks[-1]) <= size
        np.testing.assert_array_equal(np.concatenate(blocks), whole.samples)
    # it can be played again from the start
    np.testing.assert_array_equal(np.concatenate(list(programme.blocks(960))), whole.samples)
    # and as the 16-bit samples a WAV file holds, the same blocks rounded
    int16 = list(programme.int16_blocks(4096))
    assert all(b.dtype == np.int16 for b in int16)
    np.testing.assert_array_equal(np.concatenate(int16), to_int16(whole.samples))


def test_the_default_chimes_are_short_and_clean() -> None:
    for rate in (8000, 22050, 48000):
        opening, closing = default_chimes(rate)
        for chime in (opening, closing):
            assert chime.rate == rate
            assert 1.5 <= chime.duration_s <= 2.5
            assert np.max(np.abs(chime.samples)) <= 1.0
            assert abs(chime.samples[-1]) < 1e-3  # rings out to silence rather than stopping


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="repeat"):
        RenderOptions(repeat=0)
    with pytest.raises(ValueError, match="volume"):
        RenderOptions(volume=1.5)


# ---------------------------------------------------------------- radiod speak -o, end to end


def test_radiod_speak_writes_a_wav_at_the_target_level_under_the_ceiling_between_the_chimes(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "text.txt").write_text(" ".join(SENTENCES), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(f"storage:\n  dir: {tmp_path / 'state'}\n", encoding="utf-8")
    out = tmp_path / "out.wav"
    command = [sys.executable, "-m", "radiod.cli", "speak", "--config", str(tmp_path / "config.yaml")]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [*command, "-f", str(tmp_path / "text.txt"), "-o", str(out)],
        check=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    pcm = read_wav(out)
    assert pcm.rate == 48000  # the mock board's rate: espeak-ng's 22050 Hz speech was resampled
    assert np.max(np.abs(pcm.samples)) <= CEILING + 1e-4  # 16-bit rounding
    # Where the chimes are: the opening one rises from C5 and the closing one falls to it; speech in between.
    chime_s, pause_s = 0.28 * 3 + 1.3, CHIME_PAUSE_S
    opening = pcm.samples[: round(0.25 * pcm.rate)]
    closing = pcm.samples[len(pcm.samples) - round(1.2 * pcm.rate) :]
    assert dominant_hz(opening, pcm.rate) == pytest.approx(523.25, abs=5)
    assert dominant_hz(closing, pcm.rate) == pytest.approx(523.25, abs=5)
    speech = pcm.samples[
        round((chime_s + pause_s) * pcm.rate) : len(pcm.samples) - round((chime_s + pause_s) * pcm.rate)
    ]
    assert integrated_lufs([Pcm(speech, pcm.rate)]) == pytest.approx(-16.0, abs=1.0)
    assert len(speech) / pcm.rate > 8  # three sentences of speech
    assert done.stdout == f"{out}: {pcm.duration_s:.1f} s at 48000 Hz\n"  # what it says it wrote
