"""Vietnamese text normalization: a bulletin as a trained commune announcer reads it aloud.

espeak-ng reads digits, dates, abbreviations and symbols badly or spells them; this package rewrites them
into Vietnamese words first: "45/KH-UBND ngày 03/10/2026" -> "bốn mươi lăm kế hoạch ủy ban nhân dân ngày
mồng ba tháng mười năm hai nghìn không trăm hai mươi sáu". Rules are code (``rules.py`` and the readers it
calls); word lists are data in ``voices/lexicon*.yaml``. The result is a pure function of the text, the
voice's region and the lexicon, using the standard library only. See docs/normalization.md.
"""

from __future__ import annotations

import threading
import unicodedata
from pathlib import Path

from radiod.config import default_data_dir
from radiod.errors import RadiodError
from radiod.speech.normalize.lexicon import REGIONS, Lexicon, load_lexicon
from radiod.speech.normalize.rules import Span, rules_for

__all__ = [
    "REGIONS", "Lexicon", "Span", "default_lexicon", "default_voices_dir", "explain", "load_lexicon", "normalize",
]

_default: Lexicon | None = None
_default_lock = threading.Lock()


def default_voices_dir() -> Path:
    """Where the shipped lexicon lives: ``voices/`` in a checkout, /usr/share/radiod/voices when installed."""
    return Path(default_data_dir("voices"))


def default_lexicon() -> Lexicon:
    """The lexicon shipped in ``voices/``, loaded once per process (speech workers share it)."""
    global _default  # noqa: PLW0603 - a process-wide cache of immutable data
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = load_lexicon(default_voices_dir())
    return _default


def _check_region(region: str) -> None:
    if region not in REGIONS:
        raise RadiodError(f"unknown region {region!r} for normalization (known: {', '.join(REGIONS)})")


def normalize(text: str, region: str = "north", lexicon: Lexicon | None = None) -> str:
    """The spoken form of ``text`` for a voice of ``region`` ("north", "central" or "south").

    Sentence punctuation (. , ; : ! ? and newlines) is kept so the speech pipeline can split sentences and
    espeak-ng can pause; everything else becomes words.
    """
    _check_region(region)
    return rules_for(lexicon or default_lexicon()).normalize(unicodedata.normalize("NFC", text), region)


def explain(text: str, region: str = "north", lexicon: Lexicon | None = None) -> list[Span]:
    """Every piece of ``text`` with its spoken form and the rule that produced it (rule "text": unchanged).

    The sources concatenate to the NFC text; spoken forms are before the final clean-up of spaces and pauses.
    """
    _check_region(region)
    return rules_for(lexicon or default_lexicon()).explain(unicodedata.normalize("NFC", text), region)
