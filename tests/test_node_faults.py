"""Node faults found when the node was attacked and run as a new operator would (issue 11, items 1, 3 and 10):
each test stands up the real parts (broker, daemon, store on a real file system) and checks what the hub or a
technician would see."""

from __future__ import annotations

import time
from collections.abc import Callable

from harness import SHORT, EventLog, Hub, ThreadNode

from radiod.clock import rfc3339


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
