"""The node's link to the commune hub's broker (paho-mqtt 2.x); the hub's own sessions are radiod.hub.session.

Threads. paho runs its own network thread (``loop_start``) and every callback below runs on it. A callback only
puts an :class:`Incoming` or a :class:`LinkEvent` on the inbox queue or sets a field: validating, storing and
scheduling happen on the daemon's main loop, so a slow disk or a bad message can never stall the network.
Subscribing and publishing the online state in ``on_connect`` only queue packets, and doing it there is what
makes every reconnect re-subscribe and re-announce the node.

Protocol. The link speaks MQTT 5 (Mosquitto has for years): the broker then *says* why it dropped us
("Session taken over", "Not authorized") and a PUBACK carries a reason code, so an ACL mistake on the hub shows
up as an error instead of silently lost events. Sessions are clean: everything the node must know after an
absence is in retained messages (protocol v1: bulletins are desired state), and a command sent while the node
was away has expired anyway.

Client ids. MQTT allows one connection per client id; a second client with the same id takes the session over
and the first is disconnected. A node's id is ``radiod-<h>-<node>`` where ``<h>`` is the first 8 hex digits of
SHA-256 of the topic prefix: the same node name may exist in two communes served by one district broker, but
never twice under one prefix. Two processes running with the same node config therefore kick each other off
every second; the link detects that (the broker's "Session taken over", or repeated drops right after connect)
and says so in ``last_error`` and the journal. Operator tools use ids of another form (radiod.hub.session), so
they can never kick a node off.

Delivery. Publishing is at least once (QoS 1). paho re-sends a message that was in flight when the connection
dropped, and the daemon re-sends its outbox after a reconnect, so the hub may see an event twice; the event's
``seq`` tells it so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from radiod.clock import rfc3339
from radiod.config import MqttConfig
from radiod.errors import RadiodError
from radiod.protocol.outgoing import State
from radiod.protocol.urgency import is_urgent

log = logging.getLogger(__name__)

FLAP_SESSION_S = 10.0
"""A connection dropped sooner than this after it came up counts as a flap."""
FLAP_COUNT = 3
"""This many flaps in a row mean someone else is using our client id (or the broker rejects us after connect)."""
STOP_ACK_TIMEOUT_S = 5.0
"""How long ``stop()`` waits for the broker to acknowledge the retained offline state."""
_MAX_TRACKED = 1024
"""Publications remembered for ``wait_published``; beyond this, acknowledged ones are forgotten."""
_FLAP_LOG_INTERVAL_S = 60.0
REFUSAL_MEMORY_S = 300.0
"""How long ``last_error`` reports the broker's refusal of a message (an ACL mistake on the hub)."""


def node_client_id(prefix: str, node_id: str) -> str:
    """The MQTT client id of node ``node_id`` under topic prefix ``prefix`` (see the module docstring)."""
    digest = hashlib.sha256(prefix.encode("utf-8")).hexdigest()[:8]
    return f"radiod-{digest}-{node_id}"


@dataclass(frozen=True)
class Incoming:
    """One message from the broker, as the main loop receives it.

    ``retained`` is True when the broker delivered it from its retained store on (re)subscribing, i.e. part of
    the desired state, and False for a message published while the node was listening. ``urgent`` is the
    network thread's unverified peek (an emergency, a tombstone, a stop command), for the order of the queue only.
    """

    topic: str
    payload: bytes
    retained: bool
    received: float  # time.time()
    urgent: bool = False  # goes ahead of the queue: radiod.protocol.urgency


@dataclass(frozen=True)
class LinkEvent:
    """The link came up or went down. Put on the inbox in order with the messages.

    "connected" precedes every message of that connection (in particular the retained bulletins), so on it the
    daemon starts reconciling its store and re-sends its outbox. ``reason`` says why a link went down.
    """

    kind: Literal["connected", "disconnected"]
    at: float  # time.time()
    reason: str | None = None


def new_client(mqtt: MqttConfig, client_id: str) -> paho.Client:
    """A paho client with credentials and TLS from the config; shared by the node link and the hub's sessions
    (:mod:`radiod.hub.session`)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    if mqtt.username is not None:
        client.username_pw_set(mqtt.username, mqtt.password)
    if mqtt.tls is not None:
        files = {"ca_file": mqtt.tls.ca_file, "cert_file": mqtt.tls.cert_file, "key_file": mqtt.tls.key_file}
        for key, path in files.items():
            if path is not None and not Path(path).is_file():
                raise RadiodError(f"mqtt.tls.{key}: {path}: no such file")
        try:
            client.tls_set(ca_certs=mqtt.tls.ca_file, certfile=mqtt.tls.cert_file, keyfile=mqtt.tls.key_file)
        except OSError as e:  # ssl.SSLError is an OSError: a file that is not a PEM certificate or key
            raise RadiodError(f"mqtt.tls: cannot load the CA or client certificate: {e}") from e
    # An exception escaping a callback would end paho's network thread and leave the node deaf for good; with
    # suppress_exceptions paho reports it through on_log instead and keeps the link running.
    client.suppress_exceptions = True
    client.on_log = _on_paho_log
    client.on_socket_open = _no_delay
    return client


def _no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Send each small MQTT packet at once: with Nagle's algorithm against the broker's delayed ACKs, every
    event waited up to ~40 ms for its PUBACK (bench/fuzz.py: 164 -> 446 messages/s with this)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_paho_log = logging.getLogger(f"{__name__}.paho")


def _on_paho_log(client: paho.Client, userdata: Any, level: int, buf: str) -> None:
    """paho's own messages: an exception caught in one of our callbacks is an error, the rest is debug detail.

    paho logs every failed reconnect attempt as an error ("Client is not connected"); the link's own warning
    already says that once, in words a technician can act on.
    """
    if buf.startswith("Caught exception"):
        _paho_log.error("%s", buf)
    else:
        _paho_log.debug("%s", buf)


def _in_flight(info: paho.MQTTMessageInfo) -> bool:
    """Neither acknowledged nor lost (paho marks a QoS 0 message lost with the connection with an error rc)."""
    return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not info.is_published()


class MqttLink:
    """The node's one connection to the broker: subscriptions, the online state and its Last Will, publishing.

    ``inbox`` receives :class:`Incoming` and :class:`LinkEvent` items; ``tz`` is the zone of the RFC 3339
    "since" times (default: the machine's). ``on_acked``, when set, is called with
    every mid the broker acknowledged, the link's own state messages included, so a caller matches it against
    the mids ``publish`` gave it. It runs on paho's network thread, so it must only enqueue or set a flag.
    """

    def __init__(
        self,
        mqtt: MqttConfig,
        node_id: str,
        *,
        subscriptions: Sequence[str],
        state_topic: str,
        version: str,
        inbox: queue.Queue[Incoming | LinkEvent],
        tz: dt.tzinfo | None = None,
    ) -> None:
        self.mqtt = mqtt
        self.node_id = node_id
        self.client_id = node_client_id(mqtt.prefix, node_id)
        self.subscriptions = tuple(subscriptions)
        self.state_topic = state_topic
        self.version = version
        self.inbox = inbox
        self.tz = tz or dt.datetime.now().astimezone().tzinfo  # "since" reads best in the commune's own time
        self.on_acked: Callable[[int], None] | None = None
        self.connected = False
        self.connected_since: float | None = None
        self.subscribed = False
        """The broker has answered this connection's subscriptions (one it refused is in ``last_error``): from now
        on a command, which is not retained, reaches the node. One sent between ``connected`` and this is lost,
        as for any clean session; a bulletin is retained, and comes with the subscription."""
        self._connection_error: str | None = None
        self._subscription_error: str | None = None
        self._refusal: tuple[float, str] | None = None  # (time.time(), message)
        self._stopping = False
        self._flaps = 0
        self._last_flap_log = 0.0
        self._lock = threading.Lock()
        self._pending: dict[int, paho.MQTTMessageInfo] = {}
        self._refused: set[int] = set()

        self._client = new_client(mqtt, self.client_id)
        # The broker publishes this when the node vanishes without a DISCONNECT (power cut, crash, lost network).
        self._client.will_set(state_topic, State(online=False).to_json(), qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=mqtt.reconnect_max_s)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish

    @property
    def address(self) -> str:
        return f"{self.mqtt.host}:{self.mqtt.port}"

    @property
    def last_error(self) -> str | None:
        """Why the link is down or was recently dropped, or what the broker refuses us; else None.

        A connection error is forgotten once a connection has held for ``FLAP_SESSION_S``, so a health check
        reading this sees a flapping link as failing even while it happens to be connected. A refused
        subscription lasts until the next connect; a refused message is reported for ``REFUSAL_MEMORY_S``, and
        as the outbox retries it, a lasting ACL mistake on the hub stays visible.
        """
        now = time.time()
        since = self.connected_since
        held = self.connected and since is not None and now - since >= FLAP_SESSION_S
        refusal = self._refusal
        recent_refusal = refusal[1] if refusal is not None and now - refusal[0] < REFUSAL_MEMORY_S else None
        return (None if held else self._connection_error) or self._subscription_error or recent_refusal

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; returns at once even when the broker is unreachable."""
        self._client.connect_async(self.mqtt.host, self.mqtt.port, keepalive=self.mqtt.keepalive_s, clean_start=True)
        self._client.loop_start()

    def stop(self, timeout: float = STOP_ACK_TIMEOUT_S) -> None:
        """Announce the node offline, disconnect and end the network thread.

        A clean DISCONNECT makes the broker discard the Last Will, so the retained offline state is published
        here and its PUBACK awaited (at most ``timeout`` s) before disconnecting.
        """
        self._stopping = True
        if self.connected:
            payload = self._state_payload(online=False, since=time.time())
            mid = self.publish(self.state_topic, payload, retain=True)
            if mid is None or not self.wait_published(mid, timeout):
                log.warning(
                    "the broker %s did not confirm this node's offline state within %.0f s; "
                    "%s may still show it online",
                    self.address,
                    timeout,
                    self.state_topic,
                )
        self._client.disconnect()
        self._client.loop_stop()
        self.connected = self.subscribed = False
        self.connected_since = None

    # -- publishing ----------------------------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False, qos: int = 1) -> int | None:
        """Send a message; returns its mid, or None when not connected (the caller keeps it and retries).

        The message is delivered once the broker acknowledged it: see ``wait_published`` and ``on_acked``.
        """
        if not self.connected:
            return None
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            # The connection dropped between the check above and now; paho re-sends it after the reconnect, and
            # so will the caller: a duplicate, which QoS 1 allows.
            return None
        with self._lock:
            if len(self._pending) >= _MAX_TRACKED:
                self._pending = {m: i for m, i in self._pending.items() if _in_flight(i)}
            self._pending[info.mid] = info
        return info.mid

    def wait_published(self, mid: int, timeout: float) -> bool:
        """True once the broker acknowledged message ``mid`` (PUBACK with success) within ``timeout`` seconds.

        False on timeout, when the broker refused it (see ``last_error``), or when ``mid`` is not a pending
        publication of this link (never returned by ``publish``, or confirmed before and already forgotten).
        """
        with self._lock:
            info = self._pending.get(mid)
        if info is None:
            return False
        try:
            info.wait_for_publish(timeout)
            if not info.is_published():
                return False
        except RuntimeError:  # paho's way to say a QoS 0 message was lost with the connection
            return False
        with self._lock:
            if self._pending.get(mid) is info:
                del self._pending[mid]
            return mid not in self._refused

    def _state_payload(self, *, online: bool, since: float) -> str:
        return State(online, rfc3339(since, self.tz, ms=False), self.version).to_json()

    # -- paho callbacks: network thread, enqueue or set only -------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._connection_failed(f"broker {self.address} refused the connection: {reason_code}")
            return
        now = time.time()
        self.connected = True
        self.connected_since = now
        self.subscribed = not self.subscriptions
        if self.subscriptions:
            client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in self.subscriptions])
        client.publish(self.state_topic, self._state_payload(online=True, since=now), qos=1, retain=True)
        # Last, so that the online state goes out before anything the main loop sends once it sees this.
        self.inbox.put(LinkEvent("connected", now))
        log.info("connected to %s as %s", self.address, self.client_id)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        # paho does not pass on the OSError; these are the causes it can be.
        self._connection_failed(
            f"cannot connect to broker {self.address} (broker down, network unreachable, or TLS handshake failed)"
        )

    def _connection_failed(self, message: str) -> None:
        """Record why connecting failed; logged once per distinct reason, as paho retries with backoff."""
        if message != self._connection_error:
            log.warning("%s; retrying every %d s at most", message, self.mqtt.reconnect_max_s)
        self._connection_error = message

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self.connected
        since = self.connected_since
        now = time.time()
        self.connected = self.subscribed = False
        self.connected_since = None
        if not was_connected:
            return  # a refused CONNACK: _on_connect recorded why
        if self._stopping:
            self.inbox.put(LinkEvent("disconnected", now, "stopped"))
            return
        if flags.is_disconnect_packet_from_server:
            reason = f"broker {self.address} closed the connection: {reason_code}"
        elif reason_code == "Unspecified error":  # paho's code for a socket that simply closed
            reason = f"connection to broker {self.address} lost"
        else:
            reason = f"connection to broker {self.address} lost: {reason_code}"
        lasted = now - since if since is not None else 0.0
        self._flaps = self._flaps + 1 if lasted < FLAP_SESSION_S else 0
        taken_over = reason_code == "Session taken over"  # MQTT 5 brokers that say so; Mosquitto 2.0 just closes
        if taken_over or self._flaps >= FLAP_COUNT:
            evidence = "" if taken_over else f", {self._flaps} times in a row within {FLAP_SESSION_S:.0f} s"
            reason = (
                f"{reason}{evidence}: probably another client is using this node's client id {self.client_id}; "
                f"is a second radiod running with node.id {self.node_id} (a copied config or SD card)?"
            )
            level = logging.ERROR if now - self._last_flap_log >= _FLAP_LOG_INTERVAL_S else logging.DEBUG
            if level == logging.ERROR:
                self._last_flap_log = now
            log.log(level, "%s", reason)
        else:
            log.warning("%s; reconnecting", reason)
        self._connection_error = reason
        self.inbox.put(LinkEvent("disconnected", now, reason))

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [
            f"{topic}: {code}" for topic, code in zip(self.subscriptions, reason_codes, strict=True) if code.is_failure
        ]
        self._subscription_error = None
        self.subscribed = True
        if refused:
            self._subscription_error = f"broker {self.address} refused subscriptions ({'; '.join(refused)})"
            log.error("%s: this node will not receive those messages", self._subscription_error)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        payload = bytes(message.payload)
        urgent = is_urgent(message.topic, payload, self.mqtt.prefix)
        self.inbox.put(Incoming(message.topic, payload, bool(message.retain), time.time(), urgent))

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            if reason_code.is_failure:
                self._refused.add(mid)
            else:
                self._refused.discard(mid)
        if reason_code.is_failure:
            message = f"broker {self.address} refused a message (mid {mid}): {reason_code}"
            self._refusal = (time.time(), message)
            log.error("%s", message)
            return
        if self.on_acked is not None:
            self.on_acked(mid)
