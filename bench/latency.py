"""Emergency latency: from the hub's publish to the node's first audio sample. Prints figures; asserts nothing.

    .venv/bin/python bench/latency.py [--runs N] [--chars N] [--profile instant|mock]

One ``radiod run`` node process (mock relays, file output) on a private broker. Each run publishes one signed,
retained emergency bulletin (``schedule.now``) of about 300 characters for the node's zone, waits for its
``started`` event, then cancels it with a tombstone (so the next run need not wait out ~20 s of speech).

- cold: a new corpus text every run, never synthesized before (speech cache miss); the first run is also the
  first play of the process (2 s after it came online);
- warm: the same texts again under new bulletin ids (every sentence a cache hit).

Latency = ``audio_start`` of the node's ``started`` event (when the first sample left the output) minus the
instant the bench handed the PUBLISH to its already connected client, minus the profile's configured warm-up
(the ``instant`` profile, the default, has none). It is cross-checked by the file sink: a thread polling the
WAV every ms sees the first block land. The breakdown uses the ``accepted`` event's time stamp and the speech
module's own log line (synthesis time). Target: p95 <= 300 ms. Other jobs share this machine: read medians.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import time
from collections.abc import Callable

import yaml
from measure import HARNESS, FileWatch, machine, percentile, ratio, summary_ms

sys.path.insert(0, str(HARNESS))
from harness import Bench, Message, ProcessNode, corpus_texts

TARGET_P95_MS = 300.0
CANCEL_AFTER_S = 0.1
SETTLE_S = 2.0
NAN = float("nan")
RESOLUTION_S = 0.0025  # event times are truncated to the ms, the WAV is polled every ms
SPEECH_LOG = re.compile(r"radiod\.speech\.speaker: voice \S+: (\d+) sentences, (\d+) from cache, .*, ([\d.]+) s$", re.M)


def event(type_: str, bulletin_id: str) -> Callable[[Message], bool]:
    return lambda m: m.kind == "event" and m.data.get("type") == type_ and m.data.get("bulletin") == bulletin_id


def one_run(hub: Bench, node: ProcessNode, watch: FileWatch, text: str, bulletin_id: str,
            warmup_s: float) -> dict[str, float]:
    payload = hub.bulletin(text, bulletin_id=bulletin_id, priority="emergency")
    wav = node.out_dir / f"{bulletin_id}-r1.wav"
    watch.add(wav)
    token = hub.signed(payload)
    since = hub.events.mark()
    published = hub.events.publish([(hub.topic(payload), token, True)])
    started: Message = hub.wait(event("started", bulletin_id), timeout=60, since=since)[0]
    accepted: Message = hub.wait(event("accepted", bulletin_id), timeout=5, since=since)[0]
    time.sleep(CANCEL_AFTER_S)  # let the file output write its second block (see FileWatch)
    hub.cancel(payload)
    hub.wait(lambda m: m.kind == "event" and m.data.get("type") in {"interrupted", "finished"}
             and m.data.get("bulletin") == bulletin_id, timeout=30, since=since)
    created, data = watch.get(wav, timeout=2)
    audio_start = started.time("audio_start")
    amp_on = started.time("amp_on")
    return {
        "latency": audio_start - published - warmup_s,
        "accepted": accepted.time("ts") - published,
        "to_amp": amp_on - accepted.time("ts"),
        "warmup": audio_start - amp_on,
        "created": (created - audio_start) if created is not None else NAN,
        "data": (data - audio_start) if data is not None else NAN,
        "reported": started.received - published,
    }


def print_runs(title: str, runs: list[dict[str, float]], speech: list[tuple[int, int, float]]) -> None:
    print(f"\n{title}")
    print(f"  {'run':>3} {'total':>7} {'wav':>13} {'pub->acc':>8} {'acc->amp':>8} {'(speech)':>8} {'amp->audio':>10}"
          f" {'reported':>8}  sentences")
    for i, (run, (sentences, hits, speech_s)) in enumerate(zip(runs, speech, strict=True), 1):
        print(f"  {i:>3} {run['latency'] * 1000:7.1f} {run['created'] * 1000:+6.0f}/{run['data'] * 1000:+6.0f}"
              f" {run['accepted'] * 1000:8.1f}"
              f" {run['to_amp'] * 1000:8.1f} {speech_s * 1000:8.0f} {run['warmup'] * 1000:10.1f}"
              f" {run['reported'] * 1000:8.1f}  {sentences} ({hits} cached)")
    print("  (ms; total = publish -> audio_start - warm-up; wav = WAV created / first data on disk, relative to"
          "\n   audio_start; speech = the speech module's own timing, part of acc->amp; reported = publish -> the"
          "\n   started event at the hub)")


def verdict(label: str, values: list[float]) -> None:
    p95 = percentile(values, 95) * 1000
    print(f"  {label:<34} {summary_ms(values)}   p95 {ratio(p95, TARGET_P95_MS, 'ms')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--chars", type=int, default=300)
    parser.add_argument("--profile", choices=("instant", "mock"), default="instant")
    args = parser.parse_args()
    texts = corpus_texts(args.chars)[: args.runs]
    if len(texts) < args.runs:
        raise SystemExit(f"the corpus has only {len(texts)} distinct texts of {args.chars} characters")

    print(machine())
    with Bench("latency", verbose_nodes=True) as hub:
        warmup_s = float(yaml.safe_load((hub.profiles / f"{args.profile}.yaml").read_text())["amplifier"]["warmup_s"])
        node = hub.add_node("n01", profile=args.profile, output="file")
        node.start()
        hub.wait_online([node])
        time.sleep(SETTLE_S)  # past the start-up work that follows the connect (first health report, ...)
        watch = FileWatch()
        try:
            cold = [one_run(hub, node, watch, t, f"cold-{i}", warmup_s) for i, t in enumerate(texts)]
            warm = [one_run(hub, node, watch, t, f"warm-{i}", warmup_s) for i, t in enumerate(texts)]
        finally:
            watch.close()
        speech = [(int(a), int(b), float(c)) for a, b, c in SPEECH_LOG.findall(node.log_text())]

    print(f"{args.runs} emergency bulletins of {statistics.mean(len(t) for t in texts):.0f} characters "
          f"(mean), profile '{args.profile}' (warm-up {warmup_s:g} s, subtracted), node = radiod run process")
    if len(speech) != 2 * args.runs:
        print(f"(speech timings: found {len(speech)} log lines for {2 * args.runs} plays; breakdown omitted)")
        speech = [(0, 0, float("nan"))] * (2 * args.runs)
    print_runs("cold (a new text each run; run 1 is the first play since the daemon started):", cold,
               speech[: args.runs])
    print_runs("warm (the same texts again: speech cache hits):", warm, speech[args.runs :])

    print(f"\nlatency publish -> first audio sample, warm-up excluded (target p95 <= {TARGET_P95_MS:g} ms):")
    verdict("cold, all runs", [r["latency"] for r in cold])
    verdict("cold, without the first play", [r["latency"] for r in cold[1:]])
    verdict("warm", [r["latency"] for r in warm])
    seen = [r for r in cold + warm if not math.isnan(r["data"])]
    if seen:
        created = statistics.median(r["created"] for r in seen) * 1000
        data = statistics.median(r["data"] for r in seen) * 1000
        inside = sum(r["created"] <= RESOLUTION_S and r["data"] >= -RESOLUTION_S for r in seen)
        print(f"  file sink cross-check ({len(seen)} of {2 * args.runs} WAVs): created {created:+.1f} ms and first "
              f"data on disk {data:+.1f} ms from audio_start (medians);\n  audio_start lies between the "
              f"two (to 2.5 ms) in {inside} of {len(seen)} plays (the data comes one 20 ms block late: wave "
              "buffers the first block)")
    parts = {
        "publish -> accepted": [r["accepted"] for r in cold],
        "accepted -> amp on (cold)": [r["to_amp"] for r in cold],
        "accepted -> amp on (warm)": [r["to_amp"] for r in warm],
        "amp on -> audio_start": [r["warmup"] for r in cold + warm],
    }
    print("\nwhere the time goes:")
    for label, values in parts.items():
        print(f"  {label:<34} {summary_ms(values)}")
    cold_speech = [s for _, _, s in speech[: args.runs]]
    warm_speech = [s for _, _, s in speech[args.runs :]]
    print(f"  {'speech synthesis (cold)':<34} {summary_ms(cold_speech)}")
    print(f"  {'speech from cache (warm)':<34} {summary_ms(warm_speech)}")
    print("  (accepted -> amp on = speech + render_programme (loudness levelling) + queueing)")


if __name__ == "__main__":
    main()
