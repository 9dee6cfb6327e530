"""``make demo``: the whole node loop on an embedded default, printed for a newcomer to read.

A private Mosquitto on a free loopback port plays the commune hub; a demo key signs a corpus bulletin; a node
with mock relays (gpiozero's MockFactory) and audio to a WAV file (or the sound card, when there is one)
receives it, plays it, and reports every step back. Nothing outside a temporary directory is touched.

Then the station's two other kinds of programme, each on schedule a few seconds ahead: a recorded programme in
Tày (``lang: tyz``; the recording is a stand-in read by espeak-ng, encoded to MP3), added to the hub's media
library and fetched by the node from the console's ``/media/``; and a live relay of "the district radio", a
private Icecast fed by ffmpeg (:mod:`radiod.hub.localstream`), whose encoder goes off the air mid-relay so that
the node switches the amplifier off (``interrupted``: ``no_signal``) and back on when the signal returns.

The hub service (``radiod hub``: recorder and web console) runs beside them on 127.0.0.1 with a demo login, so a
newcomer can open the console, watch the node, post and preview a bulletin and read the report; when the demo
runs in a terminal, the console stays up until Ctrl+C.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from radiod.clock import rfc3339
from radiod.config import (
    AudioConfig,
    Config,
    ControlConfig,
    GpioConfig,
    NodeConfig,
    RelayConfig,
    SecurityConfig,
    StorageConfig,
)
from radiod.errors import MediaError
from radiod.hub.localbroker import Broker
from radiod.hub.media import MediaLibrary, describe
from radiod.hub.operator import Operator, PostRequest
from radiod.hub.service import HubService
from radiod.hub.session import stream
from radiod.node.daemon import Daemon
from radiod.node.mqtt_link import Incoming
from radiod.protocol.jws import generate_keypair

PREFIX = "radio/demo"
NODE = "demo1"
CONSOLE_USER = "demo"
CONSOLE_PASSWORD = "demo-radiod"  # noqa: S105 - printed on purpose, for a console on 127.0.0.1
"""The console's demo login: an admin, on a console that listens on 127.0.0.1 only."""
FINAL_EVENTS = {"finished", "interrupted", "failed", "skipped", "rejected"}
AHEAD_S = 8.0
"""The recording and the relay are scheduled this far ahead: time to fetch, and to see them start on the instant."""
RELAY_S = 30.0
NO_SIGNAL_S = 3.0
"""The demo node's relay.no_signal_s (10 s by default): a dropped stream is heard as such within seconds."""
RECORDING_TEXT = "Chương trình phát thanh tiếng Tày của xã. Bà con dân tộc Tày nghe thông báo về lịch tiêm phòng."
"""What the stand-in recording says (espeak-ng has no Tày voice; a commune's real recording would be in Tày)."""
DISTRICT_TEXT = "Đây là Đài Truyền thanh huyện. Mời bà con nghe chương trình thời sự buổi sáng."


def sound_card_present() -> bool:
    """True when PortAudio works and has an output device; the demo then plays aloud."""
    try:
        import sounddevice
    except OSError:
        return False
    try:
        return any(d["max_output_channels"] > 0 for d in sounddevice.query_devices())
    except sounddevice.PortAudioError:
        return False


def run_demo(*, keep: bool = False) -> int:
    work = Path(tempfile.mkdtemp(prefix="radiod-demo-"))
    broker = Broker(work / "broker")
    broker.start()
    daemon: Daemon | None = None
    thread: threading.Thread | None = None
    console: tuple[HubService, threading.Thread] | None = None
    try:
        private, public = generate_keypair("demo", work / "keys")
        output = "default" if sound_card_present() else f"file:{work / 'out'}"
        config = replace(
            Config(),
            node=NodeConfig(id=NODE, zones=["thon-1"], demo=True),
            mqtt=broker.mqtt_config(prefix=PREFIX),
            security=SecurityConfig(trusted_keys={"demo": str(public)}),
            storage=StorageConfig(dir=str(work / "state")),
            audio=AudioConfig(output=output),
            gpio=GpioConfig(profile="mock"),
            control=ControlConfig(group=grp.getgrgid(os.getgid()).gr_name),  # no radiod group on a dev machine
            relay=RelayConfig(no_signal_s=NO_SIGNAL_S),
        )
        print(f"hub broker:  mosquitto on {broker.host}:{broker.port} (prefix {PREFIX})")
        print(f"node:        {NODE} in zone thon-1, mock relays, audio -> {output}")
        console = _start_console(work, broker, private, public)
        print(f"console:     {console[0].url}  (log in as {CONSOLE_USER} / {CONSOLE_PASSWORD})")

        events: queue.Queue[Incoming] = queue.Queue()
        watcher = threading.Thread(
            target=lambda: [events.put(m) for m in stream(config.mqtt, "demo-watch", [f"{PREFIX}/node/+/event"],
                                                          duration_s=600)],
            daemon=True,
        )
        watcher.start()

        daemon = Daemon(config, pin_factory=MockFactory())
        thread = threading.Thread(target=daemon.run, name="demo-node", daemon=True)
        thread.start()

        text = resources.files("radiod").joinpath("data/demo-bulletin.txt").read_text(encoding="utf-8")
        operator = Operator(config, key=private, kid="demo")
        payload = operator.post(PostRequest(text=text, targets=("zone-thon-1",), title="Lịch cắt điện"))
        posted = time.time()
        print(f"posted:      bulletin {payload['id']} (signed by key 'demo', retained, to zone-thon-1)\n")
        print("node events (as the hub sees them on the wire):")
        final = _print_events(events, timeout=150)
        ok = final == "finished"
        ok = _recording(work, console[0], operator, events) and ok
        ok = _relay(work, operator, events) and ok
        print("\nrelay timeline (mock relays, seconds after the first post):")
        _print_relays(daemon, posted)
        wavs = sorted((work / "out").glob("*.wav")) if output.startswith("file:") else []
        for wav in wavs:
            print(f"\nplayed to:   {wav}")
        if sys.stdin.isatty():
            print(f"\nthe console stays open at {console[0].url} (log in as {CONSOLE_USER} / {CONSOLE_PASSWORD}):"
                  " post, preview, watch the node, read the report. Ctrl+C stops the demo.")
            with contextlib.suppress(KeyboardInterrupt):
                console[1].join()
        return 0 if ok else 1
    finally:
        if console is not None:
            console[0].stop()
            console[1].join(timeout=20)
        if daemon is not None:
            daemon.request_stop()
        if thread is not None:
            thread.join(timeout=20)
        broker.stop()
        if keep:
            print(f"state kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _recording(work: Path, console: HubService, operator: Operator, events: queue.Queue[Incoming]) -> bool:
    """A recorded Tày programme: added to the hub's media library, posted to play in AHEAD_S, fetched by the node
    from the console and played through the relays; True when it finished."""
    print("\n--- a recorded programme in Tày (lang tyz), from the hub's media library ---")
    try:
        recording = _spoken(work / "media-src", "tay-programme", RECORDING_TEXT)
        library = MediaLibrary(Path(console.config.media.dir), console.config.media_base_url())
        info = library.add(recording)
    except (MediaError, OSError, subprocess.CalledProcessError) as exc:
        print(f"  could not make the demo recording: {exc}")
        return False
    print(f"media add:   {info.name}\n{describe(info)}")
    start = time.time() + AHEAD_S
    payload = operator.post(PostRequest(
        text="Sau đây là chương trình tiếng Tày.", targets=("zone-thon-1",), at=(rfc3339(start),), lang="tyz",
        title="Chương trình tiếng Tày", media=info.descriptor(),
    ))
    print(f"posted:      bulletin {payload['id']} at {rfc3339(start, ms=False)}: a spoken introduction, then the "
          "recording\n")
    return _print_events(events, timeout=120, bulletin=payload["id"]) == "finished"


def _relay(work: Path, operator: Operator, events: queue.Queue[Incoming]) -> bool:
    """A live relay of "the district radio" (Icecast fed by ffmpeg) for RELAY_S from AHEAD_S on; its encoder goes
    off the air mid-relay and back on: True when the node went off the air and came back, and finished."""
    from radiod.hub.localstream import Icecast

    print("\n--- a live relay of the district radio (Icecast, fed by ffmpeg) ---")
    if shutil.which("icecast2") is None or shutil.which("ffmpeg") is None:
        print("  icecast2 and ffmpeg are not installed (make demo installs them): no relay in this demo")
        return False
    programme = _spoken(work / "district", "district", DISTRICT_TEXT)
    with Icecast() as icecast:
        source = icecast.feed(loop=programme)
        start = time.time() + AHEAD_S
        payload = operator.post(PostRequest(
            text="", targets=("zone-thon-1",), at=(rfc3339(start),), title="Tiếp sóng Đài huyện",
            relay={"url": icecast.url, "duration_s": RELAY_S},
        ))
        bid = payload["id"]
        print(f"posted:      relay {bid} of {icecast.url} at {rfc3339(start, ms=False)} for {RELAY_S:g} s\n")
        if _print_events(events, timeout=60, bulletin=bid, until={"started"}) != "started":
            return False
        time.sleep(6)
        print(f"  ... the district's encoder goes off the air (the node waits {NO_SIGNAL_S:g} s of no signal)")
        source.stop()
        dropped = _print_events(events, timeout=30, bulletin=bid, until={"interrupted"})
        time.sleep(3)
        print("  ... the encoder is back on the air")
        source.start()
        back = _print_events(events, timeout=30, bulletin=bid, until={"started"})
        final = _print_events(events, timeout=RELAY_S + 30, bulletin=bid)
        source.stop()
    return dropped == "interrupted" and back == "started" and final == "finished"


def _spoken(folder: Path, name: str, text: str) -> Path:
    """``text`` read by espeak-ng, as an MP3 when ffmpeg is there (as recordings come), else the WAV itself."""
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "vi", "-w", str(wav), text], check=True, capture_output=True, timeout=60)
    if shutil.which("ffmpeg") is None:
        return wav
    mp3 = folder / f"{name}.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), "-b:a", "96k", str(mp3)],
                   check=True, capture_output=True, timeout=60)
    return mp3


def _start_console(work: Path, broker: Broker, private: Path, public: Path) -> tuple[HubService, threading.Thread]:
    """The hub service on the demo broker, signing with the demo key, with the demo admin login."""
    from radiod.hub import accounts, recorder
    from radiod.hub.config import HubServiceConfig, MediaConfig, NodesConfig, SigningConfig, WebConfig

    with socket.socket() as s:
        port = 8080 if s.connect_ex(("127.0.0.1", 8080)) != 0 else 0
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    config = HubServiceConfig(
        mqtt=broker.mqtt_config(prefix=PREFIX), database=str(work / "hub" / "hub.db"),
        cache_dir=str(work / "hub" / "cache"),
        signing=SigningConfig(kid="demo", key=str(private), public_key=str(public)),
        media=MediaConfig(dir=str(work / "hub" / "media")),
        web=WebConfig(port=port), nodes=NodesConfig(expected=[NODE], zones={"thon-1": [NODE]}),
        log_level="warning",  # the demo prints its own story
    )
    db = recorder.connect(config.database)
    accounts.add_user(db, CONSOLE_USER, CONSOLE_PASSWORD, accounts.Role.ADMIN)
    db.close()
    service = HubService(config)
    thread = threading.Thread(target=asyncio.run, args=(service.serve(),), name="demo-hub", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not service.server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return service, thread


def _print_events(events: queue.Queue[Incoming], *, timeout: float, bulletin: str | None = None,
                  until: set[str] = FINAL_EVENTS) -> str | None:
    """Print events as they come, until one of the types ``until`` (of ``bulletin``, if given): its type, or None
    when none came within ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            msg = events.get(timeout=1)
        except queue.Empty:
            continue
        event = json.loads(msg.payload)
        details = {k: v for k, v in event.items() if k not in {"v", "node", "seq", "ts", "type", "bulletin", "rev"}}
        print(f"  #{event['seq']:<3} {event['ts']}  {event['type']:<9} {json.dumps(details, ensure_ascii=False)}")
        if event["type"] in until and bulletin in (None, event.get("bulletin")):
            return str(event["type"])
    print("  (no final event within the time limit)")
    return None


def _print_relays(daemon: Daemon, posted: float) -> None:
    for at, name, on in daemon.station.relays.history():
        print(f"  {at - posted:+7.2f} s  {name:<22} {'ON' if on else 'off'}")
