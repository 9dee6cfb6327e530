"""A node whose clock is wrong (two days behind, or 2001 before NTP) trusts the hub's signed times instead: an
emergency that expired by the hub's time is refused, a command signed for later is refused, and while the clock
is plainly wrong only `now` bulletins play, as health and the events say."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import PREFIX, SHORT, EventLog, Hub, ThreadNode

from radiod.clock import OFFSET_ENV, parse_rfc3339, rfc3339
from radiod.hub.operator import PostRequest
from radiod.hub.session import publish_once
from radiod.node.store import Store
from radiod.node.trusted_time import TrustedTime
from radiod.protocol.builders import command
from radiod.protocol.topics import bulletin_topic, command_topic

DAY = 86400


def publish(hub: Hub, topic: str, token: str) -> None:
    publish_once(hub.config().mqtt, "test", [(topic, token, topic.split("/")[2] == "bulletin")])


def health_checks(node: ThreadNode) -> dict[str, dict[str, str]]:
    report = node.daemon.on_main_loop(node.daemon.health_report).result(timeout=10)
    return {c["name"]: c for c in report["checks"]}


def test_clock_two_days_behind_refuses_what_the_hub_says_expired(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OFFSET_ENV, str(-2 * DAY))
    node = start_node()
    hub.post(SHORT, bulletin_id="today", chime=False)  # signed now: the node learns the real date from it
    events.wait("accepted", bulletin="today")

    operator = hub.operator()
    yesterday = time.time() - DAY
    stale = operator.bulletin(PostRequest(text=SHORT, bulletin_id="old-flood", priority="emergency",
                                          expires="1h"), now=yesterday - 3600)  # expired a day ago
    publish(hub, bulletin_topic(PREFIX, "all", "old-flood"), operator.sign(stale))
    rejected = events.wait("rejected", bulletin="old-flood")[0]
    assert rejected["reason"] == "expired", rejected

    later = int(time.time()) + 3600  # a stop signed for an hour from now: not meant for now
    token = operator.sign(command(id="stop-later", iat=later, exp=later + 60, action="stop"))
    publish(hub, command_topic(PREFIX, "all"), token)
    refused = events.wait("rejected", timeout=10, count=2)[-1]
    assert refused["reason"] == "schema" and refused["message"].startswith("iat:"), refused

    signed_time = health_checks(node)["signed_time"]
    assert signed_time["status"] == "crit" and "only `now` bulletins play" in signed_time["detail"]
    assert not events.of(type_="started", bulletin="old-flood")


def test_clock_at_2001_plays_only_now_bulletins_and_says_so(
    hub: Hub, events: EventLog, start_node: Callable[..., ThreadNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OFFSET_ENV, str(dt.datetime(2001, 1, 1, tzinfo=dt.UTC).timestamp() - time.time()))
    node = start_node()
    soon = rfc3339(time.time() + 2)
    hub.post(SHORT, bulletin_id="scheduled", at=(soon,))
    warning = events.wait("accepted", bulletin="scheduled")[0].get("warning", "")
    assert "before this radiod was built" in warning and "only `now` bulletins play" in warning, warning
    hub.post(SHORT, bulletin_id="urgent", priority="emergency")
    events.wait("finished", bulletin="urgent")
    time.sleep(max(0.0, parse_rfc3339(soon) + 1.0 - time.time()))  # past the scheduled time
    assert not events.of(type_="started", bulletin="scheduled")
    assert health_checks(node)["signed_time"]["status"] == "crit"


def test_the_newest_signed_time_survives_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "radiod.db")
    trusted = TrustedTime(store, wall_clock=lambda: 1_000.0, synchronized=lambda: False)
    now = time.time()
    trusted.saw(now)
    trusted.saw(now - 10)  # older: changes nothing
    store.close()
    again = TrustedTime(Store(tmp_path / "radiod.db"), wall_clock=lambda: 1_000.0, synchronized=lambda: False)
    assert again.newest_iat == now and again.now() == now
    assert again.too_far_ahead(now + 200) is None and again.too_far_ahead(now + 400)
    assert again.wrong() and "never set" in again.wrong()  # type: ignore[operator]


def test_a_synchronized_clock_is_believed_over_a_hub_clock_that_ran_ahead(tmp_path: Path) -> None:
    """A hub whose clock once ran a year ahead must not make the node refuse every bulletin for a year."""
    store = Store(tmp_path / "radiod.db")
    now = time.time()
    trusted = TrustedTime(store, wall_clock=lambda: now, synchronized=lambda: True)
    trusted.saw(now + 365 * DAY)
    assert trusted.now() == now and trusted.wrong() is None
