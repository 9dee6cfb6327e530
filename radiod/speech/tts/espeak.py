"""espeak-ng, run as a separate program: text in by file, WAV out by file, one private temp dir per run.

Why a program and not the library: a crash or a hang in the synthesizer then costs one child process that
radiod can time out and kill, never the daemon. Why text by file (``-f``): espeak-ng 1.51 garbles stdin
lines longer than about 1000 bytes, and bulletins have long sentences. ``-b 1`` says the file is UTF-8, so
Vietnamese diacritics are read as written whatever the locale of the service.

Start-up (loading the voice and its dictionary) costs about as much as synthesizing a short sentence, so
:meth:`EspeakEngine.synthesize_many` reads several sentences in one run: they go in as SSML separated by a
long ``<break>``, and the output is cut back at the longest runs of digital silence. espeak-ng writes exact
zeros between words, so those runs are easy to find; the cut is only trusted when every break is clearly
longer than every pause inside a sentence, otherwise each sentence is synthesized on its own. A sentence read
in a batch may differ very slightly in timing from the same sentence read alone (espeak-ng carries some state
from one sentence to the next, as it does when reading a whole file); both are the same words.
"""

from __future__ import annotations

import html
import logging
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from radiod.audio.pcm import Pcm
from radiod.errors import SynthesisError, VoiceError
from radiod.speech.espeak_program import espeak_version, run_espeak, stderr_note
from radiod.speech.voices import Voice

log = logging.getLogger(__name__)

BREAK_MS = 2000
"""Silence asked for between sentences of a batch; several times any pause espeak-ng makes inside one."""

BOUNDARY_MARGIN = 1.5
"""A batch is cut only if its shortest break is this many times longer than its longest other pause."""

_BLOCK = 32  # samples (1.5 ms at 22050 Hz) per block when looking for the breaks


class EspeakEngine:
    """The espeak-ng program at ``program`` (an absolute path, found by :func:`radiod.speech.tts.engine_for`)."""

    name = "espeak-ng"

    def __init__(self, program: str) -> None:
        self.program = program
        self._version: str | None = None

    def version(self) -> str:
        """``espeak-ng 1.51 data <fingerprint>``: the fingerprint (names, sizes and dates of the voice data
        files) changes when a package update changes a dictionary without changing the version number."""
        if self._version is None:
            self._version = espeak_version(self.program)
        return self._version

    def check_voice(self, voice: Voice) -> None:
        """Raise :class:`VoiceError` now if espeak-ng has no voice ``voice.voice``, rather than at 6:30.

        espeak-ng itself does not refuse a misspelt voice: it quietly falls back on whatever language the
        name starts with ("vi-vn-x-nort" reads as "vi", "no-such-voice" as Norwegian), so the name is checked
        against ``espeak-ng --voices``: a language, voice name or voice file, with an optional "+variant".
        """
        result = run_espeak([self.program, "--voices"], timeout_s=10.0, what="espeak-ng --voices")
        known: set[str] = set()
        for line in result.stdout.splitlines()[1:]:
            fields = line.split()  # Pty Language Age/Gender VoiceName File [Other Languages]
            if len(fields) >= 5:
                known |= {fields[1].lower(), fields[3].lower(), fields[4].lower(), fields[4].split("/")[-1].lower()}
        if voice.voice.split("+")[0].lower() not in known:
            vietnamese = sorted(name for name in known if name.startswith("vi"))
            raise VoiceError(
                f"voice '{voice.id}': espeak-ng has no voice '{voice.voice}' "
                f"(its Vietnamese voices: {', '.join(vietnamese) or 'none'}; see `espeak-ng --voices`)"
            )

    def synthesize(self, text: str, voice: Voice, timeout_s: float) -> Pcm:
        """One sentence, as espeak-ng reads it alone."""
        with tempfile.TemporaryDirectory(prefix="radiod-espeak-") as tmp:
            what = f"voice '{voice.id}' ({len(text.encode())} bytes of text: {_excerpt(text)})"
            return self._speak_file(text, voice, Path(tmp), ssml=False, timeout_s=timeout_s, what=what)

    def synthesize_many(self, texts: Sequence[str], voice: Voice, timeout_s: float) -> list[Pcm]:
        """Several sentences in one espeak-ng run, cut back into one clip each (views into the run's audio);
        ``timeout_s`` is for them all."""
        if len(texts) == 1:
            return [self.synthesize(texts[0], voice, timeout_s)]
        document = f'<break time="{BREAK_MS}ms"/>'.join(html.escape(t, quote=False) for t in texts)
        what = f"voice '{voice.id}' ({len(texts)} sentences, {len(document.encode())} bytes, from {_excerpt(texts[0])})"
        with tempfile.TemporaryDirectory(prefix="radiod-espeak-") as tmp:
            whole = self._speak_file(
                f"<speak>{document}</speak>", voice, Path(tmp), ssml=True, timeout_s=timeout_s, what=what
            )
        parts = split_at_breaks(whole.samples, len(texts))
        if parts is None:
            log.info(
                "voice %s: could not cut a batch of %d sentences apart; reading them one by one", voice.id, len(texts)
            )
            return [self.synthesize(t, voice, timeout_s / len(texts)) for t in texts]
        return [Pcm(part, whole.rate) for part in parts]

    def _speak_file(self, text: str, voice: Voice, tmp: Path, *, ssml: bool, timeout_s: float, what: str) -> Pcm:
        text_file, wav_file = tmp / "text.txt", tmp / "speech.wav"
        text_file.write_text(text, encoding="utf-8")
        args = [self.program, "-b", "1", "-v", voice.voice, "-s", str(voice.rate), "-p", str(voice.pitch)]
        args += ["-m"] if ssml else []
        args += ["-f", str(text_file), "-w", str(wav_file)]
        result = run_espeak(args, timeout_s=timeout_s, what=what)
        pcm = _read_int16_wav(wav_file, what, result.stderr)
        if not np.any(pcm.samples):
            raise SynthesisError(f"espeak-ng produced only silence for {what}{stderr_note(result.stderr)}")
        return pcm


def split_at_breaks(samples: np.ndarray, count: int) -> list[np.ndarray] | None:
    """Cut ``samples`` into ``count`` parts (views) at its ``count - 1`` longest runs of exact zeros.

    Runs are found on blocks of ``_BLOCK`` samples (a block is silent when all of it is zero): one cheap
    pass over the audio, and the cuts land inside the runs, which is all the caller needs since it trims
    each part. None when those runs are not clearly the breaks (a sentence with a long pause of its own, or
    one that produced no sound, which merges two breaks): the caller then reads the sentences one by one.
    """
    if count == 1:
        return [samples]
    usable = len(samples) // _BLOCK * _BLOCK
    silent = ~samples[:usable].reshape(-1, _BLOCK).any(axis=1)
    steps = np.diff(np.concatenate(([False], silent, [False])).view(np.int8))
    starts, ends = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
    inside = (starts > 0) & (ends < len(silent))  # silence before the first and after the last word is no cut
    starts, ends = starts[inside], ends[inside]
    if len(starts) < count - 1:
        return None
    lengths = ends - starts
    order = np.argsort(lengths, kind="stable")[::-1]
    cuts, others = np.sort(order[: count - 1]), order[count - 1 :]
    if len(others) and lengths[cuts].min() < BOUNDARY_MARGIN * lengths[others].max():
        return None
    bounds = [0, *(_BLOCK * np.column_stack((starts[cuts], ends[cuts])).ravel()).tolist(), len(samples)]
    return [samples[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2)]


def _read_int16_wav(path: Path, what: str, stderr: str) -> Pcm:
    """espeak-ng's output as int16, checked: it exits 0 even when it could not write the file."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise SynthesisError(
                    f"espeak-ng wrote {8 * w.getsampwidth()}-bit {w.getnchannels()}-channel audio for {what}; "
                    "expected 16-bit mono"
                )
            rate, frames = w.getframerate(), w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise SynthesisError(f"espeak-ng wrote no valid WAV for {what}: {exc}{stderr_note(stderr)}") from exc
    if not frames:
        raise SynthesisError(f"espeak-ng wrote an empty WAV for {what}{stderr_note(stderr)}")
    return Pcm(np.frombuffer(frames, dtype="<i2"), rate)


def _excerpt(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
