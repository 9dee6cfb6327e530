"""The espeak-ng program: one run of it, checked, and its version with its voice data's fingerprint.

Apart from the engine (:mod:`radiod.speech.tts.espeak`) because it needs no numpy: ``radiod speak -o`` asks for
the version, part of every cache key made with an espeak-ng voice, before it knows whether it will synthesize
anything (:mod:`radiod.node.programme_index`).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

from radiod.errors import SynthesisError

_STDERR_SHOWN = 500  # characters of espeak-ng's stderr quoted in an error


def run_espeak(args: list[str], *, timeout_s: float, what: str) -> subprocess.CompletedProcess[str]:
    """Run espeak-ng (``args[0]``); ``subprocess.run`` kills it when the timeout passes. A failure to run, a
    timeout or a non-zero exit is a :class:`SynthesisError` naming ``what`` was being read."""
    try:
        result = subprocess.run(args, check=False, capture_output=True, text=True, errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise SynthesisError(f"espeak-ng took longer than {timeout_s:g} s for {what}; it was stopped") from exc
    except OSError as exc:
        raise SynthesisError(f"cannot run {args[0]} for {what}: {exc}") from exc
    if result.returncode != 0:
        raise SynthesisError(f"espeak-ng failed (exit code {result.returncode}) for {what}{stderr_note(result.stderr)}")
    return result


def espeak_version(program: str) -> str:
    """``espeak-ng 1.51 data <fingerprint>`` of the espeak-ng at ``program``: the fingerprint (names, sizes and
    dates of the voice data files) changes when a package update changes a dictionary without changing the
    version number."""
    result = run_espeak([program, "--version"], timeout_s=10.0, what="espeak-ng --version")
    match = re.search(r"text-to-speech:\s*(\S+)\s+Data at:\s*(.+)", result.stdout)
    if match is None:
        raise SynthesisError(f"{program} --version printed no version: {result.stdout.strip()!r}")
    return f"espeak-ng {match[1]} data {_fingerprint(Path(match[2].strip()))}"


def stderr_note(stderr: str) -> str:
    """``; stderr: …`` quoting the start of what espeak-ng said, or nothing when it said nothing."""
    return f"; stderr: {stderr.strip()[:_STDERR_SHOWN]}" if stderr.strip() else ""


def _fingerprint(data_dir: Path) -> str:
    """A short hash of the paths, sizes and modification times of every file under espeak-ng's data dir
    (about 500 files: a few milliseconds, once per process)."""
    digest = hashlib.blake2b(digest_size=4)
    folders = [str(data_dir)]
    while folders:
        for entry in sorted(os.scandir(folders.pop()), key=lambda e: e.name):
            if entry.is_dir():
                folders.append(entry.path)
            else:
                st = entry.stat()
                digest.update(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()
