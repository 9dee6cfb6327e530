"""How many sentences per second the normalizer reads, on the bulletin sentences of the test cases.

Run:  .venv/bin/python bench/normalize.py [--region south] [--rounds 7]
The sentences are the inputs of tests/data/normalize/ (the core cases and every domain file), split on
. ! ? ; and line ends, so a clean checkout has everything it needs. To add a corpus of real articles, name a
folder of .txt files (searched recursively) in RADIOD_EXTRA_CORPUS; its sentences are timed separately too.
The lexicon is loaded (and its rules compiled) before timing, as the daemon does once at start-up.
The target is 5,000 sentences/s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from pathlib import Path

from radiod.speech.normalize import default_lexicon, normalize

CASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "normalize"
CORPUS_ENV = "RADIOD_EXTRA_CORPUS"
TARGET = 5000


def split(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?;])\s+|\n+", text) if s.strip()]


def case_sentences() -> list[str]:
    """The input column of every case file: the core set (its third column) and the domains (second)."""
    items = []
    for path in sorted(CASES.glob("**/*.tsv")):
        column = 2 if path.name == "core.tsv" else 1
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            if line.startswith("#") or len(fields) <= column or fields[0] in ("category", "region"):
                continue
            items += split(fields[column])
    return items


def corpus_sentences(folder: Path) -> list[str]:
    return split("\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("**/*.txt"))))


def measure(name: str, items: list[str], region: str, rounds: int) -> None:
    lexicon = default_lexicon()
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for sentence in items:
            normalize(sentence, region, lexicon)
        rates.append(len(items) / (time.perf_counter() - start))
    chars = sum(len(s) for s in items) / len(items)
    print(f"{name}: {len(items)} sentences (mean {chars:.0f} characters), region {region}")
    print(f"  median {statistics.median(rates):,.0f} sentences/s, best {max(rates):,.0f}, worst {min(rates):,.0f}"
          f" over {rounds} rounds (target {TARGET:,})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="north", choices=("north", "central", "south"))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    normalize("khởi động 1", args.region, default_lexicon())  # compile the rules before timing
    measure(f"test cases in {CASES}", case_sentences(), args.region, args.rounds)
    extra = os.environ.get(CORPUS_ENV)
    if extra:
        measure(f"corpus {extra}", corpus_sentences(Path(extra)), args.region, args.rounds)


if __name__ == "__main__":
    main()
