"""The ordinary faults of a village pole, each proving that nothing is lost: every occurrence plays exactly once
and every event reaches the hub with ``seq`` contiguous."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from harness import LONG, SHORT, EventLog, Hub, ProcessNode, ThreadNode, node_config, wait_for

from radiod.clock import JumpWatch, rfc3339
from radiod.config import AudioConfig
from radiod.hub.localbroker import Broker
from radiod.node.store import Store


def seq_gaps(events: EventLog) -> list[int]:
    """The seqs missing between 1 and the highest received. An event sent again (at least once: its PUBACK was
    not stored before a kill or a store error) counts once; no seq may name two different events."""
    distinct = {(e["seq"], e["type"], e.get("bulletin")) for e in events.events}
    seqs = [seq for seq, _, _ in distinct]
    assert len(set(seqs)) == len(seqs), sorted(distinct)
    return sorted(set(range(1, max(seqs) + 1)) - set(seqs))


def test_sigkill_mid_play_is_reported_and_replayed(hub: Hub, events: EventLog, tmp_path: Path) -> None:
    config = node_config(hub, tmp_path)
    node = ProcessNode(config, tmp_path)
    try:
        bid = hub.post(LONG, lang="tyz")["id"]  # a Tày programme: reported as such, also across the kill
        events.wait("started", bulletin=bid, timeout=60)
        node.kill()
        node = ProcessNode(config, tmp_path)
        interrupted = events.wait("interrupted", bulletin=bid, timeout=30)[0]
        assert interrupted["reason"] == "restart"
        events.wait("finished", bulletin=bid, timeout=60)
        once_each = sorted({(e["seq"], e["type"]) for e in events.of(bulletin=bid)})  # one per seq, as the hub keeps
        assert [type_ for _, type_ in once_each] == ["accepted", "started", "interrupted", "started", "finished"]
        assert {e.get("lang") for e in events.of(bulletin=bid) if e["type"] != "accepted"} == {"tyz"}
        assert seq_gaps(events) == []
    finally:
        assert node.terminate() == 0


def test_broker_crash_during_delivery_loses_nothing(
    hub: Hub, broker: Broker, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    node = start_node()
    posted = [hub.post(SHORT, at=(rfc3339(time.time() + 3600),), expires="3d")["id"] for _ in range(5)]
    wait_for(lambda: node.daemon.store.count_active(time.time()) == 5, 20, "the node to store the bulletins")
    broker.kill()  # a crash, while the node is still reporting them
    time.sleep(1.5)
    broker.start()
    events.wait("accepted", count=5, timeout=30)
    wait_for(lambda: node.daemon.store.outbox_size() == 0, 20, "the outbox to drain")
    # each bulletin accepted once (one seq), though its event may have come twice: sent again after the crash
    accepted = {(e["seq"], e["bulletin"]) for e in events.of(type_="accepted")}
    assert sorted(bulletin for _, bulletin in accepted) == sorted(posted)
    assert seq_gaps(events) == []


def test_corrupt_store_is_quarantined_and_rebuilt_from_retained(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path
) -> None:
    config = node_config(hub, tmp_path)
    node = start_node(config)
    bid = hub.post(SHORT, at=(rfc3339(time.time() + 3600),), expires="3d")["id"]
    events.wait("accepted", bulletin=bid)
    node.stop()
    db = Path(config.storage.dir) / "radiod.db"
    with db.open("r+b") as f:  # a power cut in the middle of a page write, say
        f.write(b"\0garbage" * 512)
    node = start_node(config)
    wait_for(lambda: node.daemon.store.get_bulletin(bid), 15, "the bulletin back from the retained messages")
    assert list(db.parent.glob("radiod.db.corrupt-*")), "the corrupt file was not kept for inspection"
    assert node.daemon.store.integrity_check()
    assert node.daemon.scheduler.next_of(bid) is not None


def fake_espeak(tmp_path: Path, behaviour: str) -> dict[str, str]:
    """A PATH whose espeak-ng answers --version and --voices like the real one but hangs when asked to speak."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "espeak-ng"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--voices*|*--version*) exec /usr/bin/espeak-ng "$@";; esac\n'
        f"{behaviour}\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}


def test_voice_engine_that_hangs_is_timed_out_and_reported(hub: Hub, events: EventLog, tmp_path: Path) -> None:
    config = node_config(hub, tmp_path)
    config = replace(config, speech=replace(config.speech, timeout_s=1.0))
    node = ProcessNode(config, tmp_path, env=fake_espeak(tmp_path, "sleep 600"))
    try:
        bid = hub.post("Một câu ngắn.")["id"]
        failed = events.wait("failed", bulletin=bid, timeout=60)[0]
        assert failed["reason"] == "synthesis"
        assert "took longer than 1 s" in failed["message"]
    finally:
        assert node.terminate() == 0
    assert subprocess.run(["pgrep", "-f", f"{tmp_path}/bin/espeak-ng"], check=False).returncode != 0


def test_missing_voice_engine_is_reported(hub: Hub, events: EventLog, tmp_path: Path) -> None:
    config = node_config(hub, tmp_path)
    node = ProcessNode(config, tmp_path, env={"PATH": "/nonexistent"})
    try:
        bid = hub.post(SHORT)["id"]
        failed = events.wait("failed", bulletin=bid, timeout=60)[0]
        assert failed["reason"] == "synthesis"
        assert "espeak-ng" in failed["message"]
    finally:
        assert node.terminate() == 0


def test_missing_audio_output_is_retried_then_reported(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the output directory should be", encoding="utf-8")
    config = replace(node_config(hub, tmp_path), audio=AudioConfig(output=f"file:{blocked}/out"))
    node = start_node(config)
    bid = hub.post(SHORT)["id"]
    failed = events.wait("failed", bulletin=bid, timeout=30)[0]
    assert failed["reason"] == "audio"
    assert str(blocked) in failed["message"]
    assert node.daemon.playout.audio_error is not None
    # The card comes back: the next bulletin plays.
    blocked.unlink()
    blocked.mkdir()
    again = hub.post(SHORT)["id"]
    events.wait("finished", bulletin=again, timeout=30)


def test_an_output_that_breaks_after_start_fails_the_play_with_the_amplifier_left_off(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    """The output folder becomes unusable after the node opened it (a card unplugged, a mount gone): the play
    fails with one event, and no relay ever moved: the amplifier is never switched on over silence."""
    node = start_node()
    node.out_dir.rmdir()
    node.out_dir.write_text("a file where the output directory was", encoding="utf-8")
    bid = hub.post(SHORT)["id"]
    failed = events.wait("failed", bulletin=bid, timeout=30)[0]
    assert failed["reason"] == "audio" and str(node.out_dir) in failed["message"]
    assert len(events.of(type_="failed", bulletin=bid)) == 1
    assert not [h for h in node.daemon.station.relays.history() if h[1] == "amplifier"]


def test_full_storage_loses_nothing_and_recovers(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path, tiny_disk: Path
) -> None:
    base = node_config(hub, tmp_path)
    config = replace(base, storage=replace(base.storage, dir=str(tiny_disk / "state")))
    node = start_node(config)
    filler = tiny_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
    first = hub.post(SHORT)["id"]
    wait_for(lambda: node.daemon.store_error or node.daemon.events.store_error, 20, "the store to report full")
    time.sleep(3)  # the node keeps running with a full card
    assert node.thread.is_alive()
    report = node.daemon.on_main_loop(node.daemon.health_report).result(timeout=20)
    assert report["status"] == "crit"
    assert {c["name"]: c["status"] for c in report["checks"]}["store"] == "crit"
    filler.unlink()  # space returns
    events.wait("finished", bulletin=first, timeout=60)
    second = hub.post(SHORT)["id"]
    events.wait("finished", bulletin=second, timeout=30)
    assert seq_gaps(events) == []
    node.stop()
    with Store(Path(config.storage.dir) / "radiod.db") as store:
        assert store.integrity_check()
        assert store.get_bulletin(first) is not None


def test_wall_clock_jumps_are_detected_both_ways() -> None:
    wall = [1_000_000.0]
    mono = [50.0]
    jumps: list[float] = []
    seen = threading.Event()

    def on_jump(delta: float) -> None:
        jumps.append(delta)
        seen.set()

    watch = JumpWatch(on_jump, period_s=0.02, wall=lambda: wall[0], monotonic=lambda: mono[0])
    watch.start()
    try:
        time.sleep(0.1)
        assert jumps == []  # both clocks still: no jump
        wall[0] += 1_700_000_000  # NTP syncs after a boot at 1970
        assert seen.wait(2)
        seen.clear()
        wall[0] -= 3600  # someone sets the clock back an hour
        assert seen.wait(2)
    finally:
        watch.stop()
    assert jumps == [1_700_000_000, -3600]


def test_clock_jump_rebuilds_the_schedule_without_replaying(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode]
) -> None:
    node = start_node()
    done = hub.post(SHORT)["id"]
    events.wait("finished", bulletin=done)
    later = hub.post(SHORT, at=(rfc3339(time.time() + 3600),), expires="3d")["id"]
    events.wait("accepted", bulletin=later)
    before = node.daemon.scheduler.next_of(later)
    node.daemon.clock._on_jump(120.0)  # what the watch calls when the wall clock moves
    time.sleep(1.0)
    assert node.daemon.scheduler.next_of(later) == before
    assert len(events.of(type_="started", bulletin=done)) == 1


def test_audio_output_that_fails_mid_play_is_retried_and_reported(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], tmp_path: Path, tiny_disk: Path
) -> None:
    """The output dies while playing (here: its disk fills after ~2 s of audio): the play is retried, then
    reported failed; the relays end up off and health warns about the audio."""
    filler = tiny_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1k", "count=3990"], capture_output=True, check=False)
    config = replace(node_config(hub, tmp_path), audio=AudioConfig(output=f"file:{tiny_disk}/out"))
    node = start_node(config)
    bid = hub.post(LONG)["id"]
    events.wait("started", bulletin=bid, timeout=30)
    failed = events.wait("failed", bulletin=bid, timeout=60)[0]
    assert failed["reason"] == "audio"
    assert "No space left" in failed["message"]
    assert not node.daemon.station.relays.state()["amplifier"]
    report = node.daemon.on_main_loop(node.daemon.health_report).result(timeout=20)
    assert {c["name"]: c["status"] for c in report["checks"]}["audio"] == "warn"
