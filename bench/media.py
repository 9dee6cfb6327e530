"""Live relays and decoding: start latency, what a relay costs a node, and radiod's decoder beside ffmpeg's.
Prints figures; asserts nothing.

    .venv/bin/python bench/media.py [--runs N] [--seconds S] [--minutes M]

A real Icecast (Debian's ``icecast2``) on loopback, fed by ``ffmpeg -re`` with a 128 kbit/s MP3 tone (the
district radio), and one ``radiod run`` node process (mock relays with the ``instant`` profile: no amplifier
warm-up, so the figure is the node's own; output ``null``) on a private broker (tests/harness.py,
radiod/hub/localstream.py).

1. relay start latency: ``--runs`` times, a signed ``now`` bulletin with ``relay: {url, duration_s: 2}`` is
   published; latency = ``audio_start`` of its ``started`` event minus the publish instant. Broken down into
   publish -> accepted (verify, store, schedule) and accepted -> first audio (connect to Icecast, probe the MP3,
   wait for :data:`radiod.audio.relay.SIGNAL_S` of signal, which Icecast's burst on connect gives at once); and
   beside it how long Icecast takes to answer a plain HTTP client with the stream's first byte.
2. relaying: one relay of ``--seconds`` (default 30); the node's CPU (utime + stime from /proc) over that window
   and its VmRSS every second, beside the same node idle for 10 s before its first relay (PyAV not yet loaded).
3. decoding a generated ``--minutes`` (default 10) MP3 file, 128 kbit/s stereo at 44.1 kHz: radiod.audio.decode
   (PyAV, to mono float at 48 kHz, the mock board's rate) in this process, against ``ffmpeg -i FILE -f null -``
   (decode only) and ``ffmpeg -i FILE -ac 1 -ar 48000 -f null -`` (the same conversion as radiod's); CPU seconds
   and wall time, and how much faster than real time.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from measure import HARNESS, machine, summary_ms

sys.path.insert(0, str(HARNESS))
from harness import Bench, Message
from idle import sample

from radiod.audio.decode import decode
from radiod.hub.localstream import Icecast
from radiod.protocol.builders import bulletin

RATE = 48_000  # the mock board's rate, the rate a relay is decoded to
IDLE_S = 10.0


def event(type_: str, bulletin_id: str) -> Callable[[Message], bool]:
    return lambda m: m.kind == "event" and m.data.get("type") == type_ and m.data.get("bulletin") == bulletin_id


def post_relay(hub: Bench, bulletin_id: str, url: str, duration_s: float) -> float:
    """Publish a relay bulletin for the bench's zone; returns the publish instant."""
    now = int(time.time())
    payload = bulletin(id=bulletin_id, iat=now, exp=now + 3600, text="", targets=(f"zone-{hub.zone}",),
                       chime=False, relay={"url": url, "duration_s": duration_s})
    return hub.events.publish([(hub.topic(payload), hub.signed(payload), True)])


def latency_runs(hub: Bench, url: str, runs: int) -> list[dict[str, float]]:
    out = []
    for i in range(runs):
        bulletin_id = f"relay-{i}"
        since = hub.events.mark()
        published = post_relay(hub, bulletin_id, url, duration_s=2)
        started = hub.wait(event("started", bulletin_id), timeout=30, since=since)[0]
        accepted = hub.wait(event("accepted", bulletin_id), timeout=5, since=since)[0]
        hub.wait(event("finished", bulletin_id), timeout=30, since=since)
        out.append({
            "latency": started.time("audio_start") - published,
            "accepted": accepted.time("ts") - published,
            "to_audio": started.time("audio_start") - accepted.time("ts"),
        })
    return out


def first_bytes(url: str, runs: int) -> list[float]:
    """Seconds until a plain HTTP client has the stream's first bytes: Icecast's own share of the latency."""
    out = []
    for _ in range(runs):
        start = time.monotonic()
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read(1)
            out.append(time.monotonic() - start)
    return out


def cpu_pct(window: dict) -> float:
    """The CPU time of a :func:`idle.sample` window in % of one core."""
    return 100 * window["cpu"] / window["wall"]


def relay_cost(hub: Bench, pid: int, url: str, seconds: float) -> dict:
    """The node while relaying for ``seconds``."""
    since = hub.events.mark()
    post_relay(hub, "relay-long", url, duration_s=seconds + 5)
    hub.wait(event("started", "relay-long"), timeout=30, since=since)
    relaying = sample(hub, pid, seconds)
    hub.wait(event("finished", "relay-long"), timeout=30, since=since)
    return relaying


def make_mp3(path: Path, minutes: float) -> None:
    """A 128 kbit/s stereo MP3 at 44.1 kHz: a tone under pink noise, so the encoder has real work to code."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={minutes * 60}",
         "-f", "lavfi", "-i", f"anoisesrc=color=pink:amplitude=0.1:sample_rate=44100:duration={minutes * 60}",
         "-filter_complex", "amix=inputs=2,aformat=channel_layouts=stereo",
         "-c:a", "libmp3lame", "-b:a", "128k", str(path)],
        check=True,
    )


def time_radiod(path: Path) -> tuple[float, float, float]:
    """(CPU s, wall s, seconds of audio) of decoding ``path`` with radiod.audio.decode, in this process."""
    next(decode(path, RATE))  # PyAV imported and FFmpeg loaded first: that is start-up, not decoding
    cpu0, wall0 = time.process_time(), time.monotonic()
    samples = sum(len(block) for block in decode(path, RATE))
    return time.process_time() - cpu0, time.monotonic() - wall0, samples / RATE


def time_ffmpeg(path: Path, *convert: str) -> tuple[float, float]:
    """(CPU s, wall s) of ``ffmpeg -i path [convert] -f null -`` (children's rusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.monotonic()
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1", "-i", str(path),
                    *convert, "-f", "null", "-"], check=True)
    wall = time.monotonic() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()

    print(machine())
    with Icecast() as icecast, Bench("media") as hub:
        icecast.feed(bitrate="128k")
        node = hub.add_node("n01", profile="instant", output="null")
        node.start()
        hub.wait_online([node])
        time.sleep(2.0)  # past the start-up work that follows the connect
        idle = sample(hub, node.pid, IDLE_S)  # before any relay: PyAV not loaded yet
        runs = latency_runs(hub, icecast.url, args.runs)
        server = first_bytes(icecast.url, args.runs)
        relaying = relay_cost(hub, node.pid, icecast.url, args.seconds)

    print(f"\nrelay start latency, {args.runs} 'now' relay bulletins of a 128 kbit/s MP3 stream on Icecast "
          "(profile 'instant': no warm-up):")
    print(f"  {'publish -> first audio':<30} {summary_ms([r['latency'] for r in runs])}")
    print(f"  {'publish -> accepted':<30} {summary_ms([r['accepted'] for r in runs])}")
    print(f"  {'accepted -> first audio':<30} {summary_ms([r['to_audio'] for r in runs])}")
    print(f"  {'(Icecast: request -> 1st byte)':<30} {summary_ms(server)}   (urllib, no radiod: the server's share)")
    print("  (runs 1..n, ms: " + ", ".join(f"{r['latency'] * 1000:.0f}" for r in runs) + "; run 1 also imports PyAV)")

    print(f"\nnode cost (radiod run, output null), idle {idle['wall']:.0f} s before any relay, then relaying "
          f"{relaying['wall']:.0f} s:")
    for label, s in (("idle", idle), ("relaying", relaying)):
        print(f"  {label:<9} CPU {cpu_pct(s):5.1f} % of one core   "
              f"VmRSS median {statistics.median(s['rss']):5.1f} MB,"
              f" max {max(s['rss']):5.1f} MB")
    print(f"  relaying costs {cpu_pct(relaying) - cpu_pct(idle):+.1f} % CPU and "
          f"{statistics.median(relaying['rss']) - statistics.median(idle['rss']):+.1f} MB (PyAV/FFmpeg loaded, "
          "decode thread, buffer)")

    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        mp3 = Path(tmp) / "programme.mp3"
        make_mp3(mp3, args.minutes)
        size_mb = mp3.stat().st_size / 1e6
        ours_cpu, ours_wall, audio_s = time_radiod(mp3)
        plain_cpu, plain_wall = time_ffmpeg(mp3)
        same_cpu, same_wall = time_ffmpeg(mp3, "-ac", "1", "-ar", str(RATE))

    print(f"\ndecoding a {audio_s / 60:.1f}-minute 128 kbit/s stereo MP3 ({size_mb:.1f} MB), one thread each:")
    print(f"  {'':<46} {'CPU s':>7} {'wall s':>7} {'x real time':>12} {'CPU vs ffmpeg':>14}")
    rows = (
        ("ffmpeg -i FILE -f null - (decode only)", plain_cpu, plain_wall),
        (f"ffmpeg -i FILE -ac 1 -ar {RATE} -f null -", same_cpu, same_wall),
        (f"radiod.audio.decode (mono float, {RATE} Hz)", ours_cpu, ours_wall),
    )
    for label, cpu, wall in rows:
        print(f"  {label:<46} {cpu:7.2f} {wall:7.2f} {audio_s / wall:11.0f}x {cpu / plain_cpu:13.2f}x")
    print(f"  radiod vs the same conversion in ffmpeg: {ours_cpu / same_cpu:.2f}x the CPU time; a live relay decodes "
          f"in real time, so it needs {100 * ours_cpu / audio_s:.2f} % of one core for decoding here")


if __name__ == "__main__":
    main()
