"""The node's store as the daemon relies on it: on real SQLite files, across restarts (a new Store on the same file)."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from radiod.errors import StoreError
from radiod.node.store import COMMAND_KEEP_AFTER_EXP_S, PLAY_LOG_RETENTION_S, Store

NOW = 1_795_000_000.0  # late 2026
DAY = 86400.0


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "radiod.db"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    with Store(path) as s:
        yield s


def payload(bid: str, rev: int, *, cancelled: bool = False, text: str = "Thông báo lịch tiêm phòng") -> str:
    body = {"v": 1, "kind": "bulletin", "id": bid, "rev": rev, "text": text}
    if cancelled:
        body["cancelled"] = True
    return json.dumps(body, ensure_ascii=False)


def apply(
    store: Store, bid: str, rev: int, *, exp: float = NOW + DAY, cancelled: bool = False, text: str = "a"
) -> str:
    text = payload(bid, rev, cancelled=cancelled, text=text)
    return store.apply_bulletin(id=bid, rev=rev, exp=exp, cancelled=cancelled, payload=text, now=NOW)


# --- opening -----------------------------------------------------------------------------------------------------


def test_a_new_store_creates_its_directory_and_file_in_wal_mode(path: Path) -> None:
    Store(path).close()
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] >= 1


def test_a_garbage_file_is_refused_as_corrupt_naming_the_file_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "radiod.db"
    garbage = b"this is not sqlite\n" * 500
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match=re.escape(str(path))) as caught:
        Store(path)
    assert caught.value.corrupt
    assert caught.value.path == str(path)
    assert path.read_bytes() == garbage  # the daemon quarantines the evidence as it was


def test_a_damaged_page_is_found_at_open(path: Path) -> None:
    with Store(path) as store:
        for i in range(300):
            apply(store, f"b{i}", 1, text="x" * 500)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 10 * page
    data[5 * page : 8 * page] = b"\xa5" * (3 * page)  # a few pages in the middle of the bulletins table
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=re.escape(str(path))) as caught:
        Store(path)
    assert caught.value.corrupt


def test_a_healthy_store_passes_the_integrity_check(store: Store) -> None:
    apply(store, "b1", 1)
    assert store.integrity_check()


def test_a_store_written_by_a_newer_radiod_is_refused_but_not_called_corrupt(path: Path) -> None:
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 0)")
    with pytest.raises(StoreError, match="newer radiod") as caught:
        Store(path)
    assert not caught.value.corrupt


def test_opening_twice_keeps_the_data_and_applies_no_migration_again(path: Path) -> None:
    with Store(path) as store:
        apply(store, "b1", 1)
    with Store(path) as store:
        assert store.get_bulletin("b1") is not None
    with sqlite3.connect(path) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, len(versions) + 1))


# --- bulletins ---------------------------------------------------------------------------------------------------


def test_a_new_bulletin_is_stored_verbatim(store: Store) -> None:
    text = payload("b1", 1)
    assert store.apply_bulletin(id="b1", rev=1, exp=NOW + DAY, cancelled=False, payload=text, now=NOW) == "stored"
    got = store.get_bulletin("b1")
    assert got is not None
    assert (got.id, got.rev, got.exp, got.cancelled, got.payload, got.stored_at) == (
        "b1", 1, NOW + DAY, False, text, NOW,
    )
    assert store.get_bulletin("nope") is None


def test_a_retained_redelivery_is_a_duplicate_and_changes_nothing(store: Store) -> None:
    assert apply(store, "b1", 1) == "stored"
    assert store.apply_bulletin(
        id="b1", rev=1, exp=NOW + DAY, cancelled=False, payload=payload("b1", 1, text="a"), now=NOW + 60
    ) == "duplicate"
    got = store.get_bulletin("b1")
    assert got is not None and got.stored_at == NOW


def test_a_lower_rev_or_a_different_payload_under_the_same_rev_is_stale(store: Store) -> None:
    assert apply(store, "b1", 2, text="two") == "stored"
    assert apply(store, "b1", 1, text="one") == "stale"
    assert apply(store, "b1", 2, text="forged") == "stale"
    got = store.get_bulletin("b1")
    assert got is not None and got.rev == 2 and "two" in got.payload


def test_a_higher_rev_replaces_the_stored_one(store: Store) -> None:
    apply(store, "b1", 1, text="old")
    assert apply(store, "b1", 3, text="new") == "stored"
    got = store.get_bulletin("b1")
    assert got is not None and got.rev == 3 and "new" in got.payload
    assert [b.rev for b in store.bulletins(now=NOW)] == [3]


def test_a_tombstone_cancels_and_refuses_the_old_rev_until_it_expires(store: Store) -> None:
    apply(store, "b1", 1)
    apply(store, "b2", 1)
    assert apply(store, "b1", 2, cancelled=True) == "stored"
    assert [b.id for b in store.bulletins(now=NOW)] == ["b2"]
    assert [(b.id, b.cancelled) for b in store.bulletins(now=NOW, include_cancelled=True)] == [
        ("b1", True), ("b2", False),
    ]
    assert store.count_active(NOW) == 1
    assert apply(store, "b1", 1) == "stale"  # a replayed old rev cannot resurrect it


def test_a_tombstone_shorter_lived_than_the_rev_it_cancels_still_refuses_that_rev_until_it_expires(
    store: Store,
) -> None:
    apply(store, "b1", 1, exp=NOW + 10 * DAY)
    apply(store, "b1", 2, exp=NOW + DAY, cancelled=True)
    assert store.purge_expired(NOW + 2 * DAY) == 0
    assert apply(store, "b1", 1, exp=NOW + 10 * DAY) == "stale"
    assert store.purge_expired(NOW + 10 * DAY) == 1
    assert store.get_bulletin("b1") is None


def test_expired_bulletins_are_not_listed_and_purge_removes_them_and_tombstones(store: Store) -> None:
    apply(store, "soon", 1, exp=NOW + 60)
    apply(store, "later", 1, exp=NOW + DAY)
    apply(store, "gone", 1, exp=NOW + 120)
    apply(store, "gone", 2, exp=NOW + 120, cancelled=True)
    assert [b.id for b in store.bulletins(now=NOW + 60)] == ["later"]
    assert store.count_active(NOW + 60) == 1
    assert store.get_bulletin("soon") is not None  # listed no more, but kept until purged
    assert store.purge_expired(NOW + 120) == 2
    assert store.get_bulletin("soon") is None and store.get_bulletin("gone") is None
    assert [b.id for b in store.bulletins(now=NOW + 120, include_cancelled=True)] == ["later"]


def test_bulletins_survive_a_restart(path: Path) -> None:
    with Store(path) as store:
        apply(store, "b1", 1)
        apply(store, "b2", 4, cancelled=True)
    with Store(path) as store:
        assert [(b.id, b.rev, b.cancelled) for b in store.bulletins(now=NOW, include_cancelled=True)] == [
            ("b1", 1, False), ("b2", 4, True),
        ]
        assert apply(store, "b1", 1) == "duplicate"


# --- occurrences -------------------------------------------------------------------------------------------------

OCC = "2026-11-23T06:30:00+07:00"


def test_an_occurrence_has_no_state_until_marked_and_then_its_latest(store: Store) -> None:
    assert store.occurrence_state("b1", 1, OCC) is None
    store.mark_occurrence("b1", 1, OCC, "started", at=NOW)
    assert store.occurrence_state("b1", 1, OCC) == "started"
    store.mark_occurrence("b1", 1, OCC, "finished", detail="duration 42 s", at=NOW + 42)
    assert store.occurrence_state("b1", 1, OCC) == "finished"
    assert store.occurrence_state("b1", 2, OCC) is None  # another rev is another occurrence
    assert [(p.state, p.detail) for p in store.play_history("b1")] == [
        ("started", ""), ("finished", "duration 42 s"),
    ]


def test_an_occurrence_is_claimed_exactly_once_even_across_a_restart(path: Path) -> None:
    with Store(path) as store:
        assert store.claim_occurrence("b1", 1, OCC, at=NOW)
        assert not store.claim_occurrence("b1", 1, OCC, at=NOW + 1)
    with Store(path) as store:
        assert store.occurrence_state("b1", 1, OCC) == "started"
        assert not store.claim_occurrence("b1", 1, OCC, at=NOW + 2)
        assert [p.state for p in store.play_history("b1")] == ["started"]


def test_an_interrupted_occurrence_may_be_claimed_again_a_finished_or_skipped_one_not(store: Store) -> None:
    store.mark_occurrence("b1", 1, OCC, "interrupted", detail="preempted", at=NOW)
    assert store.claim_occurrence("b1", 1, OCC, at=NOW + 1), "pre-empted by an emergency: it plays again after"
    store.mark_occurrence("b1", 1, OCC, "finished", at=NOW + 40)
    assert not store.claim_occurrence("b1", 1, OCC, at=NOW + 41)
    store.mark_occurrence("b2", 1, OCC, "skipped", detail="quiet_hours", at=NOW)
    assert not store.claim_occurrence("b2", 1, OCC, at=NOW + 1)
    assert [p.state for p in store.play_history("b1")] == ["interrupted", "started", "finished"]


def test_concurrent_claims_of_one_occurrence_let_exactly_one_thread_play_it(store: Store) -> None:
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        wins.append(store.claim_occurrence("b1", 1, OCC, at=NOW))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_a_play_cut_by_a_restart_is_reported_as_unfinished_until_marked(path: Path) -> None:
    with Store(path) as store:
        store.mark_occurrence("b1", 1, OCC, "started", at=NOW)
        store.mark_occurrence("b2", 1, OCC, "started", at=NOW)
        store.mark_occurrence("b2", 1, OCC, "finished", at=NOW + 30)
    with Store(path) as store:  # the daemon was killed while b1 was playing
        assert [(p.id, p.state) for p in store.unfinished_plays()] == [("b1", "started")]
        store.mark_occurrence("b1", 1, OCC, "interrupted", detail="restart", at=NOW + 100)
        assert store.unfinished_plays() == []


def test_last_plays_shows_the_latest_state_of_the_most_recent_occurrences_first(store: Store) -> None:
    store.mark_occurrence("b1", 1, "t1", "started", at=NOW)
    store.mark_occurrence("b1", 1, "t1", "finished", at=NOW + 10)
    store.mark_occurrence("b2", 1, "t2", "skipped", detail="quiet_hours", at=NOW + 20)
    store.mark_occurrence("b3", 1, "t3", "started", at=NOW - 5)  # recorded last, even if the clock went back
    assert [(p.id, p.state) for p in store.last_plays()] == [("b3", "started"), ("b2", "skipped"), ("b1", "finished")]
    assert [p.id for p in store.last_plays(1)] == ["b3"]


def test_an_unknown_state_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="playing"):
        store.mark_occurrence("b1", 1, OCC, "playing", at=NOW)
    assert store.occurrence_state("b1", 1, OCC) is None


def test_play_history_of_a_gone_bulletin_is_forgotten_after_the_retention_but_an_unfinished_play_is_kept(
    store: Store,
) -> None:
    apply(store, "live", 1, exp=NOW + 100 * DAY)
    apply(store, "gone", 1, exp=NOW + DAY)
    for bid in ("live", "gone"):
        store.mark_occurrence(bid, 1, "t1", "started", at=NOW)
        store.mark_occurrence(bid, 1, "t1", "finished", at=NOW + 1)
    store.mark_occurrence("gone", 1, "t2", "started", at=NOW + 2)  # never finished
    later = NOW + 2 + PLAY_LOG_RETENTION_S + 1
    store.purge_expired(later)
    assert store.play_history("gone") == [] and store.play_history("live") == []
    assert store.occurrence_state("gone", 1, "t1") is None
    assert store.occurrence_state("live", 1, "t1") == "finished"  # its bulletin can still play: still exactly once
    assert [(p.id, p.occurrence) for p in store.unfinished_plays()] == [("gone", "t2")]


# --- event outbox ------------------------------------------------------------------------------------------------


def event(kind: str = "accepted", **extra: object) -> dict[str, object]:
    return {"v": 1, "node": "n07", "ts": NOW, "type": kind, "bulletin": "b1", "rev": 1, **extra}


def test_add_event_numbers_events_and_keeps_them_as_json_until_acked(store: Store) -> None:
    sent = event("started", title="Lịch tiêm phòng")
    got = store.add_event(sent)
    assert got == {**sent, "seq": 1}
    assert "seq" not in sent
    [(seq, text)] = store.pending_events()
    assert seq == 1
    assert json.loads(text) == got
    assert "Lịch tiêm phòng" in text  # UTF-8 on the wire, not \\u escapes
    store.ack_event(1)
    assert store.pending_events() == [] and store.outbox_size() == 0
    store.ack_event(1)  # a second PUBACK for the same event is harmless


def test_seq_is_contiguous_across_acks_and_restarts_and_the_outbox_survives(path: Path) -> None:
    with Store(path) as store:
        assert [store.add_event(event())["seq"] for _ in range(3)] == [1, 2, 3]
        for seq in (1, 2, 3):
            store.ack_event(seq)
        assert store.add_event(event())["seq"] == 4
    with Store(path) as store:
        assert [seq for seq, _ in store.pending_events()] == [4]
        assert store.add_event(event())["seq"] == 5
        assert store.outbox_size() == 2
        assert [seq for seq, _ in store.pending_events(limit=1)] == [4]


def test_an_event_that_is_not_json_consumes_no_seq(store: Store) -> None:
    store.add_event(event())
    with pytest.raises(ValueError):
        store.add_event(event(duration_s=float("nan")))
    with pytest.raises(TypeError):
        store.add_event(event(when=object()))
    assert store.add_event(event())["seq"] == 2
    assert store.outbox_size() == 2


def test_concurrent_add_event_from_several_threads_gives_unique_contiguous_seqs(store: Store) -> None:
    seqs: list[int] = []
    barrier = threading.Barrier(8)

    def publisher() -> None:
        barrier.wait()
        for _ in range(40):
            seqs.append(store.add_event(event())["seq"])

    def acker() -> None:
        barrier.wait()
        for _ in range(40):
            for seq, _text in store.pending_events(limit=5):
                store.ack_event(seq)

    threads = [threading.Thread(target=publisher) for _ in range(7)] + [threading.Thread(target=acker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(1, 7 * 40 + 1))
    assert store.add_event(event())["seq"] == 7 * 40 + 1


def test_a_full_outbox_drops_the_oldest_info_events_first_with_a_warning_and_leaves_a_gap(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(path, outbox_cap=5) as store:
        store.add_event(event("accepted"))  # 1
        store.add_event(event("started"))  # 2
        store.add_event(event("rejected"))  # 3
        store.add_event(event("finished"))  # 4
        store.add_event(event("command"))  # 5
        with caplog.at_level(logging.WARNING, logger="radiod.node.store"):
            assert store.add_event(event("accepted"))["seq"] == 6
            assert store.add_event(event("accepted"))["seq"] == 7
        assert [seq for seq, _ in store.pending_events()] == [2, 4, 5, 6, 7]
        assert store.events_dropped() == 2
        assert "seq 1" in caplog.text and "seq 3" in caplog.text
    with Store(path, outbox_cap=3) as store:  # a smaller cap after a restart: info events go first...
        store.add_event(event("finished"))
        assert [seq for seq, _ in store.pending_events()] == [2, 4, 8]
        store.add_event(event("started"))  # ...and when only play reports are left, the oldest of them
        assert [seq for seq, _ in store.pending_events()] == [4, 8, 9]
        assert store.events_dropped() == 6


# --- a full disk -------------------------------------------------------------------------------------------------


def test_a_full_disk_raises_a_clear_store_error_and_the_store_stays_usable(path: Path) -> None:
    with Store(path, max_bytes=256 * 1024) as store:
        store.put_setting("volume", "0.8")
        added = 0
        with pytest.raises(StoreError, match="full") as caught:
            while True:
                store.add_event(event(pad="x" * 4000))
                added += 1
        assert not caught.value.corrupt  # quarantining would lose the outbox for nothing
        assert added > 10
        assert store.outbox_size() == added
        assert store.get_setting("volume") == "0.8"
        for seq, _ in store.pending_events(limit=5):
            store.ack_event(seq)
        assert store.add_event(event())["seq"] == added + 1  # the failed add consumed no seq
        assert store.integrity_check()


# --- commands and settings ---------------------------------------------------------------------------------------


def test_a_command_is_remembered_across_a_restart_and_forgotten_after_its_exp(path: Path) -> None:
    with Store(path) as store:
        assert store.remember_command("c1", NOW + 300)
        assert not store.remember_command("c1", NOW + 300)
    with Store(path) as store:
        assert not store.remember_command("c1", NOW + 300)
        store.purge_expired(NOW + 300)  # just expired: still refused as a replay within the clock-skew leeway
        assert not store.remember_command("c1", NOW + 300)
        store.purge_expired(NOW + 300 + COMMAND_KEEP_AFTER_EXP_S)
        assert store.remember_command("c1", NOW + 300)


def test_settings_persist_and_fall_back_to_the_default(path: Path) -> None:
    with Store(path) as store:
        assert store.get_setting("volume") is None
        assert store.get_setting("volume", "1.0") == "1.0"
        store.put_setting("volume", "0.5")
        store.put_setting("volume", "0.7")
    with Store(path) as store:
        assert store.get_setting("volume", "1.0") == "0.7"
