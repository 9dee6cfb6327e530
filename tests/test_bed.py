"""A music bed under speech (a bulletin's ``bed``): parsed as ``media`` is, fetched over real HTTP on loopback,
mixed under the spoken text at a node (speech still at -16 LUFS, nothing clipped, the music audible in the pauses
and ducked under the sentences), and left out with a warning when it is not there. The music is made here: a
chord of sines, encoded by ffmpeg."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import Broker, EventLog, Hub, ThreadNode
from test_hub_media import node_reads, operator_yaml
from test_media import _Quiet, down_url, media_of, read_wav, url_of

from radiod.audio.loudness import integrated_lufs
from radiod.audio.pcm import Pcm
from radiod.cli import main
from radiod.errors import Rejected
from radiod.protocol import builders
from radiod.protocol.messages import parse_bulletin_json

CHORD_HZ = (440.0, 554.37, 659.25)  # A major
TEXT = "Thông báo thử. Xin chào bà con."


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds of a chord (shorter than the programme: it loops), as mp3."""
    folder = tmp_path_factory.mktemp("bed")
    path = folder / "chord.mp3"
    sines = [arg for hz in CHORD_HZ for arg in ("-f", "lavfi", "-i", f"sine=frequency={hz}:duration=3")]
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *sines, "-filter_complex", "amix=inputs=3",
                    "-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k", str(path)], check=True)
    return path


@pytest.fixture
def server(music: Path) -> Iterator[http.server.ThreadingHTTPServer]:
    handler = functools.partial(_Quiet, directory=str(music.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def payload(bulletin_id: str, **fields: Any) -> dict[str, Any]:
    """A bulletin; without ``text``, none at all (the builder would send an empty one)."""
    now = int(time.time())
    body = builders.bulletin(id=bulletin_id, iat=now, exp=now + 3600, **{"text": "", **fields})
    if not body.get("text"):
        body.pop("text", None)
    return body


BED = {"url": "http://127.0.0.1:1/chord.mp3", "sha256": "a" * 64, "bytes": 1000, "duration_s": 3.0, "format": "mp3"}


# ---------------------------------------------------------------- the field


def test_bed_is_read_as_media_is() -> None:
    bulletin = parse_bulletin_json(json.dumps(payload("b1", text=TEXT, bed=BED)))
    assert bulletin.bed is not None and bulletin.bed.sha256 == "a" * 64 and bulletin.bed.format == "mp3"
    assert bulletin.text == TEXT and bulletin.media is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"bed": BED}, "bed: music under speech needs text"),
        ({"text": TEXT, "bed": BED, "media": BED}, "bed: music under speech needs text, and no media or relay"),
        ({"text": TEXT, "bed": {**BED, "sha256": "xyz"}}, "bed.sha256: "),
        ({"text": TEXT, "bed": {**BED, "format": "mid"}}, "bed.format: "),
    ],
)
def test_a_bad_bed_is_refused_naming_it(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(Rejected) as err:
        parse_bulletin_json(json.dumps(payload("b1", **fields)))
    assert err.value.reason == "schema"
    assert err.value.message.startswith(message), err.value.message


# ---------------------------------------------------------------- at a node


def post(hub: Hub, events: EventLog, bulletin_id: str, bed: dict[str, Any], repeat: int = 2) -> None:
    body = payload(bulletin_id, text=TEXT, bed=bed, chime=False, schedule={"now": True, "repeat": repeat, "gap_s": 2.5})
    events.publish([(hub.topic(body), hub.signed(body), True)])


def rms_db(samples: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(samples.astype(np.float64)))) + 1e-12)


def test_a_bed_plays_under_the_speech_ducked_and_a_missing_one_is_left_out(
    hub: Hub, events: EventLog, server: http.server.ThreadingHTTPServer, music: Path,
    start_node: Callable[..., ThreadNode],
) -> None:
    node = start_node()
    post(hub, events, "bed-1", media_of(music, url_of(server, music)))
    events.wait("finished", bulletin="bed-1", timeout=60)
    assert "warning" not in events.wait("started", bulletin="bed-1")[0]
    post(hub, events, "bed-2", media_of(music, down_url("other.mp3"), sha256="1" * 64))  # not cached
    events.wait("finished", bulletin="bed-2", timeout=60)
    assert "music bed was not available" in events.wait("started", bulletin="bed-2")[0]["warning"]
    post(hub, events, "bed-3", media_of(music, url_of(server, music), sha256="0" * 64), repeat=1)
    assert events.wait("rejected", bulletin="bed-3", timeout=30)[0]["reason"] == "bad_media"
    events.wait("finished", bulletin="bed-3", timeout=60)
    assert "music bed was not available" in events.wait("started", bulletin="bed-3")[0]["warning"]

    [with_bed] = node.out_dir.glob("bed-1-r1*.wav")
    [alone] = node.out_dir.glob("bed-2-r1*.wav")
    mixed, speech = read_wav(with_bed), read_wav(alone)
    assert len(mixed.samples) == len(speech.samples)  # the same programme, the bed under it or not
    rate = mixed.rate
    assert np.abs(mixed.samples.astype(np.int32)).max() < 32767

    bed = (mixed.samples.astype(np.float64) - speech.samples) / 32767  # what the bed added, sample for sample
    frame = rate // 100
    n = len(speech.samples) // frame
    frames = speech.samples[: n * frame].astype(np.float64).reshape(n, frame) / 32767
    talking = np.sqrt(np.mean(frames**2, axis=1)) > 10 ** (-40 / 20)
    silent = np.flatnonzero(np.all(frames == 0, axis=1))
    # the gap between the two readings: the longest run of silent frames; its second half, the bed swelled back
    runs = np.split(silent, np.flatnonzero(np.diff(silent) > 1) + 1)
    gap = max(runs, key=len)
    assert len(gap) * frame >= 2 * rate, "the repeat gap"
    readings = np.concatenate([mixed.samples[: gap[0] * frame], mixed.samples[(gap[-1] + 1) * frame :]])
    assert abs(integrated_lufs([Pcm(speech.samples, rate)]) + 16.0) <= 1.0
    assert abs(integrated_lufs([Pcm(readings, rate)]) + 16.0) <= 1.0  # the speech with the bed under it
    pause = bed[(gap[0] + len(gap) // 2) * frame : (gap[-1] + 1) * frame]
    under = bed[: n * frame].reshape(n, frame)[talking]
    assert rms_db(pause) > -40, "the bed is heard in the pause"
    assert rms_db(pause) - rms_db(under) >= 10, (rms_db(pause), rms_db(under))

    spectrum = np.abs(np.fft.rfft(mixed.samples[(gap[0] + len(gap) // 2) * frame : (gap[-1] + 1) * frame]))
    freqs = np.fft.rfftfreq(len(pause), 1 / rate)
    chord = max(spectrum[np.abs(freqs - hz) < 5].max() for hz in CHORD_HZ)
    assert chord > 30 * np.median(spectrum), "the chord, not noise, in the pause"
    assert rms_db(bed[-rate // 20 :]) < rms_db(pause) - 20, "faded out at the end"


# ---------------------------------------------------------------- radiod post --bed


def test_post_bed_url_points_at_it_and_a_bed_without_text_is_refused(
    hub: Hub, broker: Broker, server: http.server.ThreadingHTTPServer, music: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = url_of(server, music)
    config = operator_yaml(hub, tmp_path)
    assert main(["post", "--config", config, "--bed", url, "--at", "23:59", TEXT]) == 0
    assert f"bed:   music under the text, {url}" in capsys.readouterr().out
    bulletin = node_reads(hub, broker)
    assert bulletin.bed is not None and bulletin.bed.url == url and bulletin.bed.format == "mp3"
    assert bulletin.bed.sha256 == hashlib.sha256(music.read_bytes()).hexdigest() and bulletin.text == TEXT
    assert main(["post", "--config", config, "--bed", url, "--media", url]) == 1
    assert "--bed: music lies under the text to read" in capsys.readouterr().err
