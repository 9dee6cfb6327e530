"""The node's sound hardware as one object: relays and audio output, opened once, always left switched off.

Both ``radiod speak`` and the daemon play through a Station, so the relay sequence and its timings are the
same everywhere; tests build one on gpiozero's MockFactory and a file sink.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from radiod.audio.output import Output, open_output
from radiod.audio.playback import Timeline, play
from radiod.audio.relays import Relays
from radiod.audio.render import Programme
from radiod.config import Config
from radiod.errors import AudioOutputError
from radiod.profiles import Profile, load_profile

log = logging.getLogger(__name__)


class Station:
    def __init__(self, config: Config, profile: Profile | None = None, pin_factory: object | None = None) -> None:
        self.profile = profile or load_profile(config.gpio.profile, Path(config.gpio.profiles_dir))
        self.relays = Relays(self.profile, pin_factory)
        self._spec = self.profile.audio.device if config.audio.output == "default" else config.audio.output
        self._output: Output | None = None
        try:
            self.output()
        except AudioOutputError as exc:  # a USB card unplugged at boot: start anyway, try again at each play
            log.error("%s; the node starts without it and tries again at each play", exc)

    def output(self) -> Output:
        """The audio output, opened on first use and again after it could not be opened."""
        if self._output is None:
            self._output = open_output(self._spec, self.profile.audio.sample_rate)
        return self._output

    @property
    def warmup_s(self) -> float:
        """How long before its first sample a play must begin (the amplifier's warm-up)."""
        return self.profile.amplifier.warmup_s

    def play(
        self,
        programme: Programme,
        name: str,
        *,
        start_at: float | None = None,
        stop: threading.Event | None = None,
        lines: Sequence[str] | None = None,
        on_started: Callable[..., None] | None = None,
    ) -> Timeline:
        """One play with the full relay sequence; see :func:`radiod.audio.playback.play`."""
        return play(
            programme,
            self.relays,
            self.output(),
            name=name,
            stop=stop or threading.Event(),
            start_at=start_at,
            lines=lines,
            on_started=on_started,
        )

    def close(self) -> None:
        """Relays off and released, output closed."""
        try:
            self.relays.close()
        finally:
            if self._output is not None:
                self._output.close()

    def __enter__(self) -> Station:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
