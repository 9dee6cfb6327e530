"""The voice engine interface: one sentence in, int16 audio out.

It is deliberately small so that a neural engine (Piper, any ONNX model) fits later without changing the
speech pipeline: an engine only has to say who it is (for the cache key) and turn one sentence into audio.
Trimming silence, pauses between sentences, the voice's volume, parallelism and caching are the
:class:`~radiod.speech.speaker.Speaker`'s job, done the same way for every engine.

An engine whose cost is mostly start-up (espeak-ng runs as a separate program) may also implement
:class:`BatchEngine`, which the Speaker uses when it can, to pay that start-up once for several sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from radiod.audio.pcm import Pcm
from radiod.speech.voices import Voice


@runtime_checkable
class Engine(Protocol):
    """A speech synthesizer for some voices."""

    name: str
    """Short engine name, e.g. ``"espeak-ng"``; in logs and in the cache key."""

    def version(self) -> str:
        """Engine and voice-data version: part of the cache key, so an upgrade never replays stale audio."""
        ...

    def synthesize(self, text: str, voice: Voice, timeout_s: float) -> Pcm:
        """One sentence to mono int16 audio at the engine's own rate.

        Raises :class:`~radiod.errors.SynthesisError` naming the voice when the engine fails, produces no
        audio, or takes longer than ``timeout_s``.
        """
        ...


@runtime_checkable
class BatchEngine(Engine, Protocol):
    """An engine that can synthesize several sentences in one run and hand each one back separately."""

    def synthesize_many(self, texts: Sequence[str], voice: Voice, timeout_s: float) -> list[Pcm]:
        """One clip per text, in order; ``timeout_s`` bounds the whole run.

        The clips may be views into one array holding the whole run: a caller copies what it keeps.
        """
        ...
