"""``radiod voices install PATH_OR_DIR``: bring a Piper voice onto the node, checked, with its voice file.

A node has no internet, so a model arrives by hand (scp, a USB stick; see docs/piper.md). Installing checks it
before the daemon ever reads a bulletin with it, because a wrong file found at 6:30 is a silent village:

1. the config (``.onnx.json``) is a Vietnamese espeak-ng voice with a speech sample rate and a phoneme map
   (:func:`radiod.speech.tts.piper.read_config`);
2. the model loads in ONNX Runtime and has Piper's inputs and output (``input``, ``input_lengths``, ``scales``,
   ``sid`` exactly when it has several speakers; audio out);
3. every phoneme piper-tts's espeak-ng produces for Vietnamese text has an id in the model's map (a missing one
   would be skipped silently: a sound left out of every word that has it);
4. it reads a test sentence aloud: audio, not silence, at the config's rate.

Then the two files are copied into ``voices/models/`` (to a temporary name, then renamed, so a running daemon
never loads half a model) and ``voices/<id>.yaml`` is written, with the espeak-ng voice of the same region as
its fallback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from radiod import schema
from radiod.errors import VoiceError
from radiod.speech.tts.piper import ModelConfig, piper_missing, read_config, runtime_errors
from radiod.speech.voices import Region, Voice, load_voices

if TYPE_CHECKING:
    from piper import PiperVoice

MODELS_DIR = "models"
"""Where installed models go, inside the voices folder."""

COVERAGE_TEXT = (
    "Xin chào bà con, hôm nay trời mưa to; các hộ gia đình chằng chống nhà cửa. Ủy ban nhân dân xã thông báo: "
    "khuya nay gió giật mạnh, nguy hiểm! Phường Quảng Trị, thuở trước, nghiêm khắc, gậy, ghế, phở, thư, trâu, "
    "rượu, khuỷu, oanh, uyên, quyết, giữ gìn, ngã ba, Nguyễn, đường, ước mơ, yêu, ốc, ếch, ích, ạ?"
)
"""Vietnamese text with every initial, final, vowel and tone of a bulletin: its phonemes must all have ids."""

TEST_SENTENCE = "Xin chào bà con, đây là giọng đọc mới của đài truyền thanh xã."

_PIPER_INPUTS = {"input": "tensor(int64)", "input_lengths": "tensor(int64)", "scales": "tensor(float)"}


@dataclass(frozen=True)
class Installed:
    """One installed voice, for the command to print."""

    voice_id: str
    voice_file: Path
    model: Path
    config: ModelConfig
    fallback: str | None
    test_audio_s: float
    test_synthesis_s: float


def model_pairs(path: Path) -> list[tuple[Path, Path]]:
    """The (``.onnx``, ``.onnx.json``) pairs at ``path``: a model, its config, or a folder holding them."""
    if path.is_dir():
        models = sorted(path.glob("*.onnx"))
        if not models:
            raise VoiceError(f"{path}: no .onnx model in this folder")
    elif path.name.endswith(".onnx.json"):
        models = [path.with_name(path.name.removesuffix(".json"))]
    elif path.suffix == ".onnx":
        models = [path]
    elif path.exists():
        raise VoiceError(f"{path}: not a Piper model (.onnx), its config (.onnx.json), or a folder of them")
    else:
        raise VoiceError(f"{path}: no such file or folder")
    pairs = []
    for model in models:
        config = model.with_name(model.name + ".json")
        if not model.is_file():
            raise VoiceError(f"{model}: the model is missing beside its config {config.name}")
        if not config.is_file():
            raise VoiceError(f"{config}: missing; Piper publishes each model with its config: copy both")
        pairs.append((model, config))
    return pairs


def default_voice_id(model: Path) -> str:
    """``vi_VN-vais1000-medium.onnx`` -> ``vi-vais1000-medium``: a voice id a technician can type."""
    stem = model.name.removesuffix(".onnx")
    stem = re.sub(r"^vi_VN-", "vi-", stem)
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")


def check_model(model: Path, config_path: Path) -> tuple[ModelConfig, float, float]:
    """Steps 1-4 of the module doc; the config, and the test sentence's audio seconds and synthesis seconds.

    Raises :class:`VoiceError` naming the file and everything wrong found in it.
    """
    missing = piper_missing()
    if missing:
        raise VoiceError(f"cannot check {model.name}: {missing}")
    from piper import PiperVoice, SynthesisConfig
    from piper.phonemize_espeak import EspeakPhonemizer

    config = read_config(config_path)
    try:
        voice = PiperVoice.load(model, config_path=config_path)
    except (*runtime_errors(), OSError, KeyError, ValueError) as exc:
        raise VoiceError(f"{model}: ONNX Runtime cannot load it: {type(exc).__name__}: {exc}") from None
    problems = _signature_problems(voice, config)
    phonemes = {p for sentence in EspeakPhonemizer().phonemize(config.espeak_voice, COVERAGE_TEXT) for p in sentence}
    uncovered = sorted(phonemes - config.phoneme_ids)
    if uncovered:
        problems.append(
            f"{config_path.name}: phoneme_id_map has no id for {' '.join(uncovered)}, which espeak-ng voice "
            f"'{config.espeak_voice}' produces for Vietnamese: not a model trained on Vietnamese espeak-ng phonemes"
        )
    if problems:
        raise VoiceError(f"{model}: not a usable Piper voice:\n  " + "\n  ".join(problems))
    started = time.monotonic()
    try:
        chunks = list(voice.synthesize(TEST_SENTENCE, syn_config=SynthesisConfig()))
    except (*runtime_errors(), KeyError, ValueError) as exc:
        raise VoiceError(f"{model}: fails to read a test sentence: {type(exc).__name__}: {exc}") from None
    synthesis_s = time.monotonic() - started
    audio = np.concatenate([c.audio_float_array for c in chunks]) if chunks else np.zeros(0, np.float32)
    if not np.any(np.abs(audio) > 1e-3):
        raise VoiceError(f"{model}: reads a test sentence as silence")
    if chunks[0].sample_rate != config.sample_rate:
        raise VoiceError(f"{model}: gives {chunks[0].sample_rate} Hz audio, its config says {config.sample_rate} Hz")
    return config, len(audio) / config.sample_rate, synthesis_s


def _signature_problems(voice: PiperVoice, config: ModelConfig) -> list[str]:
    """What is wrong with the model's inputs and output for Piper, given the config's number of speakers."""
    session = voice.session
    inputs = {i.name: i.type for i in session.get_inputs()}
    problems = [
        f"input '{name}': {inputs.get(name, 'missing')}, Piper gives {kind}"
        for name, kind in _PIPER_INPUTS.items()
        if inputs.get(name) != kind
    ]
    if config.num_speakers > 1 and inputs.get("sid") != "tensor(int64)":
        problems.append(f"input 'sid': the config has {config.num_speakers} speakers but the model takes no speaker id")
    if config.num_speakers == 1 and "sid" in inputs:
        problems.append("input 'sid': the model takes a speaker id but its config has num_speakers 1")
    extra = sorted(set(inputs) - {*_PIPER_INPUTS, "sid"})
    if extra:
        problems.append(f"inputs {', '.join(extra)}: Piper does not give them")
    outputs = session.get_outputs()
    if not outputs or outputs[0].type != "tensor(float)":
        problems.append("output: expected audio as float32 [1, 1, samples]")
    return problems


def install(
    path: Path,
    voices_dir: Path,
    *,
    voice_id: str | None = None,
    region: Region = "north",
    fallback: str | None = None,
    force: bool = False,
) -> list[Installed]:
    """Check every model at ``path``, then copy it into ``voices_dir/models`` and write ``voices_dir/<id>.yaml``.

    ``voice_id`` names the voice (only when one model is installed; default from the model's name), ``fallback``
    the voice to read with when this one cannot run (default: an espeak-ng voice of ``region``). An existing
    voice file or a different model of the same name is replaced only with ``force``. Nothing is copied unless
    every model passed its checks.
    """
    pairs = model_pairs(path)
    if voice_id is not None and len(pairs) > 1:
        raise VoiceError(f"{path} holds {len(pairs)} models; --id names one voice: install them one at a time")
    if voice_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", voice_id):
        raise VoiceError(f"voice id '{voice_id}': use letters, digits, '-', '_' and '.' (it becomes a file name)")
    voices_dir.mkdir(parents=True, exist_ok=True)
    known = {v.id: v for v in load_voices(voices_dir)}
    if fallback is None:
        fallback = _espeak_voice_of(region, known)
    elif fallback not in known:
        raise VoiceError(f"fallback voice '{fallback}' is not in {voices_dir} (voices: {', '.join(known) or 'none'})")
    checked = []
    for model, config_path in pairs:
        vid = voice_id or default_voice_id(model)
        voice_file = voices_dir / f"{vid}.yaml"
        target = voices_dir / MODELS_DIR / model.name
        if voice_file.exists() and not force:
            raise VoiceError(f"{voice_file} exists: add --force to replace it, or --id to install under another name")
        if target.exists() and not force and not _same_file(model, target):
            raise VoiceError(f"{target} exists with other content: add --force to replace it")
        checked.append((vid, voice_file, model, config_path, target, *check_model(model, config_path)))
    installed = []
    for vid, voice_file, model, config_path, target, config, audio_s, synthesis_s in checked:
        _copy(model, target)
        _copy(config_path, target.with_name(target.name + ".json"))
        _write_voice_file(voice_file, model.name, config, region, fallback)
        installed.append(Installed(vid, voice_file, target, config, fallback, audio_s, synthesis_s))
    return installed


def _espeak_voice_of(region: Region, voices: dict[str, Voice]) -> str | None:
    """The espeak-ng voice of ``region``, ``vi-<region>`` first; None when the folder has none."""
    candidates = [v.id for v in voices.values() if v.engine == "espeak-ng" and v.region == region]
    preferred = f"vi-{region}"
    return preferred if preferred in candidates else (candidates[0] if candidates else None)


def _same_file(a: Path, b: Path) -> bool:
    """Same path, or same bytes (a re-install of the model already there)."""
    if a.resolve() == b.resolve():
        return True
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            block_a, block_b = fa.read(1 << 20), fb.read(1 << 20)
            if block_a != block_b:
                return False
            if not block_a:
                return True


def _copy(source: Path, target: Path) -> None:
    """Copy through a temporary name and rename: the daemon sees the old file or the whole new one."""
    if source.resolve() == target.resolve():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise VoiceError(f"cannot copy {source} to {target}: {exc.strerror or exc}") from None


def _write_voice_file(path: Path, model_name: str, config: ModelConfig, region: Region, fallback: str | None) -> None:
    """The voice file, checked by the same loader the daemon uses before it replaces any old one."""
    name = model_name.removesuffix(".onnx")
    speakers = f"{config.num_speakers} speakers" if config.num_speakers > 1 else "one speaker"
    lines = [
        f"# Piper neural voice, installed by `radiod voices install` from {model_name} ({speakers}).",
        "# Speed: length_scale (above 1 slower). The model's own settings are shown commented out; uncomment to",
        "# change one. The rendered sentences are cached by these settings, so a change applies to the next bulletin.",
        f"description: {json.dumps(f'Piper {name} (neural, {config.sample_rate} Hz)', ensure_ascii=False)}",
        "engine: piper",
        f"region: {region}",
        f"model: {MODELS_DIR}/{model_name}",
        f"model_config: {MODELS_DIR}/{model_name}.json",
        f"# length_scale: {config.length_scale:g}",
        f"# noise_scale: {config.noise_scale:g}",
        f"# noise_w: {config.noise_w:g}",
        "volume: 1.0",
    ]
    if config.num_speakers > 1:
        lines.append(f"speaker: 0   # 0-{config.num_speakers - 1}")
    if fallback:
        lines.append(f"fallback: {fallback}   # read with this voice when the model cannot run or keep up")
    else:
        lines.append(f"# fallback: no espeak-ng voice of region {region} in this folder; name one here")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        schema.load(tmp, Voice)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
