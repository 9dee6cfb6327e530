"""Node faults found when the node was attacked and run as a new operator would (issue 11, items 1, 3, 4 and 10):
each test stands up the real parts (broker, daemon, store on a real file system) and checks what the hub or a
technician would see."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from harness import LONG, PREFIX, SHORT, EventLog, Hub, ProcessNode, ThreadNode, node_config, wait_for

from radiod.audio.pcm import Pcm
from radiod.clock import rfc3339
from radiod.config import load_config
from radiod.hub.localbroker import Broker
from radiod.hub.session import publish_once
from radiod.node.play_record import PlayRecorder
from radiod.node.programme import ProgrammeMaker
from radiod.node.store import PlayRecord, Store
from radiod.protocol.jws import sign
from radiod.speech.cache import SpeechCache


def checks(node: ThreadNode) -> dict[str, tuple[str, str]]:
    report = node.daemon.on_main_loop(node.daemon.health_report).result(timeout=20)
    return {c["name"]: (c["status"], c["detail"]) for c in report["checks"]}


def test_next_play_is_cleared_after_the_last_at_time(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    """After a bulletin's last ``at`` time played, neither `radiod status` nor the health report (which
    `radiod nodes` shows) still announces it as the next play."""
    node = start_node()
    bid = hub.post(SHORT, at=(rfc3339(time.time() + 2, ms=False),), expires="2h")["id"]
    events.wait("accepted", bulletin=bid)
    events.wait("finished", bulletin=bid, timeout=30)
    status = node.daemon.on_main_loop(node.daemon.status_report).result(timeout=20)
    assert status["next"] == [], status["next"]
    health = node.daemon.on_main_loop(node.daemon.health_report).result(timeout=20)
    assert health.get("next") is None, health.get("next")
    queue = {c["name"]: c["detail"] for c in health["checks"]}["queue"]
    assert "nothing scheduled" in queue


def test_event_publisher_survives_a_full_disk_and_resumes(
    hub: Hub, broker: Broker, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path,
    tiny_disk: Path,
) -> None:
    """Events wait in the outbox while the hub is away; the SD card fills; the hub comes back, so the publisher
    sends them but cannot delete them from the full store. It must keep going and deliver every event once space
    returns, without a restart."""
    base = node_config(hub, tmp_path)
    node = start_node(replace(base, storage=replace(base.storage, dir=str(tiny_disk / "state"))))
    bid = hub.post(SHORT, at=(rfc3339(time.time() + 2, ms=False),), expires="2h")["id"]
    events.wait("accepted", bulletin=bid)
    broker.stop()
    wait_for(lambda: node.daemon.store.outbox_size() >= 2, 30, "the play's started and finished in the outbox")
    filler = tiny_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
    broker.start()
    events.wait("started", bulletin=bid, timeout=20)  # sent, but the full store cannot forget it
    time.sleep(2)
    assert node.daemon.publisher.alive, "the event publisher died on the full disk"
    filler.unlink()  # space returns
    events.wait("finished", bulletin=bid, timeout=20)
    wait_for(lambda: node.daemon.store.outbox_size() == 0, 20, "the outbox to drain")
    assert checks(node)["outbox"][0] == "ok"


def test_health_is_crit_when_the_event_publisher_is_not_running(start_node: Callable[..., ThreadNode]) -> None:
    node = start_node()
    assert checks(node)["outbox"][0] == "ok"
    node.daemon.publisher.stop()  # as if its thread had ended: events would pile up until a restart
    status, detail = checks(node)["outbox"]
    assert status == "crit" and "publisher" in detail


def test_sigterm_mid_play_replays_after_restart(hub: Hub, events: EventLog, tmp_path: Path) -> None:
    """`systemctl restart` (SIGTERM) in the middle of a scheduled play: reported interrupted with reason
    shutdown, and played again after the restart, since it is still within its grace window."""
    config = node_config(hub, tmp_path)
    node = ProcessNode(config, tmp_path)
    try:
        # Up (its control socket is the last thing it opens), so the bulletin arrives before its time.
        wait_for((Path(config.storage.dir) / "control.sock").exists, 60, "the node to start")
        at = rfc3339(time.time() + 3, ms=False)
        bid = hub.post(LONG, at=(at,), expires="2h")["id"]
        events.wait("started", bulletin=bid, timeout=60)
        time.sleep(1)  # mid-audio
        assert node.terminate() == 0
        node = ProcessNode(config, tmp_path)
        interrupted = events.wait("interrupted", bulletin=bid, timeout=30)[0]
        assert interrupted["reason"] == "shutdown"
        events.wait("finished", bulletin=bid, timeout=60)
        played = sorted(events.of(bulletin=bid), key=lambda e: e["seq"])
        assert [e["type"] for e in played] == ["accepted", "started", "interrupted", "started", "finished"]
        assert len({e["occurrence"] for e in played[1:]}) == 1  # the same occurrence, played again
    finally:
        assert node.terminate() == 0


def fill(disk: Path) -> Path:
    """Fill the file system to its last block; returns the filler to delete when space should return."""
    filler = disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True, check=False)
    return filler


def test_emergency_and_stop_play_from_memory_on_a_full_disk(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path,
    tiny_disk: Path,
) -> None:
    """The SD card is full: a new emergency plays at once from memory, a `stop` command ends it, and once space
    returns the emergency is written to the store without being played a second time."""
    base = node_config(hub, tmp_path)
    node = start_node(replace(base, storage=replace(base.storage, dir=str(tiny_disk / "state"))))
    filler = fill(tiny_disk)
    relays = node.daemon.station.relays
    bid = hub.post(LONG, priority="emergency")["id"]
    wait_for(lambda: relays.state()["amplifier"], 10, "the emergency on the loudspeakers")
    assert node.daemon.store.get_bulletin(bid) is None  # it played from memory: the store refused it
    time.sleep(1)  # past the amplifier's warm-up: the speech plays
    now = time.time()
    stop = sign({"v": 1, "kind": "command", "id": "stop-full", "iat": now, "exp": now + 60, "targets": ["all"],
                 "action": "stop"}, hub.key, hub.kid)
    publish_once(hub.config().mqtt, "test", [(f"{PREFIX}/command/all", stop, False)])
    wait_for(lambda: not relays.state()["amplifier"], 10, "the stop to end the emergency")
    filler.unlink()  # space returns: the events waiting in memory reach the hub
    assert events.wait("interrupted", bulletin=bid, timeout=20)[0]["reason"] == "stopped"
    wait_for(lambda: node.daemon.store.get_bulletin(bid), 20, "the emergency written to the store")
    # and how it played (stopped: never again), so a restart does not play it again
    wait_for(lambda: [p.state for p in node.daemon.store.play_history(bid)] == ["started", "skipped"], 20,
             "the play's states written to the store")
    wait_for(lambda: not node.daemon.store.remember_command("stop-full", now + 60), 20, "the stop remembered")
    time.sleep(1)
    assert len(events.of(type_="started", bulletin=bid)) == 1
    assert len(events.of(type_="command")) == 1


def test_a_fresh_node_starts_on_a_full_disk_and_writes_its_store_when_space_returns(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path,
    tiny_disk: Path,
) -> None:
    """A new node whose SD card is already full starts all the same: health says the store is in memory and
    names the file, an emergency plays; once space returns the store is on the card with what came meanwhile."""
    base = node_config(hub, tmp_path)
    state = tiny_disk / "state"
    config = replace(base, storage=replace(base.storage, dir=str(state)))
    state.mkdir()
    filler = fill(tiny_disk)
    node = start_node(config)
    status, detail = checks(node)["store"]
    assert status == "crit" and str(state / "radiod.db") in detail and "memory" in detail, detail
    bid = hub.post(SHORT, priority="emergency")["id"]
    wait_for(lambda: node.daemon.station.relays.state()["amplifier"], 10, "the emergency on the loudspeakers")
    filler.unlink()  # space returns
    events.wait("finished", bulletin=bid, timeout=30)
    wait_for(lambda: checks(node)["store"][0] != "crit", 20, "the store on the card")
    node.stop()
    with Store(state / "radiod.db") as store:
        assert store.get_bulletin(bid) is not None
        assert [p.state for p in store.play_history(bid)][-1] == "finished"


def test_a_store_on_a_full_disk_opens_in_memory_with_what_the_file_holds(tiny_disk: Path) -> None:
    """A node restarted on a full card: its store opens from the file's content in memory, takes writes there,
    and goes back onto the file, with both old and new records, once space returns."""
    path = tiny_disk / "state" / "radiod.db"
    with Store(path) as store:
        store.apply_bulletin(id="b-old", rev=1, exp=time.time() + 3600, cancelled=False, payload="{}", now=0)
    filler = fill(tiny_disk)
    store = Store(path, in_memory=True)
    try:
        assert store.unwritable is not None and str(path) in store.unwritable
        assert store.get_bulletin("b-old") is not None
        store.apply_bulletin(id="b-new", rev=1, exp=time.time() + 3600, cancelled=False, payload="{}", now=0)
        assert not store.persist()
        filler.unlink()
        assert store.persist() and store.unwritable is None
    finally:
        store.close()
    with Store(path) as store:
        assert store.get_bulletin("b-old") is not None and store.get_bulletin("b-new") is not None


def test_play_states_refused_by_a_full_disk_are_written_in_the_order_they_happened(tiny_disk: Path) -> None:
    """An emergency starts while the card is full; space returns before it is stopped. The store must end with
    "skipped" after "started" (a play cut by `stop` is never played again), not the refused "started" written
    last, which would replay it after a restart."""
    path = tiny_disk / "state" / "radiod.db"
    with Store(path) as store:
        refusals: list[str] = []
        plays = PlayRecorder(store, 100, on_error=refusals.append)
        filler = fill(tiny_disk)
        assert plays.claim(PlayRecord("b-1", 1, "now-1", "started", "", 1.0))  # refused: it plays all the same
        assert refusals and len(plays) == 1
        filler.unlink()
        plays.mark(PlayRecord("b-1", 1, "now-1", "skipped", "stopped", 2.0))  # the store would take it now
        assert not plays.claim(PlayRecord("b-1", 1, "now-1", "started", "", 3.0))  # a second trigger: done
        assert plays.flush() and len(plays) == 0
        assert [p.state for p in store.play_history("b-1")] == ["started", "skipped"]
        assert store.unfinished_plays() == []


def test_the_wal_does_not_eat_the_space_freed_on_a_full_disk(tiny_disk: Path) -> None:
    """A technician frees a little space on a full card: the store's ordinary writes (events sent and
    acknowledged) must keep working in it, not grow the WAL until the card is full again."""
    path = tiny_disk / "state" / "radiod.db"
    with Store(path) as store:
        filler = fill(tiny_disk)
        with filler.open("r+b") as f:  # 1 MB freed
            f.truncate(filler.stat().st_size - 1024 * 1024)
        for n in range(1500):
            seq = store.add_event({"type": "accepted", "bulletin": f"b-{n}", "note": "x" * 500})["seq"]
            store.ack_event(seq)
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size <= 1024 * 1024 // 2, wal.stat().st_size


def test_the_speech_cache_leaves_the_store_its_space(tiny_disk: Path) -> None:
    """The speech cache shares the state disk with the store (``<dir>/cache``). However large its own bound,
    it keeps a reserve free on that disk, evicting its oldest entries first, so the store can still write."""
    cache = SpeechCache(tiny_disk / "state" / "cache", max_mb=512, reserve_bytes=1024 * 1024)
    clip = Pcm(np.full(100_000, 1000, dtype=np.int16), 22050)  # about 200 KB an entry
    for n in range(30):  # 6 MB of speech on a 4 MB disk
        cache.put(f"{n:064x}", clip)
    usage = shutil.disk_usage(tiny_disk)
    assert usage.free >= 1024 * 1024 - 64 * 1024, usage  # the reserve, give or take a file system block or so
    assert cache.get(f"{29:064x}") is not None  # the newest entry was kept: the oldest made room
    with Store(tiny_disk / "state" / "radiod.db") as store:
        store.put_setting("volume", "0.5")


def test_no_programme_or_sentence_is_cached_on_a_state_disk_short_of_the_reserve(
    tmp_path: Path, tiny_disk: Path,
) -> None:
    """A state disk with less free space than the speech cache's reserve (4 MB here, 64 MB kept): bulletins still
    render and play, but neither their sentences nor the finished programme are kept on it."""
    path = tmp_path / "config.yaml"
    path.write_text(f"storage:\n  dir: {tiny_disk / 'state'}\n", encoding="utf-8")
    config = load_config(path)
    programme = ProgrammeMaker(config).make("Xin chào bà con. Sáng mai xã tổ chức tiêm phòng.", "vi-north")
    assert sum(len(block) for block in programme.int16_blocks(4096)) == programme.n_samples > 0
    assert not list(config.cache_dir.rglob("*.wav"))
