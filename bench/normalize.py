"""How many sentences per second the normalizer reads, on the real articles of the shared corpus.

Run:  .venv/bin/python bench/normalize.py [corpus_dir] [--region south]
The sentences are the corpus articles split on . ! ? ; and line ends; the lexicon is loaded (and its rules
compiled) before timing, as the daemon does once at start-up. The target is 2000 sentences/s.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

from radiod.speech.normalize import default_lexicon, normalize

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"  # shared/ lies beside the checkout


def sentences(corpus: Path) -> list[str]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted((corpus / "articles").glob("*.txt")))
    return [s.strip() for s in re.split(r"(?<=[.!?;])\s+|\n+", text) if s.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--region", default="north", choices=("north", "central", "south"))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    items = sentences(args.corpus)
    lexicon = default_lexicon()
    normalize("khởi động 1", args.region, lexicon)  # compile the rules before timing

    rates = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for sentence in items:
            normalize(sentence, args.region, lexicon)
        rates.append(len(items) / (time.perf_counter() - start))
    chars = sum(len(s) for s in items) / len(items)
    print(f"{len(items)} sentences (mean {chars:.0f} characters) from {args.corpus / 'articles'}, region {args.region}")
    print(f"median {statistics.median(rates):,.0f} sentences/s, best {max(rates):,.0f}, worst {min(rates):,.0f}"
          f" over {args.rounds} rounds (target 2,000)")


if __name__ == "__main__":
    main()
