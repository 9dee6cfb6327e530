"""Peak memory and first audio for the longest valid bulletins, streamed as the daemon streams a ``now`` bulletin.
Prints; asserts nothing.

    .venv/bin/python bench/memory.py [--minutes M] [--whole]

Two bulletins, each in a fresh process with an empty speech cache (the worst case: every unit is synthesized):

1. ``digits``: a signed, in-spec ``now`` bulletin of 20 000 digits (MAX_TEXT of radiod/protocol/messages.py), which
   normalizes to one 84 000-character "sentence" of about 80 minutes of speech. Read whole it took the daemon
   from 78 MB to 1.19 GB (issue 11, item 2).
2. ``text``: MAX_TEXT characters of real prose, all distinct (our own articles and bulletins in tests/data and
   bench/data), about 28 minutes of speech.

Path: ``ProgrammeMaker.make(text, voice, stream=True)``, what the daemon does for a ``now`` or emergency bulletin
(the Speaker's stream feeding a StreamingProgramme), with the node's default config (mock board, default
voice); the programme's blocks are taken as fast as they are computed instead of in real time, so the whole
bulletin goes through in a few minutes (``--minutes`` stops earlier). ``--whole``: ``stream=False`` instead, what
the daemon does for a scheduled bulletin and ``radiod speak`` for any (the whole speech synthesized first).

Figures per bulletin:
- peak RSS: VmHWM of the process (its own high-water mark; not the bench's). Target <= 150 MB.
- first block: seconds from ``make()`` (the amplifier goes on then) to the first block of audio, the chime.
- first speech: seconds from ``make()`` until the first sentence is laid out; it is heard after the board's
  warm-up, the chime and a pause, so it is in time when it is ready by then. Target <= 2 s for the streamed path;
  with ``--whole`` it is the synthesis time, which a scheduled bulletin spends ``schedule.prerender_s`` ahead.

Figures on the 2-core development machine (shared with other jobs), empty cache, 2026-12-06:
  stream  digits (81 min): peak 92 MB, first speech 0.33 s; text (25 min): peak 84 MB, first speech 0.22 s.
  whole   digits: peak 132 MB, synthesis 12.4 s; text: peak 94 MB, 4.9 s.
Before, every clip of the programme was kept while it played (for the repeats and a replay after a pre-emption;
81 minutes of int16 speech at 22050 Hz are 205 MB): stream digits 282 MB, text 130 MB; whole digits 326 MB
(synthesis 5.2 s, its sentences in parallel), text 160 MB (1.7 s). Now a programme holds the clips about to play
and reads the others again from the speech cache (:func:`radiod.audio.render.render_recalled`); the whole path
synthesizes its sentences one after another into the cache, hence its longer synthesis. Before the synthesis
units (one 84 000-character sentence), the streamed digits took 1091 MB and 49.9 s to the first speech.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [ROOT / "tests" / "data" / "articles", ROOT / "bench" / "data", ROOT / "tests" / "data" / "bulletins"]
"""Our own prose, distinct texts only: the tests' article, the bench's article, the tests' bulletins."""
PEAK_TARGET_MB = 150.0
FIRST_SPEECH_TARGET_S = 2.0


def bulletin(kind: str) -> str:
    """The bulletin text of ``kind`` (see the module doc), exactly MAX_TEXT characters."""
    from radiod.protocol.messages import MAX_TEXT

    if kind == "digits":
        digits = random.Random(20_000)  # not periodic: every synthesis unit is new text
        return "".join(digits.choice("0123456789") for _ in range(MAX_TEXT))
    prose = "\n".join(p.read_text(encoding="utf-8") for folder in TEXTS for p in sorted(folder.glob("*.txt")))
    if len(prose) < MAX_TEXT:  # repeated text would share its clips and understate the memory
        raise FileNotFoundError(f"{MAX_TEXT} characters of distinct prose in {[str(f) for f in TEXTS]}")
    return prose[:MAX_TEXT]


def high_water_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(kind: str, cache_dir: str, minutes: float, *, stream: bool) -> None:
    """Stream one bulletin through a ProgrammeMaker and print its figures as JSON (run in a fresh process)."""
    from radiod.config import Config, StorageConfig
    from radiod.node.programme import ProgrammeMaker

    config = replace(Config(), storage=StorageConfig(dir=cache_dir, cache_dir=cache_dir))
    text = bulletin(kind)
    maker = ProgrammeMaker(config)
    voice = config.speech.voice
    baseline = high_water_mb()
    started = time.monotonic()
    programme = maker.make(text, voice, stream=stream)
    first_block = first_speech = None
    samples = 0
    limit = minutes * 60 * programme.rate
    for block in programme.blocks(8192):
        now = time.monotonic() - started
        first_block = now if first_block is None else first_block
        if first_speech is None and any(span.kind == "speech" for span in programme.spans):
            first_speech = now
        samples += len(block)
        if samples >= limit:
            break
    elapsed = time.monotonic() - started
    figures = {
        "kind": kind,
        "chars": len(text),
        "units": len(maker.speaker.sentences(text, voice)),
        "audio_s": samples / programme.rate,
        "elapsed_s": elapsed,
        "baseline_mb": baseline,
        "peak_mb": high_water_mb(),
        "first_block_s": first_block,
        "first_speech_s": first_speech,
        "speech_due_s": maker.profile.amplifier.warmup_s + _speech_offset_s(programme),
    }
    print(json.dumps(figures))


def _speech_offset_s(programme: object) -> float:
    """Seconds from the programme's first sample to its first speech sample (chime and pause)."""
    spans = getattr(programme, "spans", ())
    speech = [span.start for span in spans if span.kind == "speech"]
    return speech[0] / programme.rate if speech else float("nan")  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1e9, help="stop each bulletin after this much audio")
    parser.add_argument("--whole", action="store_true", help="synthesize the whole speech first (stream=False)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "CACHE_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.minutes, stream=not args.whole)
        return
    path = "make(stream=False), for a scheduled bulletin" if args.whole else "make(stream=True), for a now bulletin"
    print(f"path: ProgrammeMaker.{path}; empty cache; blocks taken as fast as computed; one process per bulletin")
    for kind in ("digits", "text"):
        with tempfile.TemporaryDirectory(prefix="radiod-bench-memory-") as tmp:
            done = subprocess.run(
                [sys.executable, __file__, "--minutes", str(args.minutes), *(["--whole"] if args.whole else []),
                 "--child", kind, tmp],
                capture_output=True, text=True, check=False, cwd=ROOT,
            )  # fmt: skip
        if done.returncode != 0:
            print(f"{kind}: failed: {done.stderr.strip()[-2000:]}")
            continue
        f = json.loads(done.stdout.strip().splitlines()[-1])
        peak_verdict = "met" if f["peak_mb"] <= PEAK_TARGET_MB else "MISSED"
        first_speech = f["first_speech_s"]
        speech_verdict = "met" if first_speech is not None and first_speech <= FIRST_SPEECH_TARGET_S else "MISSED"
        print(f"{kind:>6}: {f['chars']} chars, {f['units']} synthesis units, {f['audio_s'] / 60:.1f} min of audio "
              f"rendered in {f['elapsed_s']:.1f} s")  # fmt: skip
        print(f"        peak RSS {f['peak_mb']:.0f} MB (at start {f['baseline_mb']:.0f} MB) / target "
              f"{PEAK_TARGET_MB:g} MB ({peak_verdict})")  # fmt: skip
        print(f"        first block {f['first_block_s']:.2f} s, first speech ready {f['first_speech_s']:.2f} s after "
              f"make() / target {FIRST_SPEECH_TARGET_S:g} s ({speech_verdict}); it is due at "
              f"{f['speech_due_s']:.2f} s (warm-up, chime, pause)")  # fmt: skip


if __name__ == "__main__":
    main()
