"""Speech pipeline speed and memory, side by side with plain espeak-ng on the same text. Prints; asserts nothing.

    .venv/bin/python bench/speak.py [--article FILE] [--repeat N] [--voice ID]

1. A whole corpus article (the longest, unless --article): raw ``espeak-ng -v vi -f article -w out.wav`` (the
   issue's reference, espeak's default rate) and the same at the voice's rate; the Speaker cold (empty cache),
   warm (a new Speaker on the filled cache) and without a cache; and the alternative the design rejected, one
   espeak-ng run per sentence. Runs are interleaved and repeated because other jobs share the machine; the
   ratios use the medians. Targets: cold <= 1.5x raw, warm <= 0.1x raw.
2. ``radiod speak -o out.wav`` end to end on the same article, cold and warm, when the CLI works.
3. Peak RSS (os.wait4 of a child process) for about 9 minutes of speech: the speech pipeline alone, and
   ``radiod speak``. Target: <= 80 MB for ``radiod speak``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from radiod.speech.speaker import Speaker, split_sentences
from radiod.speech.tts import engine_for

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data"  # the tests' texts: articles/, bulletins/
VOICES = ROOT / "voices"
RADIOD = ROOT / ".venv" / "bin" / "radiod"
NINE_MINUTES_S = 540.0


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True)


def per_sentence(text: str, voice_id: str, workers: int) -> None:
    """The rejected design: one espeak-ng process per sentence, ``workers`` at a time."""
    voice = Speaker(VOICES, None).voice(voice_id)
    engine = engine_for(voice)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda s: engine.synthesize(s, voice, 60.0), split_sentences(text)))


# Peak RSS through a small launcher: on Linux a child's ru_maxrss starts at its parent's RSS at fork time, so
# forking straight from this (large) bench process would report the bench's own size.
LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, time.perf_counter() - started)
"""


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of running ``args``, counting the processes it waits for."""
    done = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *args], capture_output=True, text=True, check=True)
    code, rss_kb, wall = done.stdout.split()
    if code != "0":
        raise RuntimeError(f"{args[0]} failed: {done.stderr.strip()[-500:]}")
    return float(wall), int(rss_kb) / 1024


def radiod_speak_problem(tmp: Path) -> str | None:
    """Why ``radiod speak`` cannot be measured here, or None when a short text speaks fine."""
    if not RADIOD.exists():
        return f"{RADIOD} is not installed"
    probe = subprocess.run(
        [str(RADIOD), "speak", "--config", str(radiod_config(tmp, "probe")), "Xin chào.", "-o", str(tmp / "probe.wav")],
        check=False,
        capture_output=True,
        text=True,
    )
    return None if probe.returncode == 0 else f"it fails: {(probe.stderr or probe.stdout).strip()[:200]}"


def radiod_config(tmp: Path, name: str) -> Path:
    """A config whose state (and so speech cache) is under ``tmp/name``; ``radiod speak --config`` reads it."""
    config = tmp / f"{name}.yaml"
    config.write_text(f"storage:\n  dir: {tmp / name}\n", encoding="utf-8")
    return config


def nine_minutes_of_text(speaker: Speaker, voice_id: str) -> str:
    """Corpus paragraphs, in order, until their speech lasts about nine minutes."""
    paragraphs = [
        p for f in sorted((CORPUS / "articles").glob("*.txt")) for p in f.read_text(encoding="utf-8").splitlines()
    ]
    text, spoken = [], 0.0
    for paragraph in paragraphs:
        if spoken >= NINE_MINUTES_S:
            break
        text.append(paragraph)
        spoken += sum(c.duration_s for c in speaker.speak(paragraph, voice_id))
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--article", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--voice", default="vi-north")
    args = parser.parse_args()
    article = args.article or max((CORPUS / "articles").glob("*.txt"), key=lambda p: p.stat().st_size)
    text = article.read_text(encoding="utf-8")
    speaker = Speaker(VOICES, None)
    voice = speaker.voice(args.voice)
    workers = os.cpu_count() or 1
    sentences = speaker.sentences(text, args.voice)
    print(
        f"article {article.name}: {len(text.encode())} bytes, {len(sentences)} sentences; "
        f"voice {voice.id} (espeak-ng -v {voice.voice} -s {voice.rate}); {workers} cores"
    )

    with tempfile.TemporaryDirectory(prefix="bench-speak-") as tmp_name:
        tmp = Path(tmp_name)
        out = tmp / "raw.wav"
        cache = tmp / "cache"
        results: dict[str, list[float]] = {}

        def cold() -> None:
            shutil.rmtree(cache, ignore_errors=True)
            Speaker(VOICES, cache).speak(text, args.voice)

        variants: dict[str, Callable[[], object]] = {
            "raw espeak-ng -v vi (default rate)": lambda: run(
                ["espeak-ng", "-v", "vi", "-f", str(article), "-w", str(out)]
            ),
            f"raw espeak-ng at the voice's rate {voice.rate}": lambda: run(
                [
                    "espeak-ng",
                    "-v",
                    voice.voice,
                    "-s",
                    str(voice.rate),
                    "-p",
                    str(voice.pitch),
                    "-f",
                    str(article),
                    "-w",
                    str(out),
                ]
            ),
            "Speaker cold cache": cold,
            "Speaker warm cache, new Speaker": lambda: Speaker(VOICES, cache).speak(text, args.voice),
            "Speaker warm cache, same Speaker (daemon)": lambda: daemon.speak(text, args.voice),
            "Speaker no cache": lambda: Speaker(VOICES, None).speak(text, args.voice),
            "Speaker no cache, 1 worker": lambda: Speaker(VOICES, None, workers=1).speak(text, args.voice),
            f"one process per sentence, {workers} workers": lambda: per_sentence(text, args.voice, workers),
            "one process per sentence, 1 worker": lambda: per_sentence(text, args.voice, 1),
        }
        speak_problem = radiod_speak_problem(tmp)
        if speak_problem is None:
            e2e_cold, e2e_warm = radiod_config(tmp, "cold"), radiod_config(tmp, "warm")
            e2e = [str(RADIOD), "speak", "--voice", args.voice, "--no-chime", "-f", str(article), "-o", str(out)]

            def speak_cold() -> None:
                shutil.rmtree(tmp / "cold", ignore_errors=True)
                run([*e2e, "--config", str(e2e_cold)])

            run([*e2e, "--config", str(e2e_warm)])  # fill the warm cache
            variants["radiod speak -o, cold cache"] = speak_cold
            variants["radiod speak -o, warm cache"] = lambda: run([*e2e, "--config", str(e2e_warm)])
        cold()  # fill the warm cache, and warm up the page cache for everyone
        daemon = Speaker(VOICES, cache)
        daemon.speak(text, args.voice)
        for _ in range(args.repeat):
            for name, fn in variants.items():
                results.setdefault(name, []).append(timed(fn))

        raw = statistics.median(results["raw espeak-ng -v vi (default rate)"])
        print(f"\n{'':48} {'median s':>9} {'best s':>8} {'x raw':>7}   (x raw = median / raw median)")
        for name, times in results.items():
            median = statistics.median(times)
            print(f"{name:48} {median:9.3f} {min(times):8.3f} {median / raw:7.2f}")
        print("targets: Speaker cold <= 1.5x raw, warm <= 0.1x raw")
        print(f"(normalizing and splitting alone: {timed(lambda: speaker.sentences(text, args.voice)):.3f} s)")

        print("\npeak RSS, about nine minutes of speech:")
        nine = tmp / "nine.txt"
        nine.write_text(nine_minutes_of_text(Speaker(VOICES, tmp / "probe-cache"), args.voice), encoding="utf-8")
        pipeline = (
            "import sys; from pathlib import Path; from radiod.speech.speaker import Speaker; "
            "clips = Speaker(Path(sys.argv[1]), Path(sys.argv[2])).speak(Path(sys.argv[3]).read_text(), sys.argv[4]); "
            "print(sum(c.duration_s for c in clips))"
        )
        probe = subprocess.run(
            [sys.executable, "-c", pipeline, str(VOICES), str(tmp / "nine-cache"), str(nine), args.voice],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"  text {len(nine.read_bytes())} bytes, {float(probe.stdout) / 60:.1f} min of speech")
        for state in ("cold", "warm"):
            if state == "cold":
                shutil.rmtree(tmp / "nine-cache", ignore_errors=True)
            wall, rss = peak_rss_mb(
                [sys.executable, "-c", pipeline, str(VOICES), str(tmp / "nine-cache"), str(nine), args.voice]
            )
            print(f"  speech pipeline (python -c Speaker.speak), {state}: {rss:6.1f} MB peak RSS, {wall:.2f} s")
        if speak_problem is None:
            config = radiod_config(tmp, "nine")
            for state in ("cold", "warm"):
                if state == "cold":
                    shutil.rmtree(tmp / "nine", ignore_errors=True)
                wall, rss = peak_rss_mb(
                    [
                        str(RADIOD),
                        "speak",
                        "--config",
                        str(config),
                        "--voice",
                        args.voice,
                        "-f",
                        str(nine),
                        "-o",
                        str(out),
                    ]
                )
                print(f"  radiod speak -o out.wav, {state}: {rss:6.1f} MB peak RSS, {wall:.2f} s (target <= 80 MB)")
        else:
            print(f"  radiod speak: not measured, {speak_problem}")


if __name__ == "__main__":
    main()
