"""From bulletin text to a rendered programme: the speech pipeline and the renderer, set up from the config.

The daemon, ``radiod speak`` and the demo all make programmes the same way, so what a technician hears from
``radiod speak`` is what the village hears at 6:30. What a bulletin sounds like (its voice, volume, chime,
repeats, the exercise notice, streamed or whole) is decided here, in :meth:`ProgrammeMaker.for_bulletin`.
A programme rendered whole is kept when first played to its end and replayed from the programme cache
(:mod:`radiod.node.programme_cache`) when the same one is asked for again, as the daily bulletin is.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from radiod.audio.bed import BedProgramme, OnMissing
from radiod.audio.pcm import Pcm, read_wav
from radiod.audio.recording import recording_programme
from radiod.audio.render import Programme, RenderOptions, StreamingProgramme, render_programme, render_recalled
from radiod.config import Config
from radiod.errors import MediaError, VoiceError
from radiod.node.programme_cache import ProgrammeCache, programme_key
from radiod.node.programme_index import Link, ProgrammeLinks, ProgrammeRequest
from radiod.profiles import Profile, load_profile
from radiod.speech.speaker import Fallback, OnFallback, Speaker

if TYPE_CHECKING:  # the message classes pull in the JWS stack, which `radiod speak` never needs
    from radiod.node.media import MediaFetcher
    from radiod.protocol.messages import Bulletin

log = logging.getLogger(__name__)

EXERCISE_NOTICE = "Thông báo diễn tập. Đây là bản tin diễn tập, không phải tình huống thật."
"""Spoken before an exercise bulletin, so nobody takes a drill for the real thing."""


HOLD_CHARS = 12_000
"""Spoken text up to this many characters (about 13 minutes, 36 MB of clips) is synthesized in parallel and held
while it plays; a longer one (a bulletin of 20 000 digits reads for 80 minutes) is read back from the speech cache
clip by clip as it plays (:func:`render_recalled`), so memory stays bounded whatever the text (bench/memory.py)."""


@dataclass
class BulletinProgramme:
    """A bulletin's programme and what went wrong making it that the hub should hear.

    ``warnings`` belongs to this programme alone: a voice replaced by its fallback is added here, also while a
    streamed programme plays (a slow voice is abandoned mid-stream), never to another bulletin rendered beside it.
    """

    programme: Programme
    warnings: list[str] = field(default_factory=list)
    volume: float = 1.0
    """The level it was made at: a relay's live stream is levelled as it plays, at this volume."""


class ProgrammeMaker:
    """Holds the Speaker (with its cache), the finished-programme cache and the render settings of one node."""

    def __init__(
        self,
        config: Config,
        profile: Profile | None = None,
        *,
        hold_chars: int = HOLD_CHARS,
        media: MediaFetcher | None = None,
    ) -> None:
        self.config = config
        self.media = media
        """Where recordings come from (the daemon's); without it a bulletin with media cannot be made."""
        self.hold_chars = hold_chars
        self.profile = profile or load_profile(config.gpio.profile, Path(config.gpio.profiles_dir))
        self.speaker = Speaker(
            Path(config.speech.voices_dir),
            config.cache_dir,
            workers=config.speech.workers,
            timeout_s=config.speech.timeout_s,
            cache_max_mb=config.storage.cache_max_mb,
        )
        self.programmes = ProgrammeCache(self.speaker.cache) if self.speaker.cache is not None else None
        self.links = ProgrammeLinks(config) if self.programmes is not None else None
        self._chimes: tuple[Pcm, Pcm] | None = None
        if config.audio.chime_file:
            chime = read_wav(Path(config.audio.chime_file))
            self._chimes = (chime, chime)

    def for_bulletin(self, bulletin: Bulletin, *, node_volume: float) -> BulletinProgramme:
        """The programme of ``bulletin`` at the node's volume, with the warnings that belong to it.

        ``now`` and emergency bulletins are streamed: their first sentence plays while the rest is synthesized,
        instead of after minutes of silence with a neural voice. Scheduled ones are rendered whole, ahead of
        time. An exercise starts with :data:`EXERCISE_NOTICE`.
        """
        warnings: list[str] = []

        def on_fallback(fb: Fallback) -> None:
            warnings.append(f"voice {fb.voice} could not read it ({fb.reason}): read with {fb.fallback}")

        volume = node_volume * (bulletin.volume if bulletin.volume is not None else 1.0)
        if bulletin.media is not None:
            return BulletinProgramme(self._recording(bulletin, volume, on_fallback), warnings, volume)
        if not bulletin.text and bulletin.status != "exercise":  # a relay without a spoken introduction
            return BulletinProgramme(Programme(self.profile.audio.sample_rate, 0, [], -math.inf, 0.0), volume=volume)
        programme = self.make(
            bulletin.text,
            self.voice_for(bulletin),
            chime=bulletin.chime,
            repeat=bulletin.schedule.repeat,
            gap_s=bulletin.schedule.gap_s,
            volume=volume,
            preamble=EXERCISE_NOTICE if bulletin.status == "exercise" else None,
            stream=bulletin.schedule.now or bulletin.priority == "emergency",
            on_fallback=on_fallback,
        )
        if bulletin.bed is not None:
            programme = self._bedded(bulletin, programme, volume, warnings.append)
        return BulletinProgramme(programme, warnings, volume)

    def _bedded(self, bulletin: Bulletin, speech: Programme, volume: float, on_missing: OnMissing) -> Programme:
        """``speech`` with the bulletin's music bed under it, waited for at play time like a recording; a bed
        still missing then is ``on_missing``'s warning, and the speech plays alone."""
        bed, fetcher = bulletin.bed, self.media
        if bed is None or fetcher is None:
            raise MediaError(f"bulletin {bulletin.id}: a music bed needs the daemon's media cache")
        return BedProgramme(speech, lambda stop, until: fetcher.wait(bed, stop, until), volume, on_missing)

    def _recording(self, bulletin: Bulletin, volume: float, on_fallback: OnFallback) -> Programme:
        """A recorded bulletin's programme: its text (if any) read as the introduction, then the recording, which
        the programme waits for at play time (:meth:`Programme.ready`) if it is still being fetched."""
        media, fetcher = bulletin.media, self.media
        if media is None or fetcher is None:
            raise MediaError(f"bulletin {bulletin.id}: recordings need the daemon's media cache")
        voice = self.voice_for(bulletin)
        options = self._options(
            voice,
            chime=bulletin.chime,
            repeat=1,
            gap_s=bulletin.schedule.gap_s,
            volume=volume,
            preamble=EXERCISE_NOTICE if bulletin.status == "exercise" else None,
            on_fallback=on_fallback,
        )
        intro = tuple(self.speaker.speak(bulletin.text, voice, on_fallback=on_fallback)) if bulletin.text else ()
        return recording_programme(intro, lambda stop, until: fetcher.wait(media, stop, until), options)

    def voice_for(self, bulletin: Bulletin) -> str:
        """The bulletin's voice if this node has it, else the node's default (see :meth:`unknown_voice`)."""
        if bulletin.voice and self.unknown_voice(bulletin) is None:
            return bulletin.voice
        return self.config.speech.voice

    def unknown_voice(self, bulletin: Bulletin) -> str | None:
        """Why the bulletin is not read with the voice it names (the accepted event's warning), or None."""
        if not bulletin.voice:
            return None
        try:
            self.speaker.voice(bulletin.voice)
        except VoiceError:
            return f"unknown voice '{bulletin.voice}': read with {self.config.speech.voice}"
        return None

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
        progressive: bool = False,
        on_fallback: OnFallback | None = None,
    ) -> Programme:
        """Synthesize ``text`` (and an optional spoken ``preamble``) and render it at the board's rate.

        ``stream`` is for a bulletin that must start at once (``now``, emergency): it returns as soon as the
        synthesis has started, and the programme plays each sentence while the next ones are synthesized; a
        :class:`SynthesisError` then comes from the programme's ``blocks()``. Otherwise the whole speech is
        synthesized first: in parallel and held, up to ``hold_chars`` (:data:`HOLD_CHARS`) spoken characters;
        beyond, with a speech cache, into the cache one clip at a time and read back from it as the programme
        plays (:func:`render_recalled`), so a long bulletin is never held in memory whole. Either way a
        :class:`VoiceError` is raised here. ``progressive`` (``radiod speak -o``, which writes the programme as fast as
        it can): a text that would be held is rendered as its speech arrives (levelled on its opening, as a whole
        one is, so it comes out the same), while the rest is synthesized; a :class:`SynthesisError` then comes from
        ``blocks()``. ``on_fallback`` hears of each voice replaced by its fallback for this
        text, also later, while a streamed programme plays.
        """
        options = self._options(
            voice_id, chime=chime, repeat=repeat, gap_s=gap_s, volume=volume, preamble=preamble, on_fallback=on_fallback
        )
        if stream:
            return StreamingProgramme(lambda: self.speaker.stream(text, voice_id, on_fallback=on_fallback), options)
        request = ProgrammeRequest(text, voice_id, chime, repeat, gap_s, volume, preamble)
        key = self._programme_key(request, options)
        if key is not None and self.programmes is not None and (cached := self.programmes.get(key)) is not None:
            return cached
        fell_back: list[Fallback] = []

        def heard(fallback: Fallback) -> None:
            fell_back.append(fallback)
            if on_fallback is not None:
                on_fallback(fallback)

        held = self._held(text, voice_id)  # synthesized in parallel batches and held: fastest, the clips fit in memory
        if held and progressive and self.speaker.cache is not None:  # the repeats read the clips again from the cache
            programme: Programme = StreamingProgramme(
                lambda: self.speaker.speak_iter(text, voice_id, on_fallback=heard), options, probe=True
            )
        elif held:
            programme = render_programme(self.speaker.speak(text, voice_id, on_fallback=heard), options)
        else:
            speech = self.speaker.stream(text, voice_id, on_fallback=heard, keep_up=False)
            programme = render_recalled(speech, lambda: self.speaker.stream(text, voice_id, keep_up=False), options)
        if key is None or self.programmes is None or fell_back:  # read by another voice than the key says
            return programme
        return self.programmes.recording(programme, key, valid=lambda: not fell_back)

    def warm(self, text: str, voice_id: str) -> None:
        """Synthesize ``text`` into the speech cache ahead of its play (a neural voice reads at about real time on
        a Pi), holding its clips no more than :meth:`make` would: past ``hold_chars`` one clip at a time."""
        if self._held(text, voice_id):
            self.speaker.speak(text, voice_id)
        else:
            for _clip in self.speaker.stream(text, voice_id, keep_up=False):
                pass  # each clip is in the cache once it is yielded

    def _held(self, text: str, voice_id: str) -> bool:
        """Whether ``text`` is synthesized in parallel and held whole (see :data:`HOLD_CHARS`)."""
        return self.speaker.cache is None or sum(map(len, self.speaker.sentences(text, voice_id))) <= self.hold_chars

    def _programme_key(self, request: ProgrammeRequest, options: RenderOptions) -> str | None:
        """The programme cache's key of ``request`` rendered with ``options``, worked out from its sentences' keys;
        None when there is no cache, or the voice would be replaced by its fallback (then the programme is
        rendered, and not kept). The request is linked to it, so that ``radiod speak -o`` can replay the programme
        without working it out again (:mod:`radiod.node.programme_index`)."""
        if self.programmes is None or self.links is None:
            return None
        speech = self.speaker.sentence_keys(request.text, request.voice_id)
        if speech is None:
            return None
        key = programme_key(speech, options)
        voice = self.speaker.voice(request.voice_id)
        version = self.speaker.engine_version(voice)  # found by sentence_keys: no second run
        if version is not None and (link := self.links.key(request, voice)) is not None:
            try:
                self.links.put(link, Link(key, version))
            except OSError as exc:  # the programme is made all the same
                log.warning("programme cache: cannot link %s: %s", link, exc)
        return key

    def _options(
        self,
        voice_id: str,
        *,
        chime: bool,
        repeat: int,
        gap_s: float,
        volume: float,
        preamble: str | None,
        on_fallback: OnFallback | None,
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
            preamble=tuple(self.speaker.speak(preamble, voice_id, on_fallback=on_fallback)) if preamble else (),
        )
