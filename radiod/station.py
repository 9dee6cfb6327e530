"""The node's sound hardware as one object: relays and audio output, opened once, always left switched off.

Both ``radiod speak`` and the daemon play through a Station, so the relay sequence and its timings are the
same everywhere; tests build one on gpiozero's MockFactory and a file sink.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from radiod.config import Config
from radiod.output import Output, open_output
from radiod.playback import Timeline, play
from radiod.profiles import Profile, load_profile
from radiod.relays import Relays
from radiod.render import Programme


class Station:
    def __init__(self, config: Config, profile: Profile | None = None, pin_factory: object | None = None) -> None:
        self.profile = profile or load_profile(config.gpio.profile, Path(config.gpio.profiles_dir))
        self.relays = Relays(self.profile, pin_factory)
        spec = self.profile.audio.device if config.audio.output == "default" else config.audio.output
        try:
            self.output: Output = open_output(spec, self.profile.audio.sample_rate)
        except BaseException:
            self.relays.close()
            raise

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
        """One play with the full relay sequence; see :func:`radiod.playback.play`."""
        return play(
            programme,
            self.relays,
            self.output,
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
            self.output.close()

    def __enter__(self) -> Station:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
