"""Which incoming messages go ahead of the node's queue: emergencies, tombstones and ``stop`` commands.

The priority of a bulletin is inside its signed payload, and verifying a signature, parsing and storing take the
node's main loop about as long per message as a backlog of a thousand retained bulletins can afford. So paho's
network thread classifies each message as it arrives by a *peek*: the JWS payload segment decoded without
verifying it. The peek only orders the queue; every message is then verified and validated in full
(:func:`radiod.protocol.messages.parse_message`), and a forged "emergency" is refused there like any other. A
message the peek cannot read is simply not urgent.
"""

from __future__ import annotations

import base64
import binascii
import json

from radiod.protocol.enums import Action, Priority
from radiod.protocol.messages import MAX_PAYLOAD_BYTES
from radiod.protocol.topics import parse_hub_topic


def is_urgent(topic: str, payload: bytes, prefix: str) -> bool:
    """True for an emergency bulletin, a tombstone (it may cancel a playing emergency) or a ``stop`` command."""
    parsed = parse_hub_topic(topic, prefix)
    if parsed is None or len(payload) > MAX_PAYLOAD_BYTES:
        return False
    obj = _peek(payload)
    if obj is None:
        return False
    if parsed.kind == "command":
        return obj.get("action") == Action.STOP
    return obj.get("priority") == Priority.EMERGENCY or obj.get("cancelled") is True


def _peek(payload: bytes) -> dict[str, object] | None:
    """The payload's JSON object, unverified: from a compact JWS's middle segment, or unsigned JSON as it is."""
    if payload.lstrip()[:1] == b"{":
        data = payload
    else:
        parts = payload.split(b".")
        if len(parts) != 3:
            return None
        try:
            data = base64.urlsafe_b64decode(parts[1] + b"=" * (-len(parts[1]) % 4))
        except (binascii.Error, ValueError):
            return None
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return obj if isinstance(obj, dict) else None
