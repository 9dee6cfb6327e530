"""Each installed voice on this machine: real-time factor, first-audio latency, peak RSS. Prints; asserts nothing.

    .venv/bin/python bench/voices.py [--voices DIR] [--text FILE] [--with-test-model]

Each voice is measured in a fresh child process, so the peak RSS (``os.wait4`` of the child) is what a node
running that voice holds, model included, and "cold" includes loading the model:

* RTF: synthesis time over speech time, one sentence at a time through the engine (what a stream does); below 1
  the voice keeps up with real time. A medium Piper voice is about 1 on a Pi 4; espeak-ng is far below.
* first audio: ``Speaker.stream`` until its first clip, no cache: cold (new process, model loaded on the way)
  and warm (model loaded). This is the silence before a ``now`` bulletin starts, beside the amplifier warm-up.
* speak: ``Speaker.speak`` of the whole text, no cache, warm: what pre-rendering a scheduled bulletin costs.

With no Piper model installed, ``--with-test-model`` adds the tests' tiny model (tests/piper_model.py, needs the
``onnx`` package) to a copy of the voices: its figures are Piper's and ONNX Runtime's overhead, not a voice's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOICES = ROOT / "voices"
BULLETIN = ROOT / "tests" / "data" / "bulletins" / "02-canh-bao-bao.txt"

# Peak RSS through a small launcher: on Linux a child's ru_maxrss starts at its parent's RSS at fork time, so
# forking straight from this process would report this process's own size.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print("RSS_KB", os.waitstatus_to_exitcode(status), usage.ru_maxrss, file=sys.stderr)
"""


def child(voice_id: str, voices: Path, text: str) -> None:
    """Measure one voice in this (fresh) process and print the figures as JSON."""
    from radiod.speech.speaker import Speaker
    from radiod.speech.tts import engine_for

    started = time.perf_counter()
    speaker = Speaker(voices, None)
    next(iter(speaker.stream(text, voice_id)))
    cold_first_s = time.perf_counter() - started
    started = time.perf_counter()
    next(iter(speaker.stream(text, voice_id)))
    warm_first_s = time.perf_counter() - started

    voice = speaker.voice(voice_id)
    engine = engine_for(voice)
    synthesis_s = speech_s = 0.0
    for sentence in speaker.sentences(text, voice_id):
        started = time.perf_counter()
        pcm = engine.synthesize(sentence, voice, 120.0)
        synthesis_s += time.perf_counter() - started
        speech_s += len(pcm.samples) / pcm.rate
    started = time.perf_counter()
    clips = speaker.speak(text, voice_id)
    speak_s = time.perf_counter() - started
    print(json.dumps({
        "rtf": synthesis_s / speech_s,
        "cold_first_s": cold_first_s,
        "warm_first_s": warm_first_s,
        "speak_s": speak_s,
        "audio_s": sum(len(c.samples) / c.rate for c in clips),
        "sentences": len(clips),
        "fallbacks": speaker.stats.fallbacks,
    }))  # fmt: skip


def measure(voice_id: str, voices: Path, text_file: Path) -> dict[str, float]:
    args = [sys.executable, __file__, "--child", voice_id, "--voices", str(voices), "--text", str(text_file)]
    done = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *args], capture_output=True, text=True, check=False)
    rss = next((line.split() for line in done.stderr.splitlines() if line.startswith("RSS_KB")), None)
    if rss is None or rss[1] != "0":
        raise RuntimeError(f"{voice_id}: the measuring process failed: {done.stderr.strip()[-600:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "rss_mb": int(rss[2]) / 1024}


def add_test_model(voices: Path, into: Path) -> Path:
    """A copy of ``voices`` with the tests' tiny Piper model installed as voice ``vi-test-x-low``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from piper_model import build_voice

    from radiod.speech.voice_install import install

    shutil.copytree(voices, into)
    install(build_voice(into / "download"), into, region="north")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", type=Path, default=VOICES, help="the voices folder (default: the shipped one)")
    parser.add_argument("--text", type=Path, help=f"the text to read (default: {BULLETIN.name})")
    parser.add_argument("--with-test-model", action="store_true", help="add the tests' tiny Piper model")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    text_file = args.text or BULLETIN
    text = text_file.read_text(encoding="utf-8")
    if args.child:
        child(args.child, args.voices, text)
        return

    from radiod.errors import VoiceError
    from radiod.speech.tts import engine_for
    from radiod.speech.tts.piper import memory_warning
    from radiod.speech.voices import load_voices

    with tempfile.TemporaryDirectory(prefix="bench-voices-") as tmp:
        voices = add_test_model(args.voices, Path(tmp) / "voices") if args.with_test_model else args.voices
        print(f"text: {text_file} ({len(text.encode())} bytes); voices: {args.voices}")
        print(f"{'voice':<20} {'engine':<10} {'RTF':>6} {'first cold':>11} {'first warm':>11} "
              f"{'speak':>8} {'audio':>8} {'peak RSS':>9}")  # fmt: skip
        for voice in load_voices(voices):
            try:
                engine_for(voice)
            except VoiceError as exc:
                print(f"{voice.id:<20} {voice.engine:<10} unavailable: {exc}")
                continue
            r = measure(voice.id, voices, text_file)
            note = f"  (fell back {r['fallbacks']:.0f} times)" if r["fallbacks"] else ""
            print(f"{voice.id:<20} {voice.engine:<10} {r['rtf']:>6.3f} {r['cold_first_s']:>10.2f}s "
                  f"{r['warm_first_s']:>10.3f}s {r['speak_s']:>7.2f}s {r['audio_s']:>7.1f}s "
                  f"{r['rss_mb']:>7.0f}MB{note}")  # fmt: skip
            warning = memory_warning(voice)
            if warning:
                print(f"{'':<20} memory: {warning}")


if __name__ == "__main__":
    main()
