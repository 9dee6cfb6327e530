"""``radiod speak`` of an article, side by side with plain espeak-ng on the same text. Prints; asserts nothing.

    python bench/speak.py [--article FILE] [--repeat N]

In one run (interleaved and repeated, because other jobs share the machine; ratios use the medians):

1. raw ``espeak-ng -v vi -f ARTICLE -w out.wav``: the reference;
2. the whole ``radiod speak -f ARTICLE -o out.wav``, cold (empty speech cache) and warm (cache filled: the same
   programme made before, so replayed from the programme cache), as ratios to 1. Targets: cold <= 1.5x,
   warm <= 0.3x. Also shown: warm sentences but the programme rendered again (its programme cache emptied);
   Each variant also shows its median CPU time (user + system, all its processes): what the load of other jobs
   hardly moves, and CPU over wall says how many cores it kept busy. The cold run's CPU over the cores is the
   shortest it could take here even if every core were kept busy from start to end: its floor;
3. where the time goes: the interpreter with radiod's imports, and the speech alone (``Speaker.speak``, cold
   and warm), so what the audio path costs is the rest;
4. peak RSS of ``radiod speak -o`` for a programme of about 20 minutes (the article read over until it lasts
   that long). Target: <= 150 MB.

The article is the longest text in tests/data/ if it is article-length, else bench/data/article.txt (commune
news, about 9 minutes when read). Everything runs from this checkout (``python -m radiod.cli``).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTICLE_WORDS = 1300  # a text this long (about 9 minutes read aloud) is an article
TWENTY_MINUTES_S = 1200.0
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
# An installed node runs from byte-compiled modules (pip and the Debian package compile them); with
# PYTHONDONTWRITEBYTECODE set, every run here would compile radiod's sources again (about 0.1 s of CPU), a cost
# a node never pays. So it is dropped for the runs measured, and the output says so.
BYTECODE_NOTE = "set in this environment, dropped for the runs" if ENV.pop("PYTHONDONTWRITEBYTECODE", None) else "unset"
RADIOD = [sys.executable, "-m", "radiod.cli"]

# Peak RSS through a small launcher: on Linux a child's ru_maxrss starts at its parent's RSS at fork time, so
# forking straight from this bench process would report the bench's own size if it were larger.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""

SPEECH_ONLY = (
    "import sys; from pathlib import Path; from radiod.config import load_config; "
    "from radiod.node.programme import ProgrammeMaker; "
    "m = ProgrammeMaker(load_config(Path(sys.argv[1]))); "
    "m.speaker.speak(Path(sys.argv[2]).read_text(encoding='utf-8'), m.config.speech.voice)"
)


def default_article() -> Path:
    """The longest tests/data text if it is article-length, else the one shipped with the bench."""
    texts = sorted((ROOT / "tests" / "data" / "articles").glob("*.txt"), key=lambda p: p.stat().st_size)
    if texts and len(texts[-1].read_text(encoding="utf-8").split()) >= ARTICLE_WORDS:
        return texts[-1]
    return ROOT / "bench" / "data" / "article.txt"


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall s, CPU s of the processes it ran): the CPU time hardly moves with the load of other jobs, and CPU
    over wall says how many cores a variant kept busy. The page cache is written out first (not timed): a cold run
    leaves about 130 MB to write, and the kernel writing it during the next variant would be timed with that one."""
    os.sync()
    started, cpu = time.perf_counter(), children_cpu_s()
    fn()
    return time.perf_counter() - started, children_cpu_s() - cpu


def run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, env=ENV, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args[:4])}... failed: {(done.stderr or done.stdout).strip()[-800:]}")


def config_for(tmp: Path, name: str) -> Path:
    """A config whose state (and so speech cache) is under ``tmp/name``."""
    config = tmp / f"{name}.yaml"
    config.write_text(f"storage:\n  dir: {tmp / name}\n", encoding="utf-8")
    return config


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def peak_rss_mb(args: list[str]) -> float:
    done = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, *args], capture_output=True, text=True, env=ENV, check=True
    )
    code, rss_kb = done.stdout.split()
    if code != "0":
        raise RuntimeError(f"{args[:4]} failed: {done.stderr.strip()[-800:]}")
    return int(rss_kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--article", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    article = args.article or default_article()
    text = article.read_text(encoding="utf-8")
    print(
        f"article {article.relative_to(ROOT) if article.is_relative_to(ROOT) else article}: "
        f"{len(text.split())} words, {len(text.encode())} bytes; {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.1f}; PYTHONDONTWRITEBYTECODE {BYTECODE_NOTE}"
    )

    with tempfile.TemporaryDirectory(prefix="bench-speak-") as tmp_name:
        tmp = Path(tmp_name)
        raw_wav, out_wav = tmp / "raw.wav", tmp / "out.wav"
        cold_cfg, warm_cfg = config_for(tmp, "cold"), config_for(tmp, "warm")
        speak = [*RADIOD, "speak", "-f", str(article), "-o", str(out_wav)]

        def speak_cold() -> None:
            shutil.rmtree(tmp / "cold", ignore_errors=True)
            run([*speak, "--config", str(cold_cfg)])

        def speak_rendered() -> None:
            shutil.rmtree(tmp / "warm" / "cache" / "programmes", ignore_errors=True)
            run([*speak, "--config", str(warm_cfg)])

        def speech_cold() -> None:
            shutil.rmtree(tmp / "cold", ignore_errors=True)
            run([sys.executable, "-c", SPEECH_ONLY, str(cold_cfg), str(article)])

        variants: dict[str, Callable[[], None]] = {
            "raw espeak-ng -v vi -f ARTICLE -w out.wav": lambda: run(
                ["espeak-ng", "-v", "vi", "-f", str(article), "-w", str(raw_wav)]
            ),
            "radiod speak -f ARTICLE -o out.wav, cold cache": speak_cold,
            "radiod speak -f ARTICLE -o out.wav, warm cache": lambda: run([*speak, "--config", str(warm_cfg)]),
            "  radiod speak, warm sentences, programme rendered": speak_rendered,
            "  python -c 'import radiod.cli' (start-up)": lambda: run([sys.executable, "-c", "import radiod.cli"]),
            "  speech alone (Speaker.speak), cold cache": speech_cold,
            "  speech alone (Speaker.speak), warm cache": lambda: run(
                [sys.executable, "-c", SPEECH_ONLY, str(warm_cfg), str(article)]
            ),
        }
        run([*speak, "--config", str(warm_cfg)])  # fill the warm cache, and the page cache for everyone
        results: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for name, fn in variants.items():
                wall_s, cpu_s = timed(fn)
                results.setdefault(name, []).append(wall_s)
                cpu.setdefault(name, []).append(cpu_s)
        minutes = (wav_seconds(raw_wav) / 60, wav_seconds(out_wav) / 60)
        print(f"raw espeak-ng wrote {minutes[0]:.1f} min; radiod speak {minutes[1]:.1f} min (its voice's rate, chimes)")

        raw = statistics.median(results["raw espeak-ng -v vi -f ARTICLE -w out.wav"])
        print(f"\n{'':52} {'median s':>9} {'best s':>8} {'x raw':>7} {'CPU s':>7}")
        for name, times in results.items():
            median = statistics.median(times)
            print(f"{name:52} {median:9.3f} {min(times):8.3f} {median / raw:7.2f} {statistics.median(cpu[name]):7.3f}")
        cold = statistics.median(results["radiod speak -f ARTICLE -o out.wav, cold cache"]) / raw
        warm = statistics.median(results["radiod speak -f ARTICLE -o out.wav, warm cache"]) / raw
        print(f"radiod speak / raw espeak-ng: cold {cold:.2f}x (target <= 1.5x), warm {warm:.2f}x (target <= 0.3x)")
        cold_cpu = statistics.median(cpu["radiod speak -f ARTICLE -o out.wav, cold cache"])
        cores = os.cpu_count() or 1
        print(
            f"cold cache: {cold_cpu:.2f} s of CPU (espeak-ng's and radiod's), so at least {cold_cpu / cores:.2f} s on "
            f"{cores} cores even with every core busy all the time: {cold_cpu / cores / raw:.2f}x raw at best"
        )
        rest = statistics.median(results["  radiod speak, warm sentences, programme rendered"]) - statistics.median(
            results["  speech alone (Speaker.speak), warm cache"]
        )
        print(f"rendering and writing the WAV (programme rendered - warm speech alone): {rest:.3f} s")
        print(f"load average after the runs: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

        rss = peak_rss_mb([*speak, "--config", str(warm_cfg)])
        print(f"peak RSS, radiod speak -o of the article replayed from the programme cache: {rss:.1f} MB")
        reads = math.ceil(TWENTY_MINUTES_S / wav_seconds(out_wav))  # at least 20 minutes
        long_text = tmp / "long.txt"
        long_text.write_text("\n".join([text] * reads), encoding="utf-8")
        long_cfg = config_for(tmp, "long")
        for state in ("cold", "warm"):
            rss = peak_rss_mb([*RADIOD, "speak", "--config", str(long_cfg), "-f", str(long_text), "-o", str(out_wav)])
            print(
                f"peak RSS, radiod speak -o of a {wav_seconds(out_wav) / 60:.1f}-minute programme, {state} cache: "
                f"{rss:.1f} MB (target <= 150 MB)"
            )


if __name__ == "__main__":
    main()
