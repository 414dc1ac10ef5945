"""A second reading of a clause: its clinical words followed by their everyday ones.

The triage model learned signs mostly from everyday words. A clinician's words it has never
seen ("perineal hypoaesthesia", "faecal incontinence", "dysarthria") sit far from those in the
sentence embedding and share no character n-grams with them, so a model that never saw
clinical writing misses them. The policy's `lay_words` (a reviewable list,
`rules/clinical_lay_words.yaml`) gives each such word its everyday companions, and the triager
scores a clause as written and as read with them, keeping for each sign the larger of the two
probabilities: no score is lowered, nothing of the person's own words is lost, and a clause
without a listed word is read once, as it is.

Only words the model met fewer than `lay_words_seen` times in its training messages are read
again: the words everyday writers use ("sciatica", "osteoporosis") it learned as written.

The companions go right after the word, in brackets, so a negation or a hypothetical cue
before the word still governs them ("denies saddle anaesthesia (numb groin and bottom)").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping

from assistant.triage.model import fold


class LayWords:
    """Reads "reduced perineal sensation" as "reduced perineal (groin) sensation".

    Example:
        >>> LayWords({"perineal": "groin"})("Reduced perineal sensation")
        'Reduced perineal (groin) sensation'
    """

    def __init__(self, words: Mapping[str, str], seen: Collection[str] = ()) -> None:
        """`seen`: listed words the model already learned (see `seen`), read as written."""
        folded = {fold(k).strip(): v.strip() for k, v in words.items() if k.strip() and v.strip()}
        self.words = {k: v for k, v in folded.items() if k not in seen}
        keys = sorted(self.words, key=len, reverse=True)  # the longest phrase wins
        self._pattern = re.compile(rf"(?<!\w)(?:{'|'.join(map(re.escape, keys))})(?!\w)") if keys else None

    def __bool__(self) -> bool:
        return bool(self.words)

    def seen(self, texts: Iterable[str], at_least: int) -> frozenset[str]:
        """The listed words found in at least `at_least` of the texts (the model's training
        messages): words it learned as written need no companions, and reading them with
        everyday ones only loses what it learned of their context ("sciatica" said in a
        question, "osteoporosis" in a history)."""
        if self._pattern is None:
            return frozenset()
        found = Counter(k for t in texts for k in set(self._pattern.findall(fold(t))))
        return frozenset(k for k, n in found.items() if n >= at_least)

    def __call__(self, text: str) -> str:
        """The text with each listed word's companions after it; the text itself if none is listed."""
        if self._pattern is None or not self._pattern.search(fold(text)):
            return text  # most texts: one search, no character-by-character offsets
        folded, where = _folded_with_offsets(text)
        ends: list[tuple[int, str]] = []
        for match in self._pattern.finditer(folded):
            ends.append((where[match.end() - 1] + 1, self.words[match.group(0)]))
        out, last = [], 0
        for end, companions in ends:
            out.append(f"{text[last:end]} ({companions})")
            last = end
        return "".join(out) + text[last:]


def _folded_with_offsets(text: str) -> tuple[str, list[int]]:
    """`model.fold` of the text, and for each folded character the index it came from."""
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for c in fold(ch):
            chars.append(c)
            where.append(i)
    return "".join(chars), where
