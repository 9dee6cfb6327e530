"""The layout of a programme: what plays when, in output samples, before any sample is computed.

One repeat is (:func:`layout`): opening chime, a short pause, the preamble, the speech, a pause, the closing
chime. Each repeat carries both chimes, so a listener who comes into earshot during a repeat still hears where
the announcement starts and ends; repeats are separated by ``gap_s`` of silence. The plan is a list of
:class:`Step`; a :class:`Timeline` turns it into :class:`Part` s at their places. The whole programme lays out
the plan at once, the streaming one step by step as its speech arrives: one plan for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from radiod.audio.limiter import limit
from radiod.audio.pcm import Pcm
from radiod.audio.resample import n_out, resample

CHIME_PAUSE_S = 0.4  # between a chime and the speech


@dataclass(frozen=True)
class Span:
    """Where one part lies in the programme, in output samples: for logs and for checking the result."""

    kind: str  # "chime", "preamble" or "speech" (silence has no span)
    start: int
    stop: int


@dataclass(frozen=True, eq=False)
class LazyClip:
    """A clip not held in memory: its length and rate, and how to fetch it when a play reaches its part.

    An 80-minute bulletin is 200 MB of int16 speech: a programme holds only the clips about to play and fetches
    the others (from the speech cache, or synthesized again) when a repeat or a replay reaches them.
    """

    n_samples: int
    rate: int
    fetch: Callable[[], Pcm]

    def load(self) -> Pcm:
        """The clip, exactly ``n_samples`` long: one read again by another voice (a fallback) is cut or padded
        with silence to the place laid out for it."""
        clip = self.fetch()
        samples = clip.samples
        if clip.rate != self.rate and len(samples):  # read again by a voice at another rate
            samples = resample(samples, clip.rate, self.rate)
        samples = samples[: self.n_samples]
        if len(samples) < self.n_samples:
            samples = np.concatenate([samples, np.zeros(self.n_samples - len(samples), dtype=samples.dtype)])
        return Pcm(samples, self.rate)


def clip_size(clip: Pcm | LazyClip) -> int:
    """Samples in ``clip``, at its own rate, without fetching it."""
    return clip.n_samples if isinstance(clip, LazyClip) else len(clip.samples)


@dataclass(frozen=True, eq=False)
class Part:
    """One clip placed on the timeline: resampled, scaled, faded and limited when a play reaches it."""

    span: Span
    clip: Pcm | LazyClip  # at its own rate; a LazyClip is fetched each time the part is rendered
    gain: float
    fade: int  # raised-cosine fade at each edge, in output samples

    def render(self, rate: int) -> np.ndarray:
        """The whole part at the output ``rate``: resampled, scaled, faded and limited (see :func:`limit`)."""
        clip = self.clip.load() if isinstance(self.clip, LazyClip) else self.clip
        out = resample(clip.samples, clip.rate, rate) * np.float32(self.gain)
        if self.fade:
            curve = fade_curve(np.arange(self.fade), self.fade)
            out[: self.fade] *= curve
            out[len(out) - self.fade :] *= curve[::-1]
        return limit(out, rate, in_place=True)  # ``out`` is this render's own array


def fade_curve(idx: np.ndarray, length: int) -> np.ndarray:
    """Raised cosine from ~0 at index 0 to ~1 at index length - 1."""
    return (0.5 - 0.5 * np.cos(np.pi * (idx + 0.5) / length)).astype(np.float32)


@dataclass(frozen=True)
class RenderOptions:
    """How to render one programme; the defaults are the node's usual ones."""

    rate: int = 48000  # output rate: the firmware profile's audio.sample_rate
    chime: bool = True  # opening chime before and closing chime after each repeat
    chimes: tuple[Pcm, Pcm] | None = None  # custom (opening, closing); None = default_chimes
    repeat: int = 1  # plays back to back (protocol: 1..10)
    gap_s: float = 3.0  # silence between repeats
    target_lufs: float = -16.0  # loudness of the speech
    volume: float = 1.0  # 0..1 gain after normalization (bulletin volume x node volume)
    preamble: tuple[Pcm, ...] = ()  # clips spoken before the speech in each repeat (e.g. a drill notice)
    fade_s: float = 0.02  # fade at every clip edge so nothing clicks

    def __post_init__(self) -> None:
        checks = [
            (8000 <= self.rate <= 192000, f"rate must be 8000..192000 Hz, got {self.rate}"),
            (1 <= self.repeat <= 10, f"repeat must be 1..10, got {self.repeat}"),
            (self.gap_s >= 0, f"gap_s must be >= 0, got {self.gap_s}"),
            (-70 < self.target_lufs < 0, f"target_lufs must be between -70 and 0, got {self.target_lufs}"),
            (0 <= self.volume <= 1, f"volume must be 0..1, got {self.volume}"),
            (self.fade_s >= 0, f"fade_s must be >= 0, got {self.fade_s}"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("RenderOptions: " + "; ".join(problems))


@dataclass(frozen=True)
class Step:
    """One step of a programme's plan: a clip at a gain, a pause, or ``speech`` (the speech clips, whatever
    they turn out to be, at the speech's gain)."""

    kind: str  # "chime", "preamble", "pause" or "speech"
    clip: Pcm | None = None
    gain_db: float = 0.0
    seconds: float = 0.0


def layout(opts: RenderOptions, chimes: Sequence[tuple[Pcm, float]], preamble_gain_db: float) -> list[Step]:
    """The plan of a programme (see the module doc), shared by the whole and the streaming programme.

    ``chimes`` are [(opening, gain in dB), (closing, gain in dB)] at the output rate, or [] for none.
    """
    steps: list[Step] = []
    for r in range(opts.repeat):
        if r:
            steps.append(Step("pause", seconds=opts.gap_s))
        if chimes:
            steps += [Step("chime", *chimes[0]), Step("pause", seconds=CHIME_PAUSE_S)]
        steps += [Step("preamble", clip, preamble_gain_db) for clip in opts.preamble]
        steps.append(Step("speech"))
        if chimes:
            steps += [Step("pause", seconds=CHIME_PAUSE_S), Step("chime", *chimes[1])]
    return steps


class Timeline:
    """Builds the list of parts of a programme at one output rate."""

    def __init__(self, rate: int, fade_s: float, volume: float) -> None:
        self.rate = rate
        self.parts: list[Part] = []
        self.pos = 0
        self._fade = round(fade_s * rate)
        self._volume = volume

    def place(self, kind: str, clip: Pcm | LazyClip, gain_db: float) -> None:
        n = n_out(clip_size(clip), clip.rate, self.rate)
        if n == 0:
            return
        gain = 10.0 ** (gain_db / 20.0) * self._volume
        self.parts.append(Part(Span(kind, self.pos, self.pos + n), clip, gain, min(self._fade, n // 2)))
        self.pos += n

    def pause(self, seconds: float) -> None:
        self.pos += round(seconds * self.rate)

    def lay(self, step: Step, speech: Sequence[Pcm | LazyClip], speech_gain_db: float) -> None:
        """Lay out one step of the plan; a ``speech`` step lays out ``speech``."""
        if step.kind == "pause":
            self.pause(step.seconds)
        elif step.kind == "speech":
            for clip in speech:
                self.place("speech", clip, speech_gain_db)
        else:
            assert step.clip is not None
            self.place(step.kind, step.clip, step.gain_db)
