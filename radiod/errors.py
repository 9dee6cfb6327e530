"""One exception tree, rooted in :class:`RadiodError`, so callers can catch radiod's failures and nothing else.

Every message names what is wrong and where (a file and line, a config key, a message field), because the
person reading it is a technician on SSH or an operator at the hub, not the author of the code.
"""

from __future__ import annotations

from dataclasses import dataclass


class RadiodError(Exception):
    """The root of every error radiod raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a YAML file: where it is and what was expected."""

    file: str
    line: int | None  # 1-based; None when the key is missing altogether
    key: str  # dotted path, e.g. "mqtt.port"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(RadiodError):
    """A YAML file (config, firmware profile, voice, lexicon) is not valid; lists every problem at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ProfileError(ConfigError):
    """A firmware profile is missing or invalid."""


class VoiceError(RadiodError):
    """A voice is unknown, or its engine cannot run here."""


class SynthesisError(RadiodError):
    """The voice engine failed, timed out, or produced no usable audio."""


class AudioOutputError(RadiodError):
    """The audio output cannot be opened or failed while playing."""


class OutputNotReady(AudioOutputError):
    """The output could not be made ready for a play, so no relay moved: trying again a little later (a USB card
    back in its socket) switches nothing on over silence."""


class MediaError(RadiodError):
    """A recording or a live stream cannot be fetched, opened or decoded."""


class RelayError(RadiodError):
    """The relays cannot be driven (no GPIO, a pin in use, an invalid profile)."""


class Rejected(RadiodError):
    """An incoming message was refused; ``reason`` is a protocol v1 rejection code."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


class StoreError(RadiodError):
    """The node's SQLite store cannot be used: it names the file, and ``corrupt`` says what the daemon may do.

    A corrupt file (or one that is not SQLite at all) can be quarantined and rebuilt from the retained bulletins;
    a full disk, a permission problem or a file written by a newer radiod must NOT be quarantined, because that
    would throw away the unsent event outbox and the event sequence counter for nothing.
    """

    def __init__(self, message: str, *, path: str, corrupt: bool = False) -> None:
        self.path = path
        self.corrupt = corrupt
        super().__init__(message)
