"""Start skew: ten nodes in one zone start one scheduled bulletin together. Prints figures; asserts nothing.

    .venv/bin/python bench/skew.py [--nodes N] [--rounds N] [--lead S]

Ten ``radiod run`` processes (distinct node ids and storage dirs, mock relays with the mock board's 0.5 s
warm-up, file output) on one private broker, all in zone ``bench``. Each round publishes one signed bulletin
with ``schedule.at`` ``--lead`` seconds ahead (a new ~200-character text each round, so every node renders it
cold), waits for every node's ``started`` event, then cancels it.

Skew = the spread (max - min) of the nodes' ``audio_start``; lateness = ``audio_start`` - the scheduled instant.
Cross-check from outside the nodes: a bench thread polls every node's WAV each ms and notes when it appears
(the file output creates it just before the first block) and when its first audio reaches the disk (one 20 ms
block later, see ``FileWatch``). All on one 2-core machine: ten processes compete for the CPU at the same
instant, which a village of separate Pis would not. Target: skew <= 10 ms.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from measure import HARNESS, FileWatch, machine, ratio

sys.path.insert(0, str(HARNESS))
from harness import Bench, Message, ProcessNode, corpus_texts

TARGET_SKEW_MS = 10.0


def spread_ms(values: list[float]) -> float:
    return (max(values) - min(values)) * 1000 if values else math.nan


def one_round(hub: Bench, nodes: list[ProcessNode], watch: FileWatch, text: str, bulletin_id: str,
              lead_s: float) -> dict:
    at = math.ceil(time.time() + lead_s)
    payload = hub.bulletin(text, bulletin_id=bulletin_id, at=[at])
    wavs = {n.id: n.out_dir / f"{bulletin_id}-r1.wav" for n in nodes}
    for path in wavs.values():
        watch.add(path)
    since = hub.events.mark()
    hub.events.publish([(hub.topic(payload), hub.signed(payload), True)])

    def is_started(m: Message) -> bool:
        return m.kind == "event" and m.data.get("type") == "started" and m.data.get("bulletin") == bulletin_id

    started = hub.wait(is_started, count=len(nodes), timeout=lead_s + 60, since=since)
    time.sleep(0.1)  # let every file output write its second block
    hub.cancel(payload)
    hub.wait(lambda m: m.kind == "event" and m.data.get("type") == "interrupted"
             and m.data.get("bulletin") == bulletin_id, count=len(nodes), timeout=30, since=since)
    files = {node: watch.get(path, timeout=1) for node, path in wavs.items()}
    return {
        "at": at,
        "audio_start": {m.node: m.time("audio_start") for m in started},
        "amp_on": {m.node: m.time("amp_on") for m in started},
        "created": [c for c, _ in files.values() if c is not None],
        "data": [d for _, d in files.values() if d is not None],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--lead", type=float, default=8.0, help="seconds between the post and schedule.at")
    args = parser.parse_args()
    texts = corpus_texts(200)[: args.rounds]

    print(machine())
    with Bench("skew") as hub:
        nodes = [hub.add_node(f"n{i:02d}", profile="mock", output="file") for i in range(1, args.nodes + 1)]
        spawned = time.time()
        for node in nodes:
            node.start()
        online = hub.wait_online(nodes, timeout=120)
        print(f"{args.nodes} radiod run processes online {max(online.values()) - spawned:.1f} s after the first "
              f"was spawned; profile mock (warm-up 0.5 s), file output, zone bench")
        watch = FileWatch()
        try:
            rounds = [one_round(hub, nodes, watch, t, f"skew-{i}", args.lead) for i, t in enumerate(texts)]
        finally:
            watch.close()

    print(f"\n{'round':>5} {'skew':>7} {'late med':>9} {'late max':>9} {'amp_on skew':>11} {'wav created':>11} "
          f"{'wav data':>9}  (ms; skew = spread of audio_start over {args.nodes} nodes)")
    skews = []
    for i, r in enumerate(rounds, 1):
        starts = list(r["audio_start"].values())
        late = [(s - r["at"]) * 1000 for s in starts]
        skews.append(spread_ms(starts))
        print(f"{i:>5} {skews[-1]:7.1f} {statistics.median(late):9.1f} {max(late):9.1f} "
              f"{spread_ms(list(r['amp_on'].values())):11.1f} {spread_ms(r['created']):11.1f} "
              f"{spread_ms(r['data']):9.1f}")
    print("  (late = audio_start - schedule.at; amp_on skew = spread of the amplifier switch-on; wav created / data ="
          "\n   spread of the WAV files' creation and first data on disk as a bench thread polling each ms saw them)")
    last = {n: (s - rounds[-1]["at"]) * 1000 for n, s in sorted(rounds[-1]["audio_start"].items())}
    print("  last round, per node: " + ", ".join(f"{n} {v:+.0f}" for n, v in last.items()))
    print(f"\nstart skew over {len(rounds)} rounds: median {statistics.median(skews):.1f} ms, "
          f"worst {max(skews):.1f} ms")
    print(f"  median {ratio(statistics.median(skews), TARGET_SKEW_MS, 'ms')}")
    print(f"  worst  {ratio(max(skews), TARGET_SKEW_MS, 'ms')}")


if __name__ == "__main__":
    main()
