"""The closed sets of values protocol v1 names, each defined once (docs/protocol.md).

They are ``StrEnum``: a member is the very string that travels on the wire, so it compares equal to it, hashes
like it and serializes to it with ``json.dumps``; code may keep reading plain strings from JSON or the store
and compare them with these members.
"""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    """The three levels of Circular 39/2020, lowest first."""

    NORMAL = "normal"
    PRIORITY = "priority"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        """Queue order: 0 (emergency) plays first, normal last."""
        return len(Priority) - 1 - list(Priority).index(self)


class Status(StrEnum):
    """A bulletin's status: an exercise is played with a drill notice, a test is delivered but not played."""

    ACTUAL = "actual"
    EXERCISE = "exercise"
    TEST = "test"


class Action(StrEnum):
    """What a command asks of a node."""

    STOP = "stop"
    TEST = "test"
    VOLUME = "volume"
    REPORT = "report"


class EventType(StrEnum):
    """The ``type`` of an Event a node publishes."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    STARTED = "started"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    FAILED = "failed"
    COMMAND = "command"


class OccurrenceState(StrEnum):
    """What became of one occurrence of a bulletin: the play events, recorded in the node's store too."""

    STARTED = "started"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    FAILED = "failed"


class HealthStatus(StrEnum):
    """A health check's status and the report's (the worst of its checks), best first."""

    OK = "ok"
    WARN = "warn"
    CRIT = "crit"
