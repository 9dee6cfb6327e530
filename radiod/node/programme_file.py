"""The file of one finished programme in the programme cache: its format, its check, its copy to a plain WAV.

An entry is a 16-bit mono WAV with one extra chunk (``rdpg``: a CRC-32 of the samples, the speech's measured
loudness and gain) before its samples, so any player can open it. This module knows the bytes and nothing of
numpy, so that ``radiod speak -o`` can replay a programme it made before without importing the audio stack
(:mod:`radiod.node.programme_index`); :mod:`radiod.node.programme_cache` builds the cache on it.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
from pathlib import Path
from typing import BinaryIO, NamedTuple

from zlib_ng.zlib_ng import crc32  # zlib's CRC-32, several times faster (SIMD; the CRC instructions of a Pi's Arm)

READ_BYTES = 1 << 19
"""Read at a time when checking or playing an entry (512 kB)."""

# RIFF/WAVE header with an 'rdpg' chunk (CRC-32 of the samples, speech LUFS, gain dB) before 'data'; 72 bytes.
HEADER = struct.Struct("<4sI4s4sIHHIIHH4sIIdd4sI")
_CHECK_CHUNK = b"rdpg"
_PLAIN_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")  # a plain 16-bit mono WAV's 44 bytes, as the wave module writes


class CorruptProgramme(ValueError):
    """A programme file that is not a complete entry written by the programme cache."""


class EntryHeader(NamedTuple):
    """What an entry's header says of it (a NamedTuple, as :mod:`radiod.node.programme_index` explains)."""

    rate: int
    n_samples: int
    crc: int
    speech_lufs: float
    gain_db: float


def entry_path(directory: Path, key: str) -> Path:
    """Where the entry ``key`` lives in the programmes folder ``directory``."""
    return directory / f"{key}.wav"


def header_bytes(rate: int, crc: int, speech_lufs: float, gain_db: float, size: int) -> bytes:
    """The header of an entry of ``size`` bytes of samples."""
    return HEADER.pack(
        b"RIFF", HEADER.size - 8 + size, b"WAVE",
        b"fmt ", 16, 1, 1, rate, 2 * rate, 2, 16,
        _CHECK_CHUNK, 20, crc, speech_lufs, gain_db,
        b"data", size,
    )  # fmt: skip


def read_header(file: BinaryIO) -> EntryHeader:
    """The header of an open entry, checked against the file's length (not yet the CRC: :func:`check_samples`)."""
    file.seek(0)
    header = file.read(HEADER.size)
    if len(header) < HEADER.size:
        raise CorruptProgramme(f"{len(header)} bytes, shorter than the {HEADER.size}-byte header")
    values = HEADER.unpack(header)
    rate, crc, speech_lufs, gain_db, size = values[7], values[13], values[14], values[15], values[17]
    if rate <= 0 or size % 2 or header != header_bytes(rate, crc, speech_lufs, gain_db, size):
        raise CorruptProgramme("not a radiod programme cache header")
    on_disk = os.fstat(file.fileno()).st_size
    if on_disk != HEADER.size + size:
        raise CorruptProgramme(f"{on_disk} bytes, but the header announces {size} bytes of samples")
    return EntryHeader(rate, size // 2, crc, speech_lufs, gain_db)


def check_samples(fd: int, header: EntryHeader) -> None:
    """Raise :class:`CorruptProgramme` unless the samples of the entry open as ``fd`` match their CRC. Reads by
    offset (``pread``), so another thread may copy from the same file meanwhile; zlib lets go of the GIL."""
    running, done, size = 0, 0, 2 * header.n_samples
    buffer = bytearray(READ_BYTES)
    while done < size:
        n = os.preadv(fd, [buffer], HEADER.size + done)
        if n == 0:
            raise CorruptProgramme(f"the samples end at byte {done} of {size}")
        running = crc32(memoryview(buffer)[: min(n, size - done)], running)
        done += n
    if running != header.crc:
        raise CorruptProgramme("the samples do not match their checksum")


def check(file: BinaryIO) -> EntryHeader:
    """The header of an open entry after checking header, length and CRC."""
    header = read_header(file)
    check_samples(file.fileno(), header)
    return header


def write_plain_wav(fd: int, header: EntryHeader, path: Path) -> None:
    """The entry open as ``fd`` as a plain 16-bit mono WAV at ``path``, the same bytes
    :func:`~radiod.audio.pcm.write_wav_blocks` writes; the samples are copied file to file by the kernel.

    An existing file at ``path`` is written over in place and then cut to length, not emptied first: a technician
    writes the same ``out.wav`` again and again, and the kernel then reuses its pages instead of freeing tens of
    megabytes and taking them again (half the time of the copy).
    """
    size = 2 * header.n_samples
    plain = _PLAIN_HEADER.pack(
        b"RIFF", _PLAIN_HEADER.size - 8 + size, b"WAVE",
        b"fmt ", 16, 1, 1, header.rate, 2 * header.rate, 2, 16,
        b"data", size,
    )  # fmt: skip
    out = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        os.pwrite(out, plain, 0)
        done = 0
        while done < size:
            at = _PLAIN_HEADER.size + done
            try:
                copied = os.copy_file_range(fd, out, size - done, HEADER.size + done, at)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                copied = os.pwrite(out, os.pread(fd, min(size - done, READ_BYTES), HEADER.size + done), at)
            if copied == 0:  # checked when opened: only a failing card gets here
                raise OSError(f"programme cache entry ended at byte {done} of {size}")
            done += copied
        os.ftruncate(out, _PLAIN_HEADER.size + size)
    finally:
        os.close(out)


def copy_checked(file: BinaryIO, path: Path) -> EntryHeader:
    """Write the entry open as ``file`` to ``path`` as a plain WAV, checking its CRC on a second core meanwhile (the
    check and the copy cost about the same); a corrupt entry raises :class:`CorruptProgramme` and leaves no file at
    ``path``."""
    header = read_header(file)
    failure: list[BaseException] = []

    def checked() -> None:
        try:
            check_samples(file.fileno(), header)
        except (CorruptProgramme, OSError) as exc:
            failure.append(exc)

    checking = threading.Thread(target=checked, name="programme-check")
    checking.start()
    try:
        write_plain_wav(file.fileno(), header, path)
    finally:
        checking.join()
    if failure:
        path.unlink(missing_ok=True)
        if isinstance(failure[0], CorruptProgramme):
            raise failure[0]
        raise CorruptProgramme(f"cannot read it: {failure[0]}")
    return header
