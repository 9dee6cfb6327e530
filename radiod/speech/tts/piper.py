"""Piper: a neural (VITS) voice run in-process by ONNX Runtime, for a natural Vietnamese voice beside espeak-ng.

A voice file chooses it with ``engine: piper`` and names the model (``model: models/vi_VN-vais1000-medium.onnx``,
its config defaults to the same path plus ``.json``); ``length_scale``, ``noise_scale``, ``noise_w`` and
``speaker`` override the model's own settings, and ``volume`` works as for every voice (in the Speaker).

piper-tts is an optional extra (``pip install 'radiod[piper]'``): this module imports it only when a piper
voice is used, so a node without it runs every espeak-ng voice and :class:`PiperEngine` says why a piper
voice cannot run. Piper phonemizes with its own embedded espeak-ng (``piper.espeakbridge`` and the
``espeak-ng-data`` inside the wheel), so it needs no system package; the Debian espeak-ng is for the
espeak-ng voices and the fallback.

Why in-process, unlike espeak-ng: a model takes seconds to load and tens of MB, so it is loaded once per
process and kept warm (:func:`_model`, one ``PiperVoice`` per model file), and each sentence then costs only
its inference. One inference runs at a time per model: ONNX Runtime already spreads one run over every core,
and concurrent runs would each hold their own activations, which a 512 MB Pi cannot spare.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radiod.audio.pcm import Pcm
from radiod.errors import SynthesisError, VoiceError
from radiod.speech.voices import Voice

if TYPE_CHECKING:
    from piper import PiperVoice

log = logging.getLogger(__name__)

PEAK = 0.5
"""Peak of each sentence out of the engine (-6 dBFS). Piper scales every sentence to full scale; this leaves
room for a voice file's ``volume`` up to 2 before the Speaker's int16 clips."""

SAMPLE_RATES = (8000, 48000)
"""The sample rates a model may have; Piper voices are 16000 (x_low, low) or 22050 (medium, high)."""

REQUIRED_SYMBOLS = ("_", "^", "$")
"""Piper's pad, start and end symbols: every sentence is built from them."""

RUNTIME_MB = 80.0
"""Resident memory of radiod's speech pipeline with ONNX Runtime and piper-tts, without the model's weights: 78 MB
peak with the tests' tiny model on x86-64 (``bench/voices.py --with-test-model``)."""
MODEL_FACTOR = 2.0
"""Resident memory per MB of ``.onnx``: the weights, plus ONNX Runtime's optimized copy and the activations of a
long sentence. An estimate (about 210 MB in all for a 63 MB medium voice): no real model could be measured where
this was written; ``bench/voices.py`` on a node with the model gives the true figure."""
RESERVE_MB = 256.0
"""Memory the rest of the node needs beside the model: the OS, radiod itself, espeak-ng, the page cache for
the SD card."""

_PIPER_HINT = "install it with: pip install 'radiod[piper]' (64-bit Raspberry Pi OS; no wheels for 32-bit)"


def piper_missing() -> str | None:
    """Why piper-tts cannot be used here, or None when it can (imported once, then cached by Python)."""
    try:
        import onnxruntime  # noqa: F401
        import piper  # noqa: F401
    except ImportError as exc:
        return f"piper-tts is not installed here ({exc}); {_PIPER_HINT}"
    return None


@dataclass(frozen=True)
class ModelConfig:
    """What radiod checks and uses in a Piper ``.onnx.json``."""

    path: Path
    sample_rate: int
    espeak_voice: str
    language: str  # "vi_VN"; "" when the config does not say
    num_speakers: int
    num_symbols: int
    phoneme_ids: frozenset[str]
    length_scale: float
    noise_scale: float
    noise_w: float


_REQUIRED = object()
_INFERENCE_DEFAULTS = (("length_scale", 1.0), ("noise_scale", 0.667), ("noise_w", 0.8))  # Piper's own defaults


def _kind(kind: type | tuple[type, ...]) -> str:
    return "number" if isinstance(kind, tuple) else {"int": "whole number", "str": "string", "dict": "mapping"}.get(
        kind.__name__, kind.__name__
    )


def _valid_ids(ids: object, num_symbols: int) -> bool:
    return isinstance(ids, list) and bool(ids) and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < num_symbols for i in ids
    )


def model_paths(voice: Voice) -> tuple[Path, Path]:
    """The voice's ``.onnx`` and ``.onnx.json``, relative to its voices folder (absolute paths stay as they are)."""
    if not voice.model:
        raise VoiceError(
            f"voice '{voice.id}' (engine piper) names no model: add 'model: models/<name>.onnx' to its voice file, "
            "or install one with `radiod voices install MODEL.onnx`"
        )
    folder = Path(voice.folder)
    model = folder / voice.model
    config = folder / voice.model_config if voice.model_config else model.with_name(model.name + ".json")
    return model, config


def read_config(path: Path) -> ModelConfig:
    """Read and check a Piper voice config: a Vietnamese espeak-ng voice, a usable sample rate, the phoneme set.

    Every problem is reported at once, with the key, as :class:`VoiceError` naming the file.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VoiceError(f"{path}: the model's config is missing (Piper publishes it beside the model)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise VoiceError(f"{path}: not a readable JSON voice config: {exc}") from None
    if not isinstance(data, dict):
        raise VoiceError(f"{path}: not a Piper voice config (a JSON object)")
    problems: list[str] = []

    def get(dotted: str, kind: type | tuple[type, ...], default: Any = _REQUIRED) -> Any:
        """The value at ``dotted``, checked to be a ``kind``; a problem is noted and ``default`` (or a blank of
        the kind) returned when it is missing and required, or of the wrong type."""
        value: Any = data
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None and default is not _REQUIRED:
            return default
        if isinstance(value, kind) and not isinstance(value, bool):
            return value
        problems.append(f"{dotted}: missing" if value is None else f"{dotted}: {value!r} is not a {_kind(kind)}")
        blank = kind[0] if isinstance(kind, tuple) else kind
        return blank() if default is _REQUIRED else default

    rate = get("audio.sample_rate", int)
    if rate and not SAMPLE_RATES[0] <= rate <= SAMPLE_RATES[1]:
        problems.append(f"audio.sample_rate: {rate} Hz is not a speech rate ({SAMPLE_RATES[0]}-{SAMPLE_RATES[1]})")
    espeak_voice = get("espeak.voice", str)
    if espeak_voice and not espeak_voice.lower().startswith("vi"):
        problems.append(f"espeak.voice: '{espeak_voice}' is not Vietnamese ('vi'): a model of another language")
    language = get("language.code", str, "")
    if language and not language.lower().startswith("vi"):
        problems.append(f"language.code: '{language}' is not Vietnamese (vi_VN)")
    phoneme_type = get("phoneme_type", str, "espeak")
    if phoneme_type != "espeak":
        problems.append(f"phoneme_type: '{phoneme_type}'; radiod's Vietnamese voices use espeak-ng phonemes ('espeak')")
    num_speakers = get("num_speakers", int)
    num_symbols = get("num_symbols", int)
    id_map = get("phoneme_id_map", dict)
    for symbol in REQUIRED_SYMBOLS:
        if id_map and symbol not in id_map:
            problems.append(f"phoneme_id_map: no id for '{symbol}' (Piper's pad, start and end symbols: _ ^ $)")
    bad = [p for p, ids in id_map.items() if not _valid_ids(ids, num_symbols)]
    if bad:
        problems.append(f"phoneme_id_map: the ids of {', '.join(map(repr, bad[:5]))} are not lists of ids below "
                        f"num_symbols ({num_symbols})")  # fmt: skip
    if "phoneme_id_map" in data and not id_map:
        problems.append("phoneme_id_map: empty")
    if num_speakers < 1 and "num_speakers" in data:
        problems.append(f"num_speakers: {num_speakers}; a model has at least one speaker")
    scales = [float(get(f"inference.{name}", (int, float), default)) for name, default in _INFERENCE_DEFAULTS]
    if problems:
        raise VoiceError(f"{path}: not a usable Vietnamese Piper voice config:\n  " + "\n  ".join(problems))
    return ModelConfig(
        path=path,
        sample_rate=rate,
        espeak_voice=espeak_voice,
        language=language,
        num_speakers=num_speakers,
        num_symbols=num_symbols,
        phoneme_ids=frozenset(id_map),
        length_scale=scales[0],
        noise_scale=scales[1],
        noise_w=scales[2],
    )


class PiperEngine:
    """Speaks one piper voice; made by :func:`radiod.speech.tts.engine_for`, which the Speaker calls once per voice.

    Construction checks what can be checked cheaply (piper-tts importable, model and config present, config
    valid, speaker id in range) and raises :class:`VoiceError`; the model is loaded on first use, or by
    :meth:`load` to warm it up ahead of a bulletin.
    """

    name = "piper"

    def __init__(self, voice: Voice) -> None:
        missing = piper_missing()
        if missing:
            raise VoiceError(f"voice '{voice.id}' uses engine piper, but {missing}")
        self.model_path, config_path = model_paths(voice)
        if not self.model_path.is_file():
            raise VoiceError(
                f"voice '{voice.id}' (engine piper): model {self.model_path} not found; "
                "bring the .onnx and its .onnx.json to the node, then `radiod voices install PATH` (docs/piper.md)"
            )
        try:
            self.config = read_config(config_path)
        except VoiceError as exc:
            raise VoiceError(f"voice '{voice.id}' (engine piper): {exc}") from None
        if voice.speaker is not None and voice.speaker >= self.config.num_speakers:
            raise VoiceError(
                f"voice '{voice.id}': speaker {voice.speaker}, but {self.model_path.name} has "
                f"{self.config.num_speakers} speaker(s) (0-{self.config.num_speakers - 1})"
            )
        self.voice = voice
        self._version: str | None = None

    def version(self) -> str:
        """piper-tts and ONNX Runtime versions, the model files' fingerprint and this voice's synthesis settings:
        the settings are here, not in the cache key, because the engine is made for one voice."""
        if self._version is None:
            import onnxruntime

            v = self.voice
            settings = f"length {v.length_scale} noise {v.noise_scale} noise_w {v.noise_w} speaker {v.speaker}"
            self._version = (
                f"piper-tts {metadata.version('piper-tts')} onnxruntime {onnxruntime.__version__} "
                f"model {_fingerprint(self.model_path, self.config.path)} {settings}"
            )
        return self._version

    def load(self) -> PiperVoice:
        """The loaded model, shared by every engine of this process that uses the same files."""
        return _model(self.model_path, self.config.path, self.voice.id).voice

    def synthesize(self, text: str, voice: Voice, timeout_s: float) -> Pcm:
        """One sentence through ``PiperVoice.synthesize``, each of Piper's own sentences peak-scaled to ``PEAK``.

        ONNX Runtime cannot be interrupted from Python once an inference runs, so ``timeout_s`` is checked after
        each of Piper's sentences: a run that is too slow ends with :class:`SynthesisError` at most one
        inference late. Waiting for another thread's inference on the same model does not count.
        """
        from piper import SynthesisConfig

        model = _model(self.model_path, self.config.path, voice.id)
        settings = SynthesisConfig(
            speaker_id=voice.speaker,
            length_scale=voice.length_scale,
            noise_scale=voice.noise_scale,
            noise_w_scale=voice.noise_w,
            normalize_audio=True,
            volume=PEAK,
        )
        what = f"voice '{voice.id}' ({self.model_path.name}, {len(text.encode())} bytes: {_excerpt(text)})"
        parts: list[np.ndarray] = []
        with model.lock:
            started = time.monotonic()
            try:
                for chunk in model.voice.synthesize(text, syn_config=settings):
                    parts.append(chunk.audio_int16_array)
                    if time.monotonic() - started > timeout_s:
                        break
            except (*runtime_errors(), KeyError, ValueError) as exc:
                raise SynthesisError(f"piper failed for {what}: {type(exc).__name__}: {exc}") from exc
            elapsed = time.monotonic() - started
        if elapsed > timeout_s:
            raise SynthesisError(f"piper took longer than {timeout_s:g} s for {what} ({elapsed:.1f} s); it was stopped")
        if not parts or not any(np.any(p) for p in parts):
            raise SynthesisError(f"piper produced no audio for {what}: no phonemes, or a model that outputs silence")
        samples = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return Pcm(samples, model.voice.config.sample_rate)


@dataclass
class _Model:
    voice: PiperVoice
    fingerprint: str
    lock: threading.Lock  # one inference at a time (module doc)


_models: dict[tuple[Path, Path], _Model] = {}
_models_lock = threading.Lock()


def _model(model_path: Path, config_path: Path, voice_id: str) -> _Model:
    """The warm model for these files: loaded once per process, and again only when a file changed (a voice
    re-installed over the old one), in which case the old one is dropped."""
    key = (model_path.resolve(), config_path.resolve())
    fingerprint = _fingerprint(model_path, config_path)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is not None and loaded.fingerprint == fingerprint:
            return loaded
        from piper import PiperVoice

        started = time.monotonic()
        try:
            voice = PiperVoice.load(model_path, config_path=config_path)
        except (*runtime_errors(), OSError, KeyError, ValueError) as exc:
            raise SynthesisError(
                f"voice '{voice_id}': cannot load the piper model {model_path}: {type(exc).__name__}: {exc}"
            ) from exc
        _models[key] = _Model(voice, fingerprint, threading.Lock())
        log.info("voice %s: loaded piper model %s in %.1f s", voice_id, model_path.name, time.monotonic() - started)
        return _models[key]


def runtime_errors() -> tuple[type[Exception], ...]:
    """ONNX Runtime's exceptions: they derive from Exception directly, so they are named one by one."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError", "RuntimeException",
             "InvalidProtobuf", "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail")  # fmt: skip
    return (RuntimeError, *(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type)))


def memory_warning(voice: Voice, meminfo: Path = Path("/proc/meminfo")) -> str | None:
    """A sentence for the health report when this machine is short of memory for ``voice``, else None.

    A piper model needs about ``RUNTIME_MB + MODEL_FACTOR x`` its size resident; the node needs ``RESERVE_MB``
    beside it. A Pi Zero 2 W (512 MB, about 420 MB for Linux) cannot hold a medium voice (63 MB) that way and
    would swap or meet the OOM killer in the middle of a bulletin. espeak-ng voices need no warning.
    """
    if voice.engine != "piper" or not voice.model:
        return None
    model_path, _ = model_paths(voice)
    try:
        model_mb = model_path.stat().st_size / 2**20
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines() if ":" in line)
        total_mb = int(fields["MemTotal"].split()[0]) / 1024
        available_mb = int(fields.get("MemAvailable", fields["MemTotal"]).split()[0]) / 1024
    except (OSError, KeyError, ValueError, IndexError):
        return None  # no model (engine_for says so) or no /proc/meminfo (not Linux): nothing to measure
    need_mb = RUNTIME_MB + MODEL_FACTOR * model_mb
    if total_mb - need_mb < RESERVE_MB:
        return (
            f"voice '{voice.id}': its piper model ({model_mb:.0f} MB) needs about {need_mb:.0f} MB of memory and "
            f"this machine has {total_mb:.0f} MB in all ({RESERVE_MB:.0f} MB must stay for the rest of the node): "
            f"expect swapping or the OOM killer; use an espeak-ng voice{_fallback_note(voice)} on this node"
        )
    loaded = any(key[0] == model_path.resolve() for key in _models)
    if not loaded and available_mb < need_mb:
        return (
            f"voice '{voice.id}': its piper model needs about {need_mb:.0f} MB of memory and only "
            f"{available_mb:.0f} MB is available now; loading it may push the node into swap"
        )
    return None


def _fallback_note(voice: Voice) -> str:
    return f" (its fallback '{voice.fallback}')" if voice.fallback else ""


def _fingerprint(model: Path, config: Path) -> str:
    """A short hash of the model's size and modification time and of the config's content: cheap (the model is
    not read) and changed by any re-install."""
    digest = hashlib.blake2b(digest_size=6)
    try:
        st = model.stat()
        digest.update(f"{st.st_size}\0{st.st_mtime_ns}\0".encode())
        digest.update(config.read_bytes())
    except OSError as exc:
        raise SynthesisError(f"cannot read the piper model files {model}, {config}: {exc}") from exc
    return digest.hexdigest()


def _excerpt(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")

