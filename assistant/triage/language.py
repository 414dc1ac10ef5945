"""Which language a message is written in (lingua, offline, restricted to the languages we serve).

The embedding model reads English only, so a message in another language gets its
referral (and, with no warning sign, a short reply) in that language. Very short or
ambiguous text counts as English: "ok", "12-3-30?" and "bird dog pls" say too little.

Plain English skips the detector: ASCII text whose every word is among English's 25,000 most
common (wordfreq, already loaded for reading questions) is English. On the triage corpus that
is half the English messages and none of the 1,350 in other languages, and it saves loading
lingua's models (about 0.6 s) on a one-shot `ask` in English.
"""

from __future__ import annotations

import re
import threading
from functools import cache
from typing import Any

from assistant.triage.policy import LANGUAGES

MIN_WORDS = 3
MIN_CONFIDENCE = 0.5
ENGLISH_WORDS = 25_000
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@cache
def _common_english() -> frozenset[str]:
    from wordfreq import top_n_list

    return frozenset(top_n_list("en", ENGLISH_WORDS))


def plainly_english(text: str) -> bool:
    """ASCII, and every word one of English's most common: no detector needed."""
    found = _WORD.findall(text.lower())
    return text.isascii() and bool(found) and _common_english().issuperset(found)


@cache
def _detector() -> Any:
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, code.upper()) for code in LANGUAGES]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


_lock = threading.Lock()


def detect_language(text: str) -> str:
    """The ISO 639-1 code of `text` among LANGUAGES; "en" when unsure."""
    if len(text.split()) < MIN_WORDS or plainly_english(text):
        return "en"
    with _lock:  # lingua loads language models lazily; keep that single-threaded
        values = _detector().compute_language_confidence_values(text)
    if not values:
        return "en"
    top = values[0]
    code = top.language.iso_code_639_1.name.lower()
    if code != "en" and top.value >= MIN_CONFIDENCE:
        return code
    return "en"


def warm_up() -> None:
    """Load the detector's models now (a long-running page), not on the first foreign message."""
    detect_language("me duele la espalda después de caminar en la cinta")
