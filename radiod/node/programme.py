"""From bulletin text to a rendered programme: the speech pipeline and the renderer, set up from the config.

The daemon, ``radiod speak`` and the demo all make programmes the same way, so what a technician hears from
``radiod speak`` is what the village hears at 6:30.
"""

from __future__ import annotations

from pathlib import Path

from radiod.audio.pcm import Pcm, read_wav
from radiod.audio.render import Programme, RenderOptions, StreamingProgramme, render_programme
from radiod.config import Config
from radiod.profiles import Profile, load_profile
from radiod.speech.speaker import Speaker


class ProgrammeMaker:
    """Holds the Speaker (with its cache) and the render settings of one node."""

    def __init__(self, config: Config, profile: Profile | None = None) -> None:
        self.config = config
        self.profile = profile or load_profile(config.gpio.profile, Path(config.gpio.profiles_dir))
        self.speaker = Speaker(
            Path(config.speech.voices_dir),
            config.cache_dir,
            workers=config.speech.workers,
            timeout_s=config.speech.timeout_s,
            cache_max_mb=config.storage.cache_max_mb,
        )
        self._chimes: tuple[Pcm, Pcm] | None = None
        if config.audio.chime_file:
            chime = read_wav(Path(config.audio.chime_file))
            self._chimes = (chime, chime)

    def make(
        self,
        text: str,
        voice_id: str,
        *,
        chime: bool = True,
        repeat: int = 1,
        gap_s: float = 3.0,
        volume: float = 1.0,
        preamble: str | None = None,
        stream: bool = False,
    ) -> Programme:
        """Synthesize ``text`` (and an optional spoken ``preamble``) and render it at the board's rate.

        ``stream`` is for a bulletin that must start at once (``now``, emergency): it returns as soon as the
        synthesis has started, and the programme plays each sentence while the next ones are synthesized; a
        :class:`SynthesisError` then comes from the programme's ``blocks()``. Otherwise the whole speech is
        synthesized first. Either way a :class:`VoiceError` is raised here.
        """
        options = self._options(voice_id, chime=chime, repeat=repeat, gap_s=gap_s, volume=volume, preamble=preamble)
        if stream:
            return StreamingProgramme(lambda: self.speaker.stream(text, voice_id), options)
        return render_programme(self.speaker.speak(text, voice_id), options)

    def _options(
        self, voice_id: str, *, chime: bool, repeat: int, gap_s: float, volume: float, preamble: str | None
    ) -> RenderOptions:
        """The node's render settings for one bulletin, with its preamble spoken."""
        return RenderOptions(
            rate=self.profile.audio.sample_rate,
            chime=chime and self.config.audio.chime,
            chimes=self._chimes,
            repeat=repeat,
            gap_s=gap_s,
            target_lufs=self.config.audio.loudness_lufs,
            volume=volume,
            preamble=tuple(self.speaker.speak(preamble, voice_id)) if preamble else (),
        )
