"""Finished programmes found by the request that made them: a replay without normalizing, synthesizing or numpy.

The programme cache (:mod:`radiod.node.programme_cache`) keys an entry on the speech-cache keys of its sentences,
and finding those means normalizing the text. With the imports that takes (numpy, the normalizer's rules), a
replay of the daily 9-minute bulletin by ``radiod speak -o`` cost several times the copy of its file. So whenever
a programme is made, a *link* is kept beside the entries: a small file named by the hash of everything the
programme is made from, before any of it is worked out, that holds the entry's key:

- the request: the text as given, the voice asked for, chimes, repeats, gap, volume, preamble;
- the config that shapes the sound: the ``audio`` section, the board profile, the voices folder;
- the files read on the way, by path, size and modification time: the voice files and lexicons, the profile, a
  custom chime;
- the code that makes a programme: radiod's modules and the audio libraries, by path, size and modification time,
  as this process found them when it first asked.

Any of these changing names another link: a miss, and the programme is made and linked as usual. The link also
holds the engine's version (espeak-ng's, with its data's fingerprint, as in every speech-cache key), which is
asked for while the entry is copied: the run of a program takes as long as the copy. A link is only followed to an
entry that is there and checks whole, read by the engine that is here. Links share the programmes' folder and its
eviction. Only voices whose engine says its version without loading anything are linked (espeak-ng): a Piper
programme is found the usual way.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import threading
from importlib.util import find_spec
from pathlib import Path
from typing import NamedTuple

import radiod
from radiod import schema
from radiod.config import PROGRAMMES_DIR, Config
from radiod.errors import RadiodError, SynthesisError
from radiod.node.programme_file import CorruptProgramme, EntryHeader, copy_checked, entry_path
from radiod.speech.espeak_program import espeak_version
from radiod.speech.voices import Voice, load_voice

LINK_VERSION = 1
"""Bump when what a link's name is made from changes."""
LINK_SUFFIX = ".link"
LINKED_ENGINES = frozenset({"espeak-ng"})
"""Engines whose version costs one short run of a program, not the import of a runtime."""
AUDIO_LIBRARIES = ("numpy", "soxr", "pyebur128")
"""Libraries that shape a programme's samples (as in :func:`~radiod.node.programme_cache.programme_key`)."""


class ProgrammeRequest(NamedTuple):
    """What a programme of speech is asked for with (:meth:`~radiod.node.programme.ProgrammeMaker.make`).

    This module's records are NamedTuples, not dataclasses: one is built in a tenth of the time, and
    ``radiod speak -o`` builds them at every run, where each millisecond is a share of a replay."""

    text: str
    voice_id: str
    chime: bool = True
    repeat: int = 1
    gap_s: float = 3.0
    volume: float = 1.0
    preamble: str | None = None


class Link(NamedTuple):
    """What a link holds: the entry's key, and the version of the engine that read its speech."""

    programme_key: str
    engine_version: str


class ProgrammeLinks:
    """The links of one node's programme cache (``<cache_dir>/programmes``)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.directory = config.cache_dir / PROGRAMMES_DIR

    def key(self, request: ProgrammeRequest, voice: Voice) -> str | None:
        """The name of ``request``'s link, read with ``voice`` (its file); None for a voice whose engine is not
        linked (see the module doc)."""
        if voice.engine not in LINKED_ENGINES:
            return None
        config = self.config
        voices_dir = Path(config.speech.voices_dir)
        files = sorted(voices_dir.iterdir()) if voices_dir.is_dir() else []
        files.append(Path(config.gpio.profiles_dir) / f"{config.gpio.profile}.yaml")
        if config.audio.chime_file:
            files.append(Path(config.audio.chime_file))
        identity = {
            "link_version": LINK_VERSION,
            "request": request._asdict(),
            "voice": schema.to_plain(voice, mask_secrets=False),
            "audio": schema.to_plain(config.audio, mask_secrets=False),
            "profile": [config.gpio.profile, config.gpio.profiles_dir],
            "files": [_stat(path) for path in files],
            "code": _code_fingerprint(),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def get(self, link: str) -> Link | None:
        """What ``link`` holds, or None (no such link, or unreadable)."""
        try:
            key, engine_version = self._path(link).read_text(encoding="utf-8").split("\n")[:2]
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            return None
        return Link(key, engine_version)

    def put(self, link: str, target: Link) -> None:
        """Link ``link`` to ``target`` (whether or not its entry is there yet: it is written as the programme first
        plays). Raises OSError when the cache cannot be written."""
        path = self._path(link)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_text(f"{target.programme_key}\n{target.engine_version}\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def replay_to_wav(self, request: ProgrammeRequest, output: Path) -> EntryHeader | None:
        """Write the programme ``request`` names to ``output`` as a plain WAV from its cache entry, found by its
        link; None when there is none, and the programme must be made. A corrupt entry is deleted and raises
        :class:`CorruptProgramme`, after which it must be made too.

        Everything a link is named by is read here as :meth:`~radiod.node.programme.ProgrammeMaker.make` reads
        it; whatever cannot be read (an unknown voice, no espeak-ng) is a miss, left to ``make`` to report. The
        engine's version is asked for while the entry is copied, and a version other than the link's undoes the
        copy: a miss. Nothing is logged here: ``radiod speak`` gets its answer without importing ``logging``.
        """
        try:
            voice = load_voice(request.voice_id, Path(self.config.speech.voices_dir))
        except RadiodError:
            return None
        link = self.key(request, voice)
        target = self.get(link) if link is not None else None
        if link is None or target is None:
            return None
        entry = entry_path(self.directory, target.programme_key)
        try:
            file = entry.open("rb")
        except OSError:  # evicted since, or unreadable (then made again, as the programme cache does)
            return None
        versions: list[str] = []

        def ask_version() -> None:
            with contextlib.suppress(SynthesisError):  # espeak-ng cannot run: a miss, reported by make
                versions.append(espeak_version("espeak-ng"))

        asking = threading.Thread(target=ask_version, name="engine-version")
        asking.start()
        try:
            with file:
                header = copy_checked(file, output)
        except CorruptProgramme as exc:
            entry.unlink(missing_ok=True)
            raise CorruptProgramme(f"{entry}: {exc}") from None
        finally:
            asking.join()
        if versions != [target.engine_version]:  # another espeak-ng since: its speech may differ
            output.unlink(missing_ok=True)
            return None
        for used in (entry, self._path(link)):  # recently used: eviction keeps them (when it can be touched)
            with contextlib.suppress(OSError):
                os.utime(used)
        return header

    def _path(self, link: str) -> Path:
        return self.directory / f"{link}{LINK_SUFFIX}"


def _stat(path: Path) -> list[object]:
    """``path`` with its size and modification time, or with None when it is not there."""
    try:
        st = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path), st.st_size, st.st_mtime_ns]


@functools.cache
def _code_fingerprint() -> str:
    """A hash of radiod's modules and the audio libraries' (path, size, modification time): the code that makes a
    programme, as this process first found it (an upgrade while it runs does not change the code it runs)."""
    digest = hashlib.blake2b(digest_size=16)
    for folder, dirs, names in os.walk(Path(radiod.__file__).parent):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(n for n in names if n.endswith(".py")):
            digest.update(json.dumps(_stat(Path(folder) / name)).encode())
    for library in AUDIO_LIBRARIES:
        spec = find_spec(library)
        origin = spec.origin if spec is not None else None
        digest.update(json.dumps([library, _stat(Path(origin)) if origin else None]).encode())
    return digest.hexdigest()
