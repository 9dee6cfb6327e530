"""Recorded programmes (a bulletin's ``media``): fetched over real HTTP on loopback, checked by their signed sha256,
decoded in every format the protocol names, played at the speech loudness through the relays, resumed after an
emergency. The recordings are made here: espeak-ng speech, encoded by ffmpeg."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import SHORT, EventLog, Hub, ThreadNode, wait_for

from radiod.audio.layout import RenderOptions
from radiod.audio.limiter import CEILING
from radiod.audio.loudness import integrated_lufs
from radiod.audio.pcm import Pcm
from radiod.audio.recording import REWIND_S, measure, recording_programme
from radiod.clock import rfc3339
from radiod.errors import MediaError
from radiod.node.media import BadMedia, MediaCache, MediaFetcher
from radiod.protocol import builders
from radiod.protocol.messages import Media

SPOKEN = "Chương trình phát thanh của xã. Hôm nay trời nắng, bà con ra đồng làm việc. Chúc mọi người mạnh khỏe."
ENCODE = {  # format -> ffmpeg arguments
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    "opus": ["-c:a", "libopus", "-b:a", "32k"],
    "m4a": ["-c:a", "aac", "-b:a", "64k"],
    "flac": ["-c:a", "flac"],
    "wav": ["-c:a", "pcm_s16le"],
}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same few seconds of speech, 12 dB quieter than espeak-ng speaks it and in stereo at 44.1 kHz, in
    every format, plus a longer one (speech over a tone, ~9 s) for the emergency test."""
    folder = tmp_path_factory.mktemp("media")
    speech = folder / "espeak.wav"
    subprocess.run(["espeak-ng", "-v", "vi", "-w", str(speech), SPOKEN], check=True, capture_output=True)
    files = {}
    for fmt, args in ENCODE.items():
        files[fmt] = folder / f"speech.{fmt}"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(speech), "-af", "volume=-12dB",
                        "-ar", "44100" if fmt != "opus" else "48000", "-ac", "2", *args, str(files[fmt])], check=True)
    files["long"] = folder / "long.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(speech), "-f", "lavfi", "-i",
                    "sine=frequency=330:duration=9", "-filter_complex", "[0][1]amix=inputs=2:duration=longest",
                    "-ac", "1", "-c:a", "libmp3lame", str(files["long"])], check=True)
    return files


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        pass


@pytest.fixture
def server(recordings: dict[str, Path]) -> Iterator[http.server.ThreadingHTTPServer]:
    """A real HTTP server on loopback serving the recordings' folder; ``shutdown()`` takes it down."""
    handler = functools.partial(_Quiet, directory=str(recordings["mp3"].parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def media_of(path: Path, url: str, **changes: Any) -> dict[str, Any]:
    data = path.read_bytes()
    fmt = path.suffix.lstrip(".")
    media = {"url": url, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "duration_s": 5.0,
             "format": fmt}
    return {**media, **changes}


def url_of(httpd: http.server.ThreadingHTTPServer, path: Path) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/{path.name}"


def post_media(hub: Hub, events: EventLog, bulletin_id: str, media: dict[str, Any], **fields: Any) -> None:
    now = int(time.time())
    fields.setdefault("chime", False)
    payload = builders.bulletin(id=bulletin_id, iat=now, exp=now + 3600, text=fields.pop("text", ""), media=media,
                                **fields)
    events.publish([(hub.topic(payload), hub.signed(payload), True)])


def read_wav(path: Path) -> Pcm:
    with wave.open(str(path), "rb") as w:
        return Pcm(np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate())


def plays(node: ThreadNode, bulletin_id: str) -> list[Path]:
    return sorted(node.out_dir.glob(f"{bulletin_id}-r1*.wav"), key=lambda p: p.stat().st_mtime)


# ---------------------------------------------------------------- the programme


@pytest.mark.parametrize("fmt", list(ENCODE))
def test_each_format_plays_at_the_speech_loudness_without_clipping(recordings: dict[str, Path], fmt: str) -> None:
    level = measure(recordings[fmt], 48000, -16.0)
    source = measure(recordings["wav"], 48000, -16.0)
    assert abs(level.duration_s - source.duration_s) < 0.1  # encoders pad a little at most
    programme = recording_programme((), lambda stop, until: (recordings[fmt], level), RenderOptions(rate=48000))
    assert programme.ready(threading.Event(), time.time()) is None
    assert [s.kind for s in programme.spans] == ["chime", "recording", "chime"]
    samples = programme.to_pcm().samples
    assert len(samples) == programme.n_samples
    recording = next(s for s in programme.spans if s.kind == "recording")
    assert abs(integrated_lufs([Pcm(samples[recording.start : recording.stop], 48000)]) + 16.0) <= 1.0
    assert np.abs(samples).max() <= CEILING + 1e-6


def test_a_resumed_recording_starts_a_little_before_where_it_stopped(recordings: dict[str, Path]) -> None:
    level = measure(recordings["wav"], 16000, -16.0)
    opts = RenderOptions(rate=16000, chime=False)
    whole = recording_programme((), lambda stop, until: (recordings["wav"], level), opts)
    assert whole.ready(threading.Event(), time.time()) is None
    full = whole.to_pcm().samples
    resumed = whole.starting_at(4.0)
    assert resumed.start_s == pytest.approx(4.0 - REWIND_S)
    again = resumed.to_pcm().samples
    assert len(again) == len(full) - round((4.0 - REWIND_S) * 16000)
    past_fade = round(0.6 * 16000)  # the resumed play fades in over half a second
    same = full[len(full) - len(again) + past_fade :]  # the limiter's gain may differ a little at a few peaks
    assert np.corrcoef(again[past_fade:], same)[0, 1] > 0.999


# ---------------------------------------------------------------- the cache


def test_the_cache_evicts_the_least_recently_used_recording_no_stored_bulletin_needs(
    tmp_path: Path, server: http.server.ThreadingHTTPServer, recordings: dict[str, Path]
) -> None:
    media = {fmt: Media(**media_of(recordings[fmt], url_of(server, recordings[fmt]))) for fmt in ("wav", "flac", "mp3")}
    room = sum(m.bytes for m in media.values()) - 1  # all three do not fit
    cache = MediaCache(tmp_path / "media", room, 16000, -16.0, needed=lambda: {media["wav"].sha256})
    for fmt in ("wav", "flac", "mp3"):  # the wav is the oldest, but a stored bulletin still needs it
        path, level = cache.fetch(media[fmt])
        assert path.read_bytes() == recordings[fmt].read_bytes()
        assert level.rate == 16000
        time.sleep(0.01)  # distinct mtimes
    assert cache.get(media["flac"]) is None
    assert cache.get(media["wav"]) is not None and cache.get(media["mp3"]) is not None


def test_a_file_longer_than_signed_is_cut_at_one_byte_more_and_refused(
    tmp_path: Path, server: http.server.ThreadingHTTPServer, recordings: dict[str, Path]
) -> None:
    cache = MediaCache(tmp_path / "media", 1 << 30, 16000, -16.0)
    short = Media(**media_of(recordings["wav"], url_of(server, recordings["wav"]), bytes=1000))
    with pytest.raises(BadMedia, match="more than 1000 bytes"):
        cache.fetch(short)
    assert not list((tmp_path / "media").iterdir())


def test_a_recording_never_takes_the_space_the_store_needs(
    tiny_disk: Path, server: http.server.ThreadingHTTPServer, recordings: dict[str, Path]
) -> None:
    cache = MediaCache(tiny_disk / "media", 1 << 30, 16000, -16.0)  # the budget allows it; the disk does not
    with pytest.raises(MediaError, match="MB free"):
        cache.fetch(Media(**media_of(recordings["mp3"], url_of(server, recordings["mp3"]))))
    assert not list((tiny_disk / "media").iterdir())


def down_url(name: str) -> str:
    """A URL on a loopback port nothing listens on: a server that is down."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{closed.getsockname()[1]}/{name}"


def test_a_fetch_retries_until_its_bulletin_is_cancelled(tmp_path: Path, recordings: dict[str, Path]) -> None:
    bad: list[str] = []
    fetcher = MediaFetcher(MediaCache(tmp_path / "media", 1 << 30, 16000, -16.0), lambda m, msg, b: bad.append(msg))
    media = Media(**media_of(recordings["mp3"], down_url("speech.mp3")))
    fetcher.want(media, until=time.time() + 3600, bulletin="b1", rev=1)

    def fetching() -> bool:
        return any(t.name == f"media-{media.sha256[:8]}" for t in threading.enumerate())

    time.sleep(0.5)
    assert fetching()  # the server is down: it waits to try again
    fetcher.forget("b1")
    wait_for(lambda: not fetching(), 5, "the fetch to stop once its bulletin is gone")
    assert fetcher.wait(media, threading.Event(), time.time() + 2) is None  # one last try, bounded
    assert bad == []  # a server that is down is no bad_media


# ---------------------------------------------------------------- the node


def test_recording_with_an_introduction_plays_through_the_relays_at_minus_16_lufs(
    hub: Hub, events: EventLog, server: http.server.ThreadingHTTPServer, recordings: dict[str, Path],
    start_node: Callable[..., ThreadNode],
) -> None:
    node = start_node()
    media = media_of(recordings["mp3"], url_of(server, recordings["mp3"]))
    post_media(hub, events, "rec-1", media, text="Sau đây là chương trình thu sẵn.", lang="tyz")
    finished = events.wait("finished", bulletin="rec-1", timeout=60)[0]
    started = events.wait("started", bulletin="rec-1")[0]
    assert started["lang"] == finished["lang"] == "tyz"
    assert (node.daemon.config.cache_dir / "media" / media["sha256"]).read_bytes() == recordings["mp3"].read_bytes()
    amplifier = [on for _, name, on in node.daemon.station.relays.history() if name == "amplifier"]
    assert amplifier[-2:] == [True, False]
    [wav] = plays(node, "rec-1")
    pcm = read_wav(wav)
    level = measure(recordings["mp3"], pcm.rate, -16.0)
    tail = pcm.samples[len(pcm.samples) - level.samples :]  # no chime: the recording ends the programme
    head = pcm.samples[: len(pcm.samples) - level.samples]
    assert abs(integrated_lufs([Pcm(tail, pcm.rate)]) + 16.0) <= 1.0
    assert abs(integrated_lufs([Pcm(head, pcm.rate)]) + 16.0) <= 1.0  # the spoken introduction before it
    assert np.abs(pcm.samples.astype(np.int32)).max() < 32767


def test_wrong_sha256_is_rejected_and_the_node_plays_on(
    hub: Hub, events: EventLog, server: http.server.ThreadingHTTPServer, recordings: dict[str, Path],
    start_node: Callable[..., ThreadNode],
) -> None:
    node = start_node()
    media = media_of(recordings["wav"], url_of(server, recordings["wav"]), sha256="0" * 64)
    post_media(hub, events, "bad-1", media)
    rejected = events.wait("rejected", bulletin="bad-1", timeout=30)[0]
    assert rejected["reason"] == "bad_media"
    assert "0" * 64 in rejected["message"]
    assert hashlib.sha256(recordings["wav"].read_bytes()).hexdigest() in rejected["message"]
    skipped = events.wait("skipped", bulletin="bad-1", timeout=60)[0]
    assert skipped["reason"] == "media_unavailable"
    kept = [p for p in (node.daemon.config.cache_dir / "media").iterdir() if not p.name.endswith(".part")]
    assert kept == []  # nothing of it kept (a retry may be downloading it again, into a temporary file)
    text = hub.post(SHORT)["id"]
    events.wait("finished", bulletin=text, timeout=60)


def test_a_recording_fetched_ahead_plays_with_its_server_down_and_one_never_fetched_is_skipped(
    hub: Hub, events: EventLog, server: http.server.ThreadingHTTPServer, recordings: dict[str, Path],
    start_node: Callable[..., ThreadNode],
) -> None:
    node = start_node()
    at = time.time() + 8
    ahead = media_of(recordings["flac"], url_of(server, recordings["flac"]))
    post_media(hub, events, "ahead-1", ahead, schedule={"at": [rfc3339(at, node.daemon.tz, ms=False)]})
    cached = node.daemon.config.cache_dir / "media" / ahead["sha256"]
    wait_for(cached.exists, 20, "the recording to be fetched ahead of its time")
    server.shutdown()
    server.server_close()
    post_media(hub, events, "down-1", media_of(recordings["opus"], down_url("speech.opus")))
    skipped = events.wait("skipped", bulletin="down-1", timeout=60)[0]
    assert skipped["reason"] == "media_unavailable"
    events.wait("finished", bulletin="ahead-1", timeout=60)


def test_a_restarted_node_fetches_the_recordings_of_its_stored_bulletins(
    hub: Hub, events: EventLog, recordings: dict[str, Path], start_node: Callable[..., ThreadNode]
) -> None:
    url = down_url("speech.m4a")
    node = start_node()
    at = rfc3339(time.time() + 3600, node.daemon.tz, ms=False)
    media = media_of(recordings["m4a"], url)
    post_media(hub, events, "later-1", media, schedule={"at": [at]})
    events.wait("accepted", bulletin="later-1")
    node.stop()  # its server was down all the while
    port = int(url.split(":")[2].split("/")[0])
    handler = functools.partial(_Quiet, directory=str(recordings["m4a"].parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        again = start_node()
        cached = again.daemon.config.cache_dir / "media" / media["sha256"]
        wait_for(cached.exists, 15, "the restarted node to fetch the stored bulletin's recording")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_emergency_interrupts_a_recording_which_then_resumes_where_it_stopped(
    hub: Hub, events: EventLog, server: http.server.ThreadingHTTPServer, recordings: dict[str, Path],
    start_node: Callable[..., ThreadNode],
) -> None:
    node = start_node()
    long = recordings["long"]
    post_media(hub, events, "long-1", media_of(long, url_of(server, long)), lang="tyz")
    started = events.wait("started", bulletin="long-1", timeout=60)[0]
    time.sleep(4)
    emergency = hub.post("Tin khẩn cấp.", priority="emergency")["id"]
    interrupted = events.wait("interrupted", bulletin="long-1")[0]
    assert interrupted["reason"] == "preempted"
    assert interrupted["lang"] == "tyz"
    events.wait("finished", bulletin=emergency, timeout=60)
    finished = events.wait("finished", bulletin="long-1", timeout=60)[0]
    first, second = (read_wav(p) for p in plays(node, "long-1"))
    whole = measure(long, first.rate, -16.0).duration_s
    heard = len(first.samples) / first.rate
    assert 3.0 < heard < whole - 2
    assert len(second.samples) / second.rate == pytest.approx(whole - heard + REWIND_S, abs=0.3)
    assert finished["duration_s"] < whole - 1
    assert started["audio_start"] < interrupted["audio_end"]
