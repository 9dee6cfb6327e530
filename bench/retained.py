"""A node connecting to a hub that holds 1000 retained bulletins for its zone. Prints figures; asserts nothing.

    .venv/bin/python bench/retained.py [--count N]

The hub publishes ``--count`` (default 1000) signed, retained bulletins for zone ``bench``, each with one
``schedule.at`` in the future (one a minute from an hour ahead, so none is pre-rendered during the bench),
then one ``radiod run`` process with an empty store is started. The bench times, from the spawn:

- the node online (its retained state message);
- the node's ``accepted`` events: by their own time stamps (when the node stored each bulletin) and by when
  they reached the hub (the outbox publishes one event at a time, each after the previous PUBACK);
- the store count at the end (read-only SQLite), and that nothing was rejected.

Then the node is restarted on the same store, to time the reconnect of a node that already has them all
(every retained message is a duplicate: no events). Other jobs share this machine: read it as an order of
magnitude. There is no target in the issue beyond reporting the time; all N must be accepted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from measure import HARNESS, machine

sys.path.insert(0, str(HARNESS))
from harness import Bench, Message, ProcessNode

HOUR = 3600


def events_of(type_: str, node: ProcessNode) -> Callable[[Message], bool]:
    return lambda m: m.kind == "event" and m.node == node.id and m.data.get("type") == type_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    n = args.count

    print(machine())
    with Bench("retained") as hub:
        now = time.time()
        started = time.perf_counter()
        payloads = [hub.bulletin(f"Bản tin số {i}: lịch họp thôn tuần này.", bulletin_id=f"r-{i:04d}",
                                 at=[now + HOUR + 60 * i], now=now) for i in range(n)]
        messages = [(hub.topic(p), hub.signed(p), True) for p in payloads]
        signed = time.perf_counter()
        hub.events.publish(messages, timeout=120)
        published = time.perf_counter()
        size = sum(len(token) for _, token, _ in messages)
        print(f"hub: {n} bulletins signed in {signed - started:.2f} s, published retained and acknowledged in "
              f"{published - signed:.2f} s ({size / n:.0f} bytes each)")

        node = hub.add_node("n01", profile="mock", output="null")
        since = hub.events.mark()
        node.start()
        spawned = node.started
        online = hub.wait_online([node], since=since)[node.id]
        accepted = hub.wait(events_of("accepted", node), count=n, timeout=170, since=since)
        time.sleep(1.0)  # anything else (a rejection) that might follow
        rejected = [m for m in hub.events.messages[since:] if events_of("rejected", node)(m)]
        stored = node.store_count()

        by_node = sorted(m.time("ts") for m in accepted)
        by_hub = sorted(m.received for m in accepted)
        print("\nfirst start (empty store), seconds after the process was spawned:")
        print(f"  online (state message at the hub)      {online - spawned:7.2f}")
        print(f"  first bulletin accepted (event ts)     {by_node[0] - spawned:7.2f}")
        print(f"  {n:>4}th accepted (event ts)             {by_node[-1] - spawned:7.2f}   "
              f"= {by_node[-1] - by_node[0]:.2f} s for all, {(by_node[-1] - by_node[0]) / max(1, n - 1) * 1000:.2f} ms "
              f"per bulletin")
        print(f"  {n:>4}th accepted event at the hub       {by_hub[-1] - spawned:7.2f}   "
              f"(events trail the store by up to {max(h - t for h, t in zip(by_hub, by_node, strict=True)):.2f} s)")
        print(f"  store: {stored} bulletins, {len({m.data['bulletin'] for m in accepted})} distinct accepted, "
              f"{len(rejected)} rejected" + (f" ({rejected[0].data.get('reason')})" if rejected else ""))
        verdict = "all accepted and stored" if stored == n and not rejected else "MISSING OR REJECTED bulletins"
        print(f"  -> {verdict}")

        node.stop()
        since = hub.events.mark()
        node.start()
        online2 = hub.wait_online([node], since=since)[node.id]
        time.sleep(3.0)
        extra: list[Message] = [m for m in hub.events.messages[since:] if m.kind == "event" and m.node == node.id]
        print(f"\nrestart on the full store: online {online2 - node.started:.2f} s after spawn; {len(extra)} events "
              f"in the 3 s after (duplicates make none); store {node.store_count()} bulletins")


if __name__ == "__main__":
    main()
