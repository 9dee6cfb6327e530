"""Everything ``radiod run`` needs from a config file, checked at once: what ``radiod validate`` reports.

The schema (:mod:`radiod.config`) checks each value on its own. A node also stops at start, or at its first
bulletin, on what a value names: a TLS or hub key file that is missing or unreadable, a firmware profile or a
voice that does not exist. Found by a technician at the node with ``radiod validate`` they cost a minute; found by
systemd they are a restart loop. So every such problem is reported here, all at once, with the config file and the
line of the key that names it, by the same code the daemon uses to load it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from radiod import schema
from radiod.config import Config
from radiod.errors import ConfigError, Problem, VoiceError
from radiod.profiles import load_profile
from radiod.protocol.jws import TrustStore
from radiod.speech.voices import load_voice

_FILES = ("mqtt.tls.ca_file", "mqtt.tls.cert_file", "mqtt.tls.key_file", "audio.chime_file")
"""Config keys naming a file the daemon reads (the trusted keys are read by the TrustStore)."""


def check_config(path: Path) -> Config:
    """The config at ``path`` once it and everything it names are usable; else ConfigError listing every problem.

    A YAML syntax error stops at once (nothing else can be read); otherwise the schema's problems and those of
    the files, the profile and the voices are reported together, each check using the file's values where they
    are readable and the defaults where not.
    """
    source = str(path)
    data = schema.read_yaml(path)
    problems: list[Problem] = []
    try:
        config = schema.build(Config, data, source)
    except ConfigError as exc:
        problems += exc.problems
        config = None
    defaults = Config()

    def value(key: str, default: object) -> object:
        given = schema.key_value(data, key)
        return given if isinstance(given, str) else default

    def problem(key: str, message: str) -> Problem:
        return Problem(source, schema.key_line(data, key), key, message)

    for key in _FILES:
        named = schema.key_value(data, key)
        if isinstance(named, str):
            problems += [problem(key, wrong) for wrong in [_unreadable(Path(named))] if wrong]
    trusted = schema.key_value(data, "security.trusted_keys")
    if isinstance(trusted, dict):
        revoked = config.security.revoked_keys if config else []
        keys = {str(kid): Path(file) for kid, file in trusted.items() if isinstance(file, str)}
        try:
            TrustStore(keys, revoked)
        except ConfigError as exc:
            problems += [problem(p.key, f"{p.message} ({p.file})") for p in exc.problems]

    profile = str(value("gpio.profile", defaults.gpio.profile))
    try:
        load_profile(profile, Path(str(value("gpio.profiles_dir", defaults.gpio.profiles_dir))))
    except ConfigError as exc:
        problems += [problem("gpio.profile", p.message) if p.key == "gpio.profile" else p for p in exc.problems]

    voices_dir = Path(str(value("speech.voices_dir", defaults.speech.voices_dir)))
    voice_id = str(value("speech.voice", defaults.speech.voice))
    problems += _voice_problems(voice_id, voices_dir, problem("speech.voice", ""))

    if problems or config is None:  # no problem means the schema built it
        raise ConfigError(sorted(problems, key=lambda p: (p.file != source, p.file, p.line or 0)))
    return config


def _voice_problems(voice_id: str, voices_dir: Path, at: Problem) -> list[Problem]:
    """The voice and each fallback it names, loaded as the Speaker loads them; ``at`` is where the first one is
    named (the config's key), then the ``fallback`` line of the voice file naming the next."""
    seen: set[str] = set()
    while voice_id not in seen:
        seen.add(voice_id)
        try:
            voice = load_voice(voice_id, voices_dir)
        except VoiceError as exc:
            return [replace(at, message=str(exc))]
        except ConfigError as exc:
            return exc.problems
        if voice.fallback is None:
            break
        named_in = voices_dir / f"{voice_id}.yaml"
        at = Problem(str(named_in), schema.key_line(schema.read_yaml(named_in), "fallback"), "fallback", "")
        voice_id = voice.fallback
    return []


def _unreadable(path: Path) -> str | None:
    """What stops the daemon reading ``path``, None if nothing does (for the user running the check)."""
    if not path.exists():
        return f"no such file: {path}"
    if not path.is_file():
        return f"not a file: {path}"
    if not os.access(path, os.R_OK):
        return f"cannot be read by this user: {path}"
    return None
