"""Voices: one YAML per voice in ``voices/``, naming the engine and how it should speak.

A voice file is all a technician edits to change how the node sounds; its id is the file name. The
region (north, central, south) also steers regional readings in the normalizer (linh/lẻ, nghìn/ngàn).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from radiod import schema
from radiod.errors import VoiceError
from radiod.schema import setting

Region = Literal["north", "central", "south"]


@dataclass(frozen=True, kw_only=True)
class Voice:
    description: str = setting(doc="the voice, for people")
    engine: Literal["espeak-ng", "piper"] = setting("espeak-ng", doc="the synthesis engine")
    region: Region = setting("north", doc="regional reading of numbers and words")
    voice: str = setting("vi", doc="the engine's own voice name (espeak-ng: vi, vi-vn-x-central, vi-vn-x-south)")
    rate: int = setting(150, doc="speaking rate in words per minute (espeak-ng)", min=80, max=450)
    pitch: int = setting(50, doc="pitch 0-99 (espeak-ng)", min=0, max=99)
    volume: float = setting(1.0, doc="gain applied to this voice before loudness normalization", min=0.1, max=4)
    model: str | None = setting(None, doc="piper: the .onnx model, relative to voices/")
    model_config: str | None = setting(None, doc="piper: the model's .onnx.json (default: the model + .json)")
    length_scale: float | None = setting(None, doc="piper: speed, >1 slower (default: model's)", min=0.1, max=4)
    noise_scale: float | None = setting(None, doc="piper: generator noise (default: the model's)", min=0, max=2)
    noise_w: float | None = setting(None, doc="piper: phoneme width noise (default: the model's)", min=0, max=2)
    speaker: int | None = setting(None, doc="piper: speaker id of a multi-speaker model (default: the model's)", min=0)
    fallback: str | None = setting(None, doc="voice id to use when this one cannot run here")
    id: str = setting("", doc="set from the file name; leave it out of the file")
    folder: str = setting("", doc="set to the voices folder (model paths start there); leave it out")


def voice_files(voices_dir: Path) -> list[Path]:
    """Voice files; the lexicon and other word lists in the same folder are not voices."""
    return sorted(p for p in voices_dir.glob("*.yaml") if not p.stem.startswith(("lexicon", "_")))


def load_voice(voice_id: str, voices_dir: Path) -> Voice:
    """Load ``voices/<voice_id>.yaml``; an unknown id names the voices there are."""
    path = voices_dir / f"{voice_id}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in voice_files(voices_dir)) or "none"
        raise VoiceError(f"unknown voice '{voice_id}' (voices in {voices_dir}: {known})")
    voice = schema.load(path, Voice)
    return Voice(**{**schema.to_plain(voice, mask_secrets=False), "id": voice_id, "folder": str(voices_dir.resolve())})


def load_voices(voices_dir: Path) -> list[Voice]:
    """Every voice in ``voices_dir``."""
    return [load_voice(p.stem, voices_dir) for p in voice_files(voices_dir)]
