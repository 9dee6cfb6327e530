"""An emergency behind a backlog: 1000 retained bulletins at connect, and a 1000 msg/s flood. Prints figures.

    .venv/bin/python bench/backlog.py [--count N] [--rate R] [--runs K]

Both cases use one ``radiod run`` process (``instant`` profile: no amplifier warm-up, null output) and short
emergency bulletins (``schedule.now``, ~60 characters, chimes on) for the node's zone. Target (issue 11 item 7):
at most 500 ms to audio in both cases.

- at connect: the hub holds ``--count`` (default 1000) signed, retained normal bulletins for the zone (each one
  ``schedule.at`` an hour or more ahead) and, published last, one retained emergency. A node with an empty store
  is started; latency = the emergency's ``audio_start`` minus the hub hearing the node online (its connect).
  Each run uses a fresh node (an empty store: every retained bulletin is new to it).
- under a flood: a running node receives ``--rate`` (default 1000) new signed normal bulletins per second for
  6 s; 3 s in, the hub publishes an emergency; latency = its ``audio_start`` minus the publish. The node's
  queue grows when it stores fewer than ``--rate`` a second, and the emergency arrives behind what it holds.

The figures also say how far the node was through the backlog when the emergency started (``accepted``
events stamped before its ``audio_start``): an emergency that waits for the backlog has all of them before it.
Other jobs share this machine: read it as an order of magnitude.

Measured (2 shared cores, load average 3.3, 3 runs each): before the urgent lane, 8184 ms at connect (the
emergency after all 1000) and 14 591 ms under the flood; after, 206-373 ms at connect (0 of the 1000 handled
before it) and 49-52 ms under the flood. The node stores about 200 bulletins a second here, so a flood of 1000/s
outlives each run: the later runs' emergencies arrive behind the earlier runs' unparsed flood, and still go first.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable

from measure import HARNESS, machine, ratio

sys.path.insert(0, str(HARNESS))
from harness import Bench, Message, ProcessNode

TARGET_MS = 500.0
HOUR = 3600
FLOOD_S = 6.0
EMERGENCY_AFTER_S = 3.0
EMERGENCY = "Khẩn cấp: nước lũ lên nhanh, bà con di chuyển ngay lên chỗ cao."


def event(type_: str, bulletin_id: str | None = None) -> Callable[[Message], bool]:
    return lambda m: (m.kind == "event" and m.data.get("type") == type_
                      and (bulletin_id is None or m.data.get("bulletin") == bulletin_id))


def accepted_before(hub: Bench, node: ProcessNode, since: int, prefix: str, instant: float) -> int:
    """How many bulletins with ids from ``prefix`` this node had accepted (by the event's own time stamp)
    before ``instant``."""
    return sum(1 for m in hub.events.messages[since:] if m.node == node.id and event("accepted")(m)
               and m.data["bulletin"].startswith(prefix) and m.time("ts") < instant)


def at_connect(hub: Bench, run: int, count: int) -> tuple[float, int]:
    """(latency s, bulletins accepted before the emergency's audio) for one fresh node at connect."""
    now = time.time()
    payloads = [hub.bulletin(f"Bản tin số {i}: lịch họp thôn tuần này.", bulletin_id=f"b-{run}-{i:04d}",
                             at=[now + HOUR + 60 * i], now=now) for i in range(count)]
    emergency = hub.bulletin(EMERGENCY, bulletin_id=f"e-connect-{run}", priority="emergency", now=now)
    hub.events.publish([(hub.topic(p), hub.signed(p), True) for p in [*payloads, emergency]], timeout=120)
    node = hub.add_node(f"c{run}", profile="instant", output="null")
    since = hub.events.mark()
    node.start()
    online = hub.wait_online([node], since=since)[node.id]
    started = hub.wait(event("started", emergency["id"]), timeout=120, since=since)[0]
    audio = started.time("audio_start")
    accepted = hub.wait(event("accepted", emergency["id"]), timeout=60, since=since)[0].time("ts")
    hub.wait(event("finished", emergency["id"]), timeout=60, since=since)
    before = accepted_before(hub, node, since, f"b-{run}-", audio)
    print(f"         (online -> emergency accepted {(accepted - online) * 1000:.0f} ms, accepted -> audio "
          f"{(audio - accepted) * 1000:.0f} ms)")
    node.stop()
    # the next run's node must not find this run's bulletins: clear them (an empty retained message)
    hub.events.publish([(hub.topic(p), "", True) for p in [*payloads, emergency]], timeout=120)
    return audio - online, before


def under_flood(hub: Bench, node: ProcessNode, run: int, rate: int) -> tuple[float, int, int]:
    """(latency s, accepted before the emergency's audio, flood messages published before it)."""
    now = time.time()
    total = int(rate * FLOOD_S)
    flood = [hub.bulletin("Thông báo lịch tiêm chủng tại trạm y tế xã.", bulletin_id=f"b-f{run}-{i:05d}",
                          at=[now + HOUR + i], now=now) for i in range(total)]
    tokens = [(hub.topic(p), hub.signed(p), False) for p in flood]
    emergency = hub.bulletin(EMERGENCY, bulletin_id=f"e-flood-{run}", priority="emergency")
    since = hub.events.mark()
    sent = [0]

    def pour() -> None:
        step = 0.05
        batch = max(1, int(rate * step))
        start = time.monotonic()
        for i in range(0, total, batch):
            hub.events.publish(tokens[i:i + batch], timeout=60)
            sent[0] = i + batch
            time.sleep(max(0.0, start + (i + batch) / rate - time.monotonic()))

    pourer = threading.Thread(target=pour, name="flood")
    pourer.start()
    time.sleep(EMERGENCY_AFTER_S)
    flooded = sent[0]
    published = hub.events.publish([(hub.topic(emergency), hub.signed(emergency), False)])
    started = hub.wait(event("started", emergency["id"]), timeout=180, since=since)[0]
    audio = started.time("audio_start")
    pourer.join()
    hub.wait(event("finished", emergency["id"]), timeout=60, since=since)
    return audio - published, accepted_before(hub, node, since, f"b-f{run}-", audio), flooded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="retained bulletins at connect")
    parser.add_argument("--rate", type=int, default=1000, help="flood messages per second")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    print(machine())
    with Bench("backlog") as hub:
        print(f"\nat connect: {args.count} retained normal bulletins, then a retained emergency; a fresh node "
              "starts (latency = the node online at the hub -> the emergency's audio_start)")
        connect = []
        for run in range(args.runs):
            latency, before = at_connect(hub, run, args.count)
            connect.append(latency)
            print(f"  run {run + 1}: {latency * 1000:7.0f} ms to audio; {before:>5} of {args.count} bulletins "
                  "accepted before it")

        node = hub.add_node("n01", profile="instant", output="null")
        node.start()
        hub.wait_online([node])
        time.sleep(2.0)  # past the start-up work (first health report)
        print(f"\nunder a flood: {args.rate} new normal bulletins/s for {FLOOD_S:g} s, an emergency "
              f"{EMERGENCY_AFTER_S:g} s in (latency = publish -> audio_start)")
        flooded = []
        for run in range(args.runs):
            latency, before, sent = under_flood(hub, node, run, args.rate)
            flooded.append(latency)
            print(f"  run {run + 1}: {latency * 1000:7.0f} ms to audio; {before:>5} of the {sent} flood "
                  "bulletins sent before it were accepted before it")
            time.sleep(2.0)

    print(f"\ntarget: at most {TARGET_MS:g} ms to audio (worst of {args.runs} runs)")
    print(f"  at connect      {ratio(max(connect) * 1000, TARGET_MS, 'ms')}")
    print(f"  under a flood   {ratio(max(flooded) * 1000, TARGET_MS, 'ms')}")


if __name__ == "__main__":
    main()
