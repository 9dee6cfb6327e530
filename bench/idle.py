"""An idle node: memory and CPU of a ``radiod run`` process connected to a broker, no bulletins. Prints figures.

    .venv/bin/python bench/idle.py [--seconds S] [--settle S]

One node process (mock relays, null output) on a private broker. After it is online and ``--settle`` seconds
have passed (start-up imports, the first health report), VmRSS is read from /proc/<pid>/status every second
for ``--seconds`` (default 30) and the CPU time from utime + stime in /proc/<pid>/stat at both ends.
Targets: RSS <= 60 MB, CPU <= 1 % (of one core). The same is then measured for ``--after`` seconds once the
node has played one short emergency bulletin (numpy buffers, the lexicon, the chimes are then resident).

Then, to say where the memory goes, a fresh interpreter imports what the daemon imports, one package at a time,
and prints the RSS after each.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from measure import HARNESS, cpu_seconds, kb_to_mb, machine, proc_status, ratio

sys.path.insert(0, str(HARNESS))
from harness import Bench

TARGET_RSS_MB = 60.0
TARGET_CPU_PCT = 1.0
PLAYED_TEXT = "Thông báo: chiều nay bốn giờ họp thôn tại nhà văn hóa. Đề nghị bà con đến đúng giờ."

IMPORT_STEPS = [  # (label, import statement, the steps that leaving this package out also drops)
    ("python alone", "", ()),
    ("yaml, sqlite3, zoneinfo", "import yaml, sqlite3, zoneinfo", (1,)),
    ("paho-mqtt", "import paho.mqtt.client", (2,)),
    ("apscheduler", "from apscheduler.schedulers.background import BackgroundScheduler", (3,)),
    ("cryptography (Ed25519)", "import cryptography.hazmat.primitives.asymmetric.ed25519", (4, 5)),
    ("joserfc (needs cryptography)", "import joserfc.jws, joserfc.jwk", (5,)),
    ("numpy", "import numpy", (6,)),
    ("gpiozero (mock pins)", "import gpiozero, gpiozero.pins.mock", (7,)),
    ("radiod.node.daemon (all of radiod)", "import radiod.node.daemon", ()),
]
MEASURE = """
import sys
for stmt in sys.argv[1:]:
    exec(stmt)
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        print(int(line.split()[1]) / 1024)
"""


def rss_after(statements: list[str]) -> float:
    """VmRSS (MB) of a fresh interpreter after running ``statements``."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *statements], capture_output=True, text=True, check=True)
    return float(out.stdout)


def import_costs() -> list[tuple[str, float, float]]:
    """(label, RSS after this and every earlier step, RSS saved by leaving out only this package)."""
    statements = [statement for _, statement, _ in IMPORT_STEPS]
    third_party = range(1, len(IMPORT_STEPS) - 1)
    everything = rss_after([statements[i] for i in third_party])
    out = []
    for i, (label, _, drops) in enumerate(IMPORT_STEPS):
        cumulative = rss_after(statements[: i + 1])
        saved = everything - rss_after([statements[j] for j in third_party if j not in drops]) if drops else 0.0
        out.append((label, cumulative, saved))
    return out


def s_(sample: dict) -> str:
    return f"{sample['wall']:.1f} s ({len(sample['rss'])} samples)"


def sample(hub: Bench, pid: int, seconds: float) -> dict:
    """VmRSS every second for ``seconds``, CPU time over the whole window, /proc status at the end."""
    rss: list[float] = []
    wall0, cpu0 = time.monotonic(), cpu_seconds(pid)
    while time.monotonic() - wall0 < seconds:
        hub.check_alive()
        rss.append(kb_to_mb(proc_status(pid)["VmRSS"]))
        time.sleep(1.0)
    wall, cpu = time.monotonic() - wall0, cpu_seconds(pid) - cpu0
    children = [c for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    return {"rss": rss, "wall": wall, "cpu": cpu, "status": proc_status(pid), "children": len(children)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--after", type=float, default=15.0, help="seconds measured after the play")
    args = parser.parse_args()

    print(machine())
    with Bench("idle") as hub:
        node = hub.add_node("n01", profile="mock", output="null")
        node.start()
        online = hub.wait_online([node])[node.id]
        print(f"radiod run online {online - node.started:.2f} s after spawn; settling {args.settle:g} s")
        time.sleep(args.settle)
        fresh = sample(hub, node.pid, args.seconds)
        # The same node after it has played one short bulletin: what a node that has worked looks like at rest.
        payload = hub.bulletin(PLAYED_TEXT, bulletin_id="idle-1", priority="emergency", chime=False)
        since = hub.events.mark()
        hub.events.publish([(hub.topic(payload), hub.signed(payload), True)])
        hub.wait(lambda m: m.kind == "event" and m.data.get("type") == "finished", timeout=60, since=since)
        time.sleep(args.settle)
        played = sample(hub, node.pid, args.after)
        pid = node.pid

    for title, s in ((f"idle node, fresh (online, no bulletin ever), over {s_(fresh)}", fresh),
                     (f"idle node after one play of a short bulletin, over {s_(played)}", played)):
        rss, status = s["rss"], s["status"]
        cpu_pct = 100 * s["cpu"] / s["wall"]
        print(f"\n{title}; pid {pid}, {status['Threads']} threads, {s['children']} child processes")
        print(f"  VmRSS   median {statistics.median(rss):.1f} MB, max {max(rss):.1f} MB"
              f"   ({ratio(max(rss), TARGET_RSS_MB, 'MB')})")
        print(f"  VmHWM   {kb_to_mb(status['VmHWM']):.1f} MB (peak since start)")
        print(f"  RssAnon {kb_to_mb(status['RssAnon']):.1f} MB, RssFile {kb_to_mb(status['RssFile']):.1f} MB "
              f"(shared libraries and mapped files)")
        print(f"  CPU     {s['cpu']:.2f} s in {s['wall']:.1f} s = {cpu_pct:.2f} % of one core   "
              f"({ratio(cpu_pct, TARGET_CPU_PCT, '%')})")

    print("\nwhere the RSS comes from (fresh interpreters): imports in this order, cumulative; and what leaving out"
          "\nonly that package saves with all the others loaded (shared libraries are counted once)")
    previous = 0.0
    for label, mb, saved in import_costs():
        alone = f"saves {saved:4.1f} MB" if saved else ""
        print(f"  + {label:<30} {mb:6.1f} MB  (+{mb - previous:4.1f})  {alone}".rstrip())
        previous = mb


if __name__ == "__main__":
    main()
