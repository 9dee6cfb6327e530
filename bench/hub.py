"""The hub service under a commune of 200 nodes: every event and health report stored, and the nodes page's time.

    .venv/bin/python bench/hub.py [--nodes N] [--events E] [--pages P]

A private Mosquitto and the real hub service (``radiod hub``: recorder and console, in this process). N simulated
nodes (default 200; 10 per MQTT connection, each on its own topics) publish their online state, a health report
and E events each (default 25: accepted, started, finished, ...) at QoS 1, --rate events per second in all
(default 1000: a whole commune's day of events in seconds). The broker has the hub's queue bound
(max_queued_messages 1000, hub/radiod.conf.template), so a recorder that cannot keep up loses events there. The
bench waits until the database holds every one of them, checks none is missing or doubled, and prints how long
storing took. Then it logs in to the console over HTTP and fetches the nodes page P times (default 30).
Target: the nodes page served in under 200 ms with 200 nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import json
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho
from measure import machine, percentile, ratio, summary_ms

from radiod.hub import accounts, recorder
from radiod.hub.config import HubServiceConfig, NodesConfig, WebConfig
from radiod.hub.localbroker import Broker
from radiod.hub.service import HubService
from radiod.protocol.outgoing import Check, Event, Health, State

PREFIX = "radio/bench"
NODES_PER_CONNECTION = 10
TARGET_PAGE_MS = 200.0
KINDS = ("accepted", "started", "finished", "accepted", "started", "interrupted")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def publish_commune(broker: Broker, nodes: list[str], events: int, rate: float) -> int:
    """Publish every node's state and health, then their events round by round (one per node per round) at
    ``rate`` events per second in all; returns the number of events sent."""
    sent = 0
    clients = []
    for i in range(0, len(nodes), NODES_PER_CONNECTION):
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-nodes-{i}")
        client.max_inflight_messages_set(100)
        client.connect(broker.host, broker.port)
        client.loop_start()
        clients.append((client, nodes[i:i + NODES_PER_CONNECTION]))
    infos = []
    now = time.strftime("%Y-%m-%dT%H:%M:%S+07:00")
    for client, group in clients:
        for node in group:
            state = State(online=True, since=now, version="bench")
            infos.append(client.publish(f"{PREFIX}/node/{node}/state", state.to_json(), qos=1, retain=True))
            health = Health(node=node, ts=now, status="ok", version="bench",
                            checks=(Check("clock", "ok", "synchronized"),))
            infos.append(client.publish(f"{PREFIX}/node/{node}/health", health.to_json(), qos=1, retain=True))
    start = time.monotonic()
    for seq in range(1, events + 1):
        for client, group in clients:
            for node in group:
                event = Event(type=KINDS[seq % len(KINDS)], node=node, ts=f"{now[:19]}.000+07:00", seq=seq,
                              bulletin=f"b-{seq // 3}", rev=1, duration_s=30.0)
                infos.append(client.publish(f"{PREFIX}/node/{node}/event", json.dumps(event.to_dict()), qos=1))
                sent += 1
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    for info in infos:
        info.wait_for_publish(60)
    for client, _ in clients:
        client.disconnect()
        client.loop_stop()
    return sent


def log_in(base: str, name: str, password: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = opener.open(f"{base}/login").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf
    data = urllib.parse.urlencode({"csrf": csrf[1], "name": name, "password": password}).encode()
    opener.open(f"{base}/login", data=data).read()
    return opener


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--events", type=int, default=25)
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second from all nodes together")
    args = parser.parse_args()
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="radiod-bench-hub-"))
    nodes = [f"n{i:03d}" for i in range(args.nodes)]
    conf = work / "conf.d"
    conf.mkdir()
    broker_port = free_port()
    # the hub's save policy and queue bound (hub/radiod.conf.template), not the test broker's save-on-every-change
    (conf / "radiod.conf").write_text(
        f"listener {broker_port} 127.0.0.1\nallow_anonymous true\nautosave_on_changes false\n"
        "autosave_interval 60\nmax_queued_messages 1000\n", encoding="utf-8")
    with Broker(work / "broker", include_dir=conf, port=broker_port) as broker:
        port = free_port()
        config = HubServiceConfig(mqtt=broker.mqtt_config(prefix=PREFIX), database=str(work / "hub.db"),
                                  cache_dir=str(work / "cache"), web=WebConfig(port=port),
                                  nodes=NodesConfig(expected=nodes))
        db = recorder.connect(config.database)
        accounts.add_user(db, "bench", "bench-password", "operator")
        service = HubService(config)
        thread = threading.Thread(target=asyncio.run, args=(service.serve(),), daemon=True)
        thread.start()
        while not (service.server.started and service.recorder.connected.is_set()):
            time.sleep(0.05)

        start = time.monotonic()
        sent = publish_commune(broker, nodes, args.events, args.rate)
        published = time.monotonic() - start
        stored, last_change = 0, time.monotonic()
        while stored < sent and time.monotonic() - last_change < 10:  # 10 s without a new event: the rest is lost
            time.sleep(0.1)
            if (count := recorder.count_events(db)) != stored:
                stored, last_change = count, time.monotonic()
        stored_s = last_change - start
        distinct = db.execute("SELECT count(DISTINCT node || '/' || seq) FROM events").fetchone()[0]
        reported = db.execute("SELECT count(*) FROM nodes WHERE health IS NOT NULL AND online=1").fetchone()[0]
        print(f"recorder: {args.nodes} nodes x {args.events} events = {sent} events published in {published:.1f} s,"
              f" stored in {stored_s:.1f} s ({stored / stored_s:.0f} events/s)")
        complete = stored == sent == distinct and reported == args.nodes
        print(f"  stored {stored} events ({distinct} distinct (node, seq)), {reported} of {args.nodes} nodes with"
              f" state and health: {'all stored' if complete else 'MISSING'}")
        if stored < sent:
            print(f"  {sent - stored} events lost: the broker's queue for the recorder overflowed"
                  " (max_queued_messages)")

        base = f"http://127.0.0.1:{port}"
        opener = log_in(base, "bench", "bench-password")
        times = []
        for _ in range(args.pages):
            t0 = time.perf_counter()
            page = opener.open(f"{base}/nodes").read().decode()
            times.append(time.perf_counter() - t0)
        rows = page.count("data-node=")
        print(f"nodes page ({rows} rows, {len(page) // 1024} KiB): {summary_ms(times)}")
        print(f"  p95 {ratio(percentile(times, 95) * 1000, TARGET_PAGE_MS, 'ms')}")
        service.stop()
        thread.join(timeout=30)
        db.close()
    return 0 if stored == sent else 1


if __name__ == "__main__":
    sys.exit(main())
