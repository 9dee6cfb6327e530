"""Vietnamese text normalization: the spoken form of a bulletin (placeholder; see issue on normalization)."""

from __future__ import annotations

import unicodedata


def normalize(text: str, region: str = "north", lexicon: object | None = None) -> str:
    """Return the spoken form of ``text`` for a voice of ``region``."""
    return unicodedata.normalize("NFC", text)
