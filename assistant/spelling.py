"""How common a word is, and the common English word a typo stands for (wordfreq + rapidfuzz).

Shared by the question reader (`coverage.py`) and triage's typed-words reading
(`triage/typed_words.py`), so both read "shoud" as "should" by one rule.
"""

from __future__ import annotations

from functools import lru_cache

# A word English hardly has (Zipf < 2.5) that one edit (two in a word of 7+ letters) turns into one
# of English's most common words is a typo of it ("shoud", "streches"): it is read as that word,
# and it weighs as that word, not as a rare one ("sciatica"), which would say a topic is missing.
ENGLISH_TYPO_MAX_ZIPF = 2.5
ENGLISH_WORDS = 25_000
ENGLISH_TYPO_MIN_SCORE = 88.0  # rapidfuzz Indel similarity (0-100)


@lru_cache(maxsize=20_000)
def zipf(word: str, language: str = "en") -> float:
    """How common a word is in a language (wordfreq's Zipf scale, 0 = unseen, 8 = 'the')."""
    from wordfreq import zipf_frequency

    return float(zipf_frequency(word, language))


@lru_cache(maxsize=1)
def english_words() -> tuple[dict[int, list[str]], dict[str, int]]:
    """English's most common words by length, and each word's frequency rank (wordfreq)."""
    from wordfreq import top_n_list

    by_length: dict[int, list[str]] = {}
    rank: dict[str, int] = {}
    for i, w in enumerate(top_n_list("en", ENGLISH_WORDS)):
        if w.isalpha():
            by_length.setdefault(len(w), []).append(w)
            rank[w] = i
    return by_length, rank


@lru_cache(maxsize=8192)
def english_spelling(word: str) -> str | None:
    """The common English word a typo stands for ("shoud" -> "should"), or None."""
    if len(word) < 4 or not word.isalpha() or zipf(word) >= ENGLISH_TYPO_MAX_ZIPF:
        return None
    from rapidfuzz import fuzz, process
    from rapidfuzz.distance import OSA

    by_length, rank = english_words()
    edits = 2 if len(word) >= 7 else 1
    candidates = [w for n in range(len(word) - edits, len(word) + edits + 1) for w in by_length.get(n, ())]
    found = process.extract(word, candidates, scorer=OSA.distance, score_cutoff=edits, limit=None)
    # and still alike as strings: two edits in "bursitis" make "bursts", which is another word
    found = [f for f in found if fuzz.ratio(word, f[0]) >= ENGLISH_TYPO_MIN_SCORE]
    if not found:
        return None
    return str(min(found, key=lambda f: (f[1], rank[f[0]]))[0])
