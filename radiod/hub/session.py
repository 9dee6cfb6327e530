"""The hub's short MQTT sessions, for operator tools: publish and wait for the acks, read the retained messages,
follow live ones.

Each run connects with its own client id, ``radiod-op-<hint>-<random>``: readable in the broker log, never equal
to another run's or to a node's (``radiod-<h>-<node>``, see :mod:`radiod.node.mqtt_link`), so a tool can never
kick a node off the broker. The sessions are clean and synchronous: a broker that is unreachable, refuses the
connection or a message, or does not answer in time is a :class:`RadiodError` naming the broker.
"""

from __future__ import annotations

import contextlib
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from radiod.config import MqttConfig
from radiod.errors import RadiodError
from radiod.node.mqtt_link import Incoming, new_client


def operator_client_id(hint: str) -> str:
    """A client id for one run of an operator tool: readable in the broker log, never equal to another's."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", hint)[:32].strip("-") or "tool"
    return f"radiod-op-{safe}-{secrets.token_hex(4)}"


def _offline_reason(e: OSError) -> str:
    """'connection refused' from ConnectionRefusedError(111, 'Connection refused'), and the like."""
    text = e.strerror or str(e) or type(e).__name__
    return text[:1].lower() + text[1:]


@contextlib.contextmanager
def _operator_session(
    mqtt: MqttConfig,
    client: paho.Client,
    timeout: float,
    on_connected: Callable[[paho.Client], None] | None = None,
) -> Iterator[None]:
    """Connect ``client`` synchronously, wait for a successful CONNACK, and always disconnect afterwards.

    ``on_connected`` runs on the network thread after every successful connect, paho's reconnects included.
    """
    address = f"{mqtt.host}:{mqtt.port}"
    answered = threading.Event()
    outcome: list[ReasonCode] = []

    def on_connect(
        client: paho.Client, userdata: Any, flags: paho.ConnectFlags, code: ReasonCode, properties: Properties | None
    ) -> None:
        outcome.append(code)
        answered.set()
        if on_connected is not None and not code.is_failure:
            on_connected(client)

    client.on_connect = on_connect
    client.connect_timeout = timeout
    try:
        client.connect(mqtt.host, mqtt.port, keepalive=mqtt.keepalive_s, clean_start=True)
    except OSError as e:
        raise RadiodError(f"cannot reach broker {address}: {_offline_reason(e)}") from e
    client.loop_start()
    try:
        if not answered.wait(timeout):
            raise RadiodError(f"broker {address} did not answer the connection within {timeout:.0f} s")
        if outcome[0].is_failure:
            raise RadiodError(f"broker {address} refused the connection: {outcome[0]}")
        yield
    finally:
        client.disconnect()
        client.loop_stop()


def publish_once(
    mqtt: MqttConfig,
    client_id_hint: str,
    messages: list[tuple[str, bytes | str, bool]],
    timeout: float = 10.0,
) -> None:
    """Publish ``(topic, payload, retain)`` messages at QoS 1 and return once the broker acknowledged every one.

    Raises RadiodError naming the broker when it is unreachable, refuses the connection or a message, or does
    not acknowledge everything within ``timeout`` seconds.
    """
    address = f"{mqtt.host}:{mqtt.port}"
    client = new_client(mqtt, operator_client_id(client_id_hint))
    refused: dict[int, ReasonCode] = {}

    def on_publish(
        client: paho.Client, userdata: Any, mid: int, code: ReasonCode, properties: Properties | None
    ) -> None:
        if code.is_failure:
            refused[mid] = code

    client.on_publish = on_publish
    with _operator_session(mqtt, client, timeout):
        deadline = time.monotonic() + timeout
        infos = [client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in messages]
        for (topic, _payload, _retain), info in zip(messages, infos, strict=True):
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except RuntimeError as e:  # the connection dropped before paho could send it
                raise RadiodError(f"broker {address} dropped the connection while publishing {topic}: {e}") from e
        for (topic, _payload, _retain), info in zip(messages, infos, strict=True):
            if info.mid in refused:
                raise RadiodError(f"broker {address} refused the message on {topic}: {refused[info.mid]}")
        missing = [
            topic for (topic, _payload, _retain), info in zip(messages, infos, strict=True) if not info.is_published()
        ]
        if missing:
            raise RadiodError(
                f"broker {address} acknowledged {len(messages) - len(missing)} of {len(messages)} messages within "
                f"{timeout:.0f} s; not: {', '.join(missing)}"
            )


@contextlib.contextmanager
def _subscribed(
    mqtt: MqttConfig, client_id_hint: str, topic_filter: str, *, retained: bool, timeout: float
) -> Iterator[tuple[paho.Client, queue.Queue[Incoming]]]:
    """A session subscribed to ``topic_filter``, the broker's acknowledgement awaited: (client, the messages that
    arrive), only the retained ones if ``retained``, else only the live ones."""
    address = f"{mqtt.host}:{mqtt.port}"
    client = new_client(mqtt, operator_client_id(client_id_hint))
    received: queue.Queue[Incoming] = queue.Queue()
    subscribed = threading.Event()
    granted: list[ReasonCode] = []

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.retain == retained:
            received.put(Incoming(message.topic, bytes(message.payload), retained, time.time()))

    def on_subscribe(
        client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], properties: Properties | None
    ) -> None:
        granted.extend(codes)
        subscribed.set()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    with _operator_session(mqtt, client, timeout):
        client.subscribe(topic_filter, options=SubscribeOptions(qos=1))
        if not subscribed.wait(timeout):
            raise RadiodError(f"broker {address} did not acknowledge the subscription to {topic_filter}")
        if granted[0].is_failure:
            raise RadiodError(f"broker {address} refused the subscription to {topic_filter}: {granted[0]}")
        yield client, received


def collect_retained(
    mqtt: MqttConfig,
    client_id_hint: str,
    topic_filter: str,
    settle_s: float = 1.0,
    timeout: float = 10.0,
) -> list[Incoming]:
    """The retained messages under ``topic_filter``, in the order the broker sent them.

    MQTT has no "end of retained messages" marker, so collection ends when none arrived for ``settle_s``
    seconds after the subscription was acknowledged. Messages published live meanwhile are left out.
    """
    with _subscribed(mqtt, client_id_hint, topic_filter, retained=True, timeout=timeout) as (_client, received):
        messages: list[Incoming] = []
        with contextlib.suppress(queue.Empty):
            while True:
                messages.append(received.get(timeout=settle_s))
        return messages


def request(
    mqtt: MqttConfig,
    client_id_hint: str,
    messages: Sequence[tuple[str, bytes | str]],
    reply_filter: str,
    *,
    duration_s: float,
    timeout: float = 10.0,
) -> Iterator[Incoming]:
    """Publish ``(topic, payload)`` messages (QoS 1, not retained) and yield the live messages on ``reply_filter``
    for ``duration_s`` seconds, or until the caller stops iterating.

    The subscription is acknowledged before anything is published, so no answer can arrive unseen; retained
    messages on the filter are left out (they answer nothing that was just sent).
    """
    address = f"{mqtt.host}:{mqtt.port}"
    with _subscribed(mqtt, client_id_hint, reply_filter, retained=False, timeout=timeout) as (client, received):
        for topic, payload in messages:
            info = client.publish(topic, payload, qos=1)
            try:
                info.wait_for_publish(timeout)
            except RuntimeError as e:  # the connection dropped before paho could send it
                raise RadiodError(f"broker {address} dropped the connection while publishing {topic}: {e}") from e
            if not info.is_published():
                raise RadiodError(f"broker {address} did not acknowledge the message on {topic} within {timeout:.0f} s")
        end = time.monotonic() + duration_s
        while (left := end - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                yield received.get(timeout=min(left, 1.0))


def stream(
    mqtt: MqttConfig,
    client_id_hint: str,
    topic_filters: Sequence[str],
    duration_s: float | None = None,
    timeout: float = 10.0,
) -> Iterator[Incoming]:
    """Yield every message on ``topic_filters``: the retained ones first, then live ones as they come.

    Ends after ``duration_s`` seconds (None: never) or when the caller stops iterating, which disconnects. The
    subscriptions are renewed on every reconnect, so a hub reboot only pauses the stream.
    """
    client = new_client(mqtt, operator_client_id(client_id_hint))
    received: queue.Queue[Incoming] = queue.Queue()

    def subscribe(client: paho.Client) -> None:
        client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in topic_filters])

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        received.put(Incoming(message.topic, bytes(message.payload), bool(message.retain), time.time()))

    client.on_message = on_message
    end = None if duration_s is None else time.monotonic() + duration_s
    with _operator_session(mqtt, client, timeout, on_connected=subscribe):
        while end is None or time.monotonic() < end:
            wait = 1.0 if end is None else max(0.0, min(1.0, end - time.monotonic()))
            with contextlib.suppress(queue.Empty):
                yield received.get(timeout=wait)
