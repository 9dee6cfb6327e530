"""Voice engines behind one small interface (:class:`~radiod.speech.tts.base.Engine`), chosen by a voice file.

:func:`engine_for` is the one place that knows which engines exist and what each needs on this machine, so
a voice that cannot run here fails with a sentence a technician can act on, when the voice is first used.
"""

from __future__ import annotations

import shutil

from radiod.errors import VoiceError
from radiod.speech.tts.base import BatchEngine, Engine
from radiod.speech.tts.espeak import EspeakEngine
from radiod.speech.voices import Voice

__all__ = ["BatchEngine", "Engine", "EspeakEngine", "engine_for"]


def engine_for(voice: Voice) -> Engine:
    """The engine that speaks ``voice``, checked to be able to run here (program or package installed, voice
    known, model files present)."""
    if voice.engine == "espeak-ng":
        program = shutil.which("espeak-ng")
        if program is None:
            raise VoiceError(
                f"voice '{voice.id}' needs espeak-ng, which is not installed here (not on PATH): "
                "install the Debian package espeak-ng (sudo apt install espeak-ng)"
            )
        engine = EspeakEngine(program)
        engine.check_voice(voice)
        return engine
    if voice.engine == "piper":
        from radiod.speech.tts.piper import PiperEngine  # imports piper-tts only when a piper voice is used

        return PiperEngine(voice)
    raise VoiceError(f"voice '{voice.id}': unknown engine '{voice.engine}' (known: espeak-ng, piper)")
