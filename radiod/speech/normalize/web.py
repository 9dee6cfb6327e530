"""Web and e-mail addresses, read so a listener can type them: "thcs.xa@gmail.com" ->
"tê hát xê ét chấm xa a còng gi meo chấm com".

Each part is looked up in the lexicon's ``url_words`` (vn, gov, gmail, and the separators), then its
loanwords; run-together Vietnamese syllables are split ("bachthong" -> "bach thong"); the rest is spelled.
The scheme (https://) is not read: announcers never say it.
"""

from __future__ import annotations

import re

from radiod.speech.normalize.lexicon import Lexicon
from radiod.speech.normalize.numbers import read_digits
from radiod.speech.normalize.words import spell, split_syllables

_TLD = r"(?:vn|com|net|org|gov|edu|info|io|biz)"
URL = rf"(?:https?://)?(?:www\.)?[^\W_][\w-]*(?:\.[\w-]+)*\.{_TLD}(?![\w@])(?:/[\w\-./?=&%#]*[\w/])?"
EMAIL = r"[^\W_][\w.+-]*@[\w-]+(?:\.[\w-]+)+"

_SCHEME = re.compile(r"^https?://", re.IGNORECASE)
_PIECES = re.compile(r"([./@:_\-?=&#%+])")


def read_address(address: str, lexicon: Lexicon) -> str:
    """The spoken form of a URL or an e-mail address."""
    words = []
    for piece in _PIECES.split(_SCHEME.sub("", address)):
        if not piece:
            continue
        low = piece.lower()
        known = lexicon.url_words.get(low) or lexicon.loanwords.get(low)
        if known:
            words.append(known)
        elif piece.isdigit():
            words.append(read_digits(piece))
        elif len(piece) == 1 and not piece.isalnum():
            continue  # a separator the lexicon does not name is silent
        else:
            syllables = split_syllables(piece) if piece.isalpha() else None
            words.append(" ".join(syllables) if syllables else spell(piece, lexicon.letters))
    return " ".join(words)
