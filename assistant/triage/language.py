"""Which language a message is written in (lingua, offline, restricted to the languages we serve).

The embedding model reads English only, so a message in another language gets its
referral (and, with no warning sign, a short reply) in that language. Very short or
ambiguous text counts as English: "ok", "12-3-30?" and "bird dog pls" say too little.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from assistant.triage.policy import LANGUAGES

MIN_WORDS = 3
MIN_CONFIDENCE = 0.5


@cache
def _detector() -> Any:
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, code.upper()) for code in LANGUAGES]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


_lock = threading.Lock()


def detect_language(text: str) -> str:
    """The ISO 639-1 code of `text` among LANGUAGES; "en" when unsure."""
    if len(text.split()) < MIN_WORDS:
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
