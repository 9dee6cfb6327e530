"""The hub's media programmes, as an operator uses them: `radiod media add` checks, measures and keeps a recording,
the hub service serves it over real HTTP at the printed URL, and `radiod post --media` / `--relay` publish
bulletins that a node's own parser accepts from the real broker. The reports keep each programme's language.

Recordings are made here: an ffmpeg tone and espeak-ng speech encoded to MP3 and Opus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import http.server
import json
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest
import yaml
from harness import PREFIX, Hub, wait_for
from starlette.testclient import TestClient

from radiod.cli import main
from radiod.config import HubConfig, StorageConfig
from radiod.hub import accounts, recorder, reports
from radiod.hub.config import HubServiceConfig, MediaConfig, SigningConfig, WebConfig
from radiod.hub.localbroker import Broker
from radiod.hub.service import HubService
from radiod.hub.session import collect_retained
from radiod.hub.web.app import create_app
from radiod.protocol.jws import TrustStore
from radiod.protocol.messages import Bulletin, parse_message
from radiod.protocol.outgoing import Event
from radiod.schema import to_plain

SPEECH = "Chương trình phát thanh tiếng Tày của xã. Bà con chú ý lắng nghe."


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, timeout=60)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2 s tone as MP3, espeak-ng speech as Opus, a text file, an empty file and a WebM (a container the
    protocol does not name)."""
    folder = tmp_path_factory.mktemp("recordings")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "libmp3lame", "-b:a", "64k",
           str(folder / "tone.mp3"))
    subprocess.run(["espeak-ng", "-v", "vi", "-w", str(folder / "speech.wav"), SPEECH], check=True, timeout=60)
    ffmpeg("-i", str(folder / "speech.wav"), "-c:a", "libopus", "-b:a", "32k", str(folder / "chuong-trinh.opus"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "libopus", str(folder / "clip.webm"))
    (folder / "notes.txt").write_text("Lịch phát thanh tháng 12\n", encoding="utf-8")
    (folder / "empty.mp3").write_bytes(b"")
    return {p.name: p for p in folder.iterdir()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def service(hub: Hub, broker: Broker, tmp_path: Path) -> Iterator[HubServiceConfig]:
    """The real hub service (recorder and console) in a thread, its media folder empty; yields its config."""
    config = HubServiceConfig(
        mqtt=broker.mqtt_config(prefix=PREFIX, reconnect_max_s=1),
        database=str(tmp_path / "hub" / "hub.db"), cache_dir=str(tmp_path / "hub-cache"),
        signing=SigningConfig(kid=hub.kid, key=str(hub.key), public_key=str(hub.public)),
        web=WebConfig(port=free_port()), media=MediaConfig(dir=str(tmp_path / "media")),
    )
    running = HubService(config)
    thread = threading.Thread(target=asyncio.run, args=(running.serve(),), daemon=True)
    thread.start()
    wait_for(lambda: running.server.started, 20, "the hub service to listen")
    yield config
    running.stop()
    thread.join(timeout=30)


def hub_yaml(config: HubServiceConfig, tmp_path: Path) -> str:
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(to_plain(config, mask_secrets=False), allow_unicode=True), encoding="utf-8")
    return str(path)


def operator_yaml(hub: Hub, tmp_path: Path, media: HubServiceConfig | None = None) -> str:
    """The operator's config for `radiod post`, its media library the service's when given."""
    extra = {"media_dir": media.media.dir, "media_base_url": media.media_base_url()} if media else {}
    config = dataclasses.replace(hub.config(), storage=StorageConfig(dir=str(tmp_path / "state")),
                                 hub=HubConfig(kid=hub.kid, signing_key=str(hub.key), **extra))
    path = tmp_path / "operator.yaml"
    path.write_text(yaml.safe_dump(to_plain(config, mask_secrets=False)), encoding="utf-8")
    return str(path)


def printed(out: str) -> dict[str, str]:
    """`radiod media add`'s "key: value" lines."""
    return {k: v.strip() for k, v in re.findall(r"^(\w[\w ]*?):\s+(.*)$", out, re.M)}


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Message]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as answer:
        return answer.status, answer.read(), answer.headers


def node_reads(hub: Hub, broker: Broker) -> Bulletin:
    """The one retained bulletin, read from the broker as node n01 reads it: signature, topic, schema."""
    retained = [m for m in collect_retained(broker.mqtt_config(), "t", f"{PREFIX}/bulletin/#", settle_s=0.3)
                if m.payload]
    assert len(retained) == 1, [m.topic for m in retained]
    parsed = parse_message(retained[0].topic, retained[0].payload, prefix=PREFIX, node_id="n01", zones=["thon-1"],
                           trust=TrustStore({hub.kid: hub.public}, []), require_signature=True, now=time.time())
    assert isinstance(parsed, Bulletin)
    return parsed


def test_media_add_prints_url_sha256_duration_loudness_and_keeps_one_file_however_often_added(
    service: HubServiceConfig, recordings: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = hub_yaml(service, tmp_path)
    tone = recordings["tone.mp3"]
    assert main(["media", "add", "--config", config, str(tone)]) == 0
    first = printed(capsys.readouterr().out)
    sha256 = hashlib.sha256(tone.read_bytes()).hexdigest()
    assert first["sha256"] == sha256
    assert first["url"] == f"http://127.0.0.1:{service.web.port}/media/{sha256}.mp3"
    assert re.fullmatch(r"0:00:02 \(2\.\d s\)", first["duration"]), first  # MP3 pads a frame or two
    assert re.match(r"-\d+\.\d LUFS", first["loudness"]), first
    assert first["format"] == f"mp3, {tone.stat().st_size} bytes"

    assert main(["media", "add", "--config", config, str(tone)]) == 0
    assert printed(capsys.readouterr().out) == first
    assert sorted(p.name for p in Path(service.media.dir).iterdir() if not p.name.endswith(".json")) == \
        [f"{sha256}.mp3"]

    status, body, headers = fetch(first["url"])  # real HTTP, no login: the signed sha256 is the integrity
    assert status == 200 and hashlib.sha256(body).hexdigest() == sha256
    assert headers["Content-Type"] == "audio/mpeg"
    status, part, _ = fetch(first["url"], {"Range": "bytes=0-99"})
    assert status == 206 and part == body[:100]  # a node may resume a download
    for name in ("", f"{sha256}.mp3.json", "../hub/hub.db"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            fetch(f"http://127.0.0.1:{service.web.port}/media/{name}")
        assert refused.value.code == 404, name  # no listing, no notes, nothing outside the library


def test_speech_in_opus_is_measured_and_kept_as_opus(
    recordings: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = hub_yaml(HubServiceConfig(media=MediaConfig(dir=str(tmp_path / "m"),
                                                         base_url="http://hub.xa.vn/media")), tmp_path)
    assert main(["media", "add", "--config", config, str(recordings["chuong-trinh.opus"])]) == 0
    shown = printed(capsys.readouterr().out)
    assert shown["url"] == f"http://hub.xa.vn/media/{shown['sha256']}.opus"
    seconds = float(re.search(r"\((\d+\.\d) s\)", shown["duration"])[1])  # type: ignore[index]
    assert 3 < seconds < 15  # two sentences of espeak-ng speech
    assert (tmp_path / "m" / f"{shown['sha256']}.opus").is_file()


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("notes.txt", "notes.txt: not an audio file the nodes can play"),
        ("empty.mp3", "empty.mp3: the file is empty"),
        ("clip.webm", "the nodes take mp3, aac, m4a, ogg, opus, flac, wav: convert it"),
        ("missing.mp3", "missing.mp3: cannot read it: No such file or directory"),
    ],
)
def test_a_file_no_node_could_play_is_refused_naming_it_and_nothing_is_kept(
    recordings: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, says: str,
) -> None:
    config = hub_yaml(HubServiceConfig(media=MediaConfig(dir=str(tmp_path / "m"))), tmp_path)
    path = recordings.get(name, tmp_path / name)
    assert main(["media", "add", "--config", config, str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("radiod media: ") and says in err, err
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").iterdir())


def test_post_media_file_in_tay_is_kept_served_and_accepted_by_a_node(
    service: HubServiceConfig, hub: Hub, broker: Broker, recordings: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recording = recordings["chuong-trinh.opus"]
    config = operator_yaml(hub, tmp_path, media=service)
    assert main(["post", "--config", config, "--media", str(recording), "--lang", "tyz", "--title",
                 "Chương trình tiếng Tày", "--at", "23:59"]) == 0
    out = capsys.readouterr().out
    assert "what:  a recording" in out and "lang:  tyz" in out, out

    bulletin = node_reads(hub, broker)
    assert bulletin.lang == "tyz" and bulletin.text == "" and bulletin.title == "Chương trình tiếng Tày"
    assert bulletin.media is not None and bulletin.media.format == "opus"
    status, body, _ = fetch(bulletin.media.url)  # where the node fetches it: the hub service
    assert status == 200 and len(body) == bulletin.media.bytes == recording.stat().st_size
    assert hashlib.sha256(body).hexdigest() == bulletin.media.sha256


def test_post_media_url_is_fetched_once_to_measure_it_and_points_at_that_url(
    hub: Hub, broker: Broker, recordings: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    folder = recordings["tone.mp3"].parent
    asked: list[str] = []

    class Counting(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            super().do_GET()

    handler = lambda *a, **k: Counting(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tone.mp3"
        assert main(["post", "--config", operator_yaml(hub, tmp_path), "--media", url, "Tiếp theo là nhạc hiệu."]) == 0
        assert asked == ["/tone.mp3"], "the hub downloads it once, to measure it"
        capsys.readouterr()
        assert main(["post", "--config", operator_yaml(hub, tmp_path), "--media", url + ".missing"]) == 1
        assert f"--media {url}.missing: the server answered 404" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()
    bulletin = node_reads(hub, broker)
    assert bulletin.media is not None and bulletin.media.url == url
    assert bulletin.media.sha256 == hashlib.sha256(recordings["tone.mp3"].read_bytes()).hexdigest()
    assert bulletin.text == "Tiếp theo là nhạc hiệu." and bulletin.lang == "vi"


def test_post_relay_daily_for_30_minutes_is_accepted_by_a_node(
    hub: Hub, broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    stream = "http://dai-huyen.example/live.mp3"
    assert main(["post", "--config", operator_yaml(hub, tmp_path), "--relay", stream, "--daily", "06:00",
                 "--duration", "30m", "--until", "2030-12-31", "--title", "Tiếp sóng đài huyện"]) == 0
    assert f"what:  relay of {stream} for 30 min" in capsys.readouterr().out
    bulletin = node_reads(hub, broker)
    assert bulletin.relay is not None and bulletin.relay.url == stream and bulletin.relay.duration_s == 1800
    assert bulletin.schedule is not None and bulletin.schedule.daily is not None
    assert [t.strftime("%H:%M") for t in bulletin.schedule.daily.times] == ["06:00"]
    assert str(bulletin.schedule.daily.until_date) == "2030-12-31" and bulletin.text == ""


def test_post_relay_until_a_time_of_day(hub: Hub, broker: Broker, tmp_path: Path) -> None:
    assert main(["post", "--config", operator_yaml(hub, tmp_path), "--relay", "https://vov.example/vov1",
                 "--daily", "05:30", "--until", "06:15", "--lang", "vi"]) == 0
    relay = node_reads(hub, broker).relay
    assert relay is not None and relay.until is not None and relay.until.strftime("%H:%M") == "06:15"


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--relay", "http://x.example/s"], "--relay needs one of --duration"),
        (["--relay", "http://x.example/s", "--duration", "30m", "--until", "07:00"], "not both"),
        (["--relay", "http://x.example/s", "--duration", "half an hour"], "--duration half an hour: expected"),
        (["--relay", "http://x.example/s", "--duration", "7h"], "at most 6 h"),
        (["--relay", "ftp://x.example/s", "--duration", "30m"], "--relay: expected an http:// or https:// URL"),
        (["--duration", "30m", "Tin"], "--duration only with --relay"),
        (["--daily", "06:00", "--until", "07:00", "Tin"], "--until 07:00: a time of day ends a --relay"),
        (["--media", "a.mp3", "--relay", "http://x.example/s"], "not both"),
        (["--relay", "http://x.example/s", "--duration", "30m", "--lang", "Tày"], "--lang:"),
        ([], "give the text to read, or -f FILE, or a programme: --media, --relay"),
    ],
)
def test_post_names_the_flag_of_a_programme_no_node_would_play(
    broker: Broker, hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], says: str,
) -> None:
    assert main(["post", "--config", operator_yaml(hub, tmp_path), *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith("radiod post: ") and says in err, err


def test_post_media_file_without_a_base_url_says_which_key_to_set(
    hub: Hub, recordings: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["post", "--config", operator_yaml(hub, tmp_path), "--media", str(recordings["tone.mp3"])]) == 1
    assert "set hub.media_base_url" in capsys.readouterr().err


def test_reports_keep_the_language_a_node_reported_else_the_bulletins(tmp_path: Path) -> None:
    db = recorder.connect(tmp_path / "hub.db")
    media = {"url": "http://hub/media/" + "a" * 64 + ".mp3", "sha256": "a" * 64, "bytes": 1000, "duration_s": 600.0,
             "format": "mp3"}
    with db:
        recorder.store_bulletin(db, {"id": "b-tay", "rev": 1, "title": "Tiếng Tày", "lang": "tyz", "media": media,
                                     "priority": "normal", "status": "actual"}, "t", True, time.time())
        recorder.store_bulletin(db, {"id": "b-vi", "rev": 1, "title": "Họp thôn", "priority": "normal",
                                     "status": "actual", "text": "Họp thôn."}, "t", True, time.time())
        for seq, (bulletin, lang) in enumerate([("b-tay", "tyz"), ("b-tay", None), ("b-vi", None)], start=1):
            event = Event(type="finished", node="n01", ts=f"2026-12-0{seq}T06:10:00.000+07:00", seq=seq,
                          bulletin=bulletin, rev=1, duration_s=600.0, lang=lang)
            recorder.store_event(db, "n01", event, time.time())
    assert db.execute("SELECT lang FROM events ORDER BY seq").fetchall()[0]["lang"] == "tyz"
    languages = reports.node_rows(reports.by_language(db, "2026-12"))
    assert languages == [("tyz", 2, 0, 0, 0, 20.0, 1), ("vi", 1, 0, 0, 0, 10.0, 1)]
    _, per_bulletin = reports.monthly(db, "2026-12")
    rows = {r[0]: r for r in reports.bulletin_rows(db, per_bulletin)}
    assert rows["b-tay"][-2:] == ("media", "tyz") and rows["b-vi"][-2:] == ("text", "vi")
    assert json.loads(db.execute("SELECT data FROM events WHERE seq=1").fetchone()["data"])["lang"] == "tyz"


@pytest.fixture
def clerk(tmp_path: Path) -> TestClient:
    """The console (no broker: these forms stop before posting), logged in as an operator."""
    config = HubServiceConfig(database=str(tmp_path / "hub.db"), cache_dir=str(tmp_path / "cache"),
                              media=MediaConfig(dir=str(tmp_path / "media"), base_url="http://hub.xa.vn/media/"))
    db = recorder.connect(config.database)
    accounts.add_user(db, "van-thu", "mat-khau-1", "operator")
    client = TestClient(create_app(config, db), base_url="http://127.0.0.1")
    form = client.get("/login")
    client.post("/login", data={"csrf": csrf_of(form.text), "name": "van-thu", "password": "mat-khau-1"})
    return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the form has no CSRF token"
    return found[1]


def test_the_upload_form_keeps_a_recording_and_refuses_a_text_file_in_vietnamese(
    clerk: TestClient, recordings: dict[str, Path], tmp_path: Path,
) -> None:
    form = {"csrf": csrf_of(clerk.get("/post?kind=media").text), "kind": "media", "action": "preview",
            "title": "Chương trình tiếng Tày", "lang": "tyz", "targets": "all", "when": "daily", "daily": "19:00",
            "repeat": "1"}
    refused = clerk.post("/post", data=form, files={"media_file": ("notes.txt", b"Lich phat\n", "text/plain")})
    assert refused.status_code == 400
    assert "Tệp ghi âm: notes.txt: not an audio file the nodes can play" in refused.text
    tone = recordings["tone.mp3"]
    kept = clerk.post("/post", data=form, files={"media_file": ("tone.mp3", tone.read_bytes(), "audio/mpeg")})
    sha256 = hashlib.sha256(tone.read_bytes()).hexdigest()
    assert kept.status_code == 200 and f'src="/media/{sha256}.mp3"' in kept.text
    assert f'name="media_name" value="{sha256}.mp3"' in kept.text  # posting needs no second upload
    assert (tmp_path / "media" / f"{sha256}.mp3").read_bytes() == tone.read_bytes()
    clerk.cookies.clear()
    assert clerk.get(f"/media/{sha256}.mp3").content == tone.read_bytes()  # the nodes need no login


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"relay_url": "", "relay_duration": "30m"}, "Địa chỉ luồng phát: nhập địa chỉ http://"),
        ({"relay_url": "http://x.example/s"}, "Tiếp sóng: nhập thời lượng"),
        ({"relay_url": "http://x.example/s", "relay_duration": "nửa giờ"}, "Thời lượng «nửa giờ»: viết như 30m"),
    ],
)
def test_the_relay_form_says_what_is_missing_in_vietnamese(clerk: TestClient, fields: dict[str, str],
                                                           says: str) -> None:
    form = {"csrf": csrf_of(clerk.get("/post?kind=relay").text), "kind": "relay", "action": "preview",
            "targets": "all", "when": "daily", "daily": "06:00", "repeat": "1", **fields}
    answer = clerk.post("/post", data=form)
    assert answer.status_code == 400 and says in answer.text, answer.text[-2000:]
