"""What a person says they do NOT have, left out of the question that retrieval reads.

People screen themselves before they ask: "no numbness, no bladder issues, just a stiff lower
back after incline walking: what exercises help?". Triage reads the whole message (a denial is
its business, and this module never touches it). But retrieval and the coverage check read the
denied words as part of the ask: "numbness" and "bladder" are words the sources never use, so
the question was declined as "nothing about 'bladder'", and answered questions were hedged.

A phrase counts as a denial when all three hold:

* it follows a negation cue that opens its segment (segments are cut at punctuation and at
  contrast words; "I have" and the like may come first), the cues and terminators being the
  pattern backstop's reviewed NegEx ones (`negation.pre`, `negation.terminators`: "no",
  "never", "without", "don't have", "haven't had any"...). A cue inside a clause ("which
  organisation says not to rest in bed?", "without making my back worse") is part of what
  is asked, and "I don't want to quit" denies no sign; both are left alone;
* it reads like a warning sign: its sentence vector (its typos first corrected towards the
  policy's words, as the backstop patterns read them: "numbnes") is at least `SIGN_LIKENESS`
  from the closest of the policy's sign names and plain examples ("no shoes", "no warm-up",
  "no rails" and "no incline" are not).

The question is then read without those phrases; what is left must still hold a word.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.coverage import content_terms
from assistant.triage.patterns import fold

# Cosine similarity to the closest sign phrase. Set before any measurement, between what sign
# fragments scored ("fever" 0.71, "numbness or tingling" 0.75, "bladder issues" 0.78) and
# what ordinary ones did ("shoes" 0.33, "warm up" 0.44, "rails" 0.48, "incline" 0.54); on the
# high side, so a phrase in doubt stays in the question, as before this module.
SIGN_LIKENESS = 0.6
# Contrast and joining words that end a denial's scope, beside the policy's terminators
# ("no fever, just sore"; "no numbness and my back aches on the incline").
EXTRA_ENDS = ("just", "only", "and", "so", "apart", "other", "except")
# Words that may come before a segment's opening cue: who has (or hasn't) it and how it is said
# ("I have no fever", "he's not had any numbness", "with no tingling", "there's no leg pain").
LEADING = (
    *("i", "ive", "im", "he", "hes", "she", "shes", "they", "theyve", "theyre", "we", "weve", "you"),
    *("am", "is", "are", "was", "were", "have", "has", "had", "got", "with", "there", "theres"),
    *("also", "still", "definitely", "absolutely", "totally", "really", "thankfully", "luckily"),
)

_TOKEN = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_BREAK = re.compile(r"[,.;:!?()\[\]\n]|\s[-\u2013\u2014]+\s|[\u2013\u2014]")


@dataclass(frozen=True)
class Denied:
    """The question as retrieval reads it, and the phrases left out of it (as typed)."""

    text: str
    phrases: tuple[str, ...] = ()


class DenialReader:
    """Finds denied warning signs in a question (see the module's docstring)."""

    def __init__(
        self,
        embedder: Any,
        sign_phrases: Sequence[str],
        cues: Sequence[str],
        ends: Sequence[str],
        respell: Callable[[str], str] = str,
        likeness: float = SIGN_LIKENESS,
    ) -> None:
        self._embedder = embedder
        self._phrases = list(dict.fromkeys(sign_phrases))
        leading = "|".join(LEADING)
        alternatives = "|".join(f"(?:{c})" for c in cues)
        self._cue = re.compile(rf"^(?:(?:{leading}) )*(?:{alternatives})(?= |$)") if cues else None
        self._end = re.compile(rf"^(?:{'|'.join([*ends, *EXTRA_ENDS])})$")
        self._respell = respell
        self._likeness = likeness
        self._signs: np.ndarray | None = None  # the sign phrases' vectors, embedded when first needed
        self._lock = threading.Lock()

    def read(self, text: str) -> Denied:
        """`text` without the phrases in which the person denies a warning sign."""
        if self._cue is None or not self._phrases:
            return Denied(text)
        candidates = self._after_cues(text)
        if not candidates:
            return Denied(text)
        rests = [self._respell(rest) for _, _, rest in candidates]
        vectors = np.asarray(self._embedder.encode(rests), dtype=np.float32)
        likeness = (vectors @ self._sign_vectors().T).max(axis=1)
        spans = [
            (s, e) for (s, e, _), like in zip(candidates, likeness, strict=True) if like >= self._likeness
        ]
        if not spans:
            return Denied(text)
        kept, last = [], 0
        for start, end in spans:
            kept.append(text[last:start])
            last = end
        kept.append(text[last:])
        asked = re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r"\s{2,}", " ", "".join(kept)))
        asked = re.sub(r"^[\s,.;:!?\u2013\u2014-]+", "", asked).strip()
        if not content_terms(asked):  # the denial was all there was: read the question as typed
            return Denied(text)
        return Denied(asked, tuple(text[s:e].strip() for s, e in spans))

    # -- internals ---------------------------------------------------------------------

    def _after_cues(self, text: str) -> list[tuple[int, int, str]]:
        """Per segment that opens with a negation cue: the segment's span, and its words after
        the cue."""
        assert self._cue is not None
        out: list[tuple[int, int, str]] = []
        segment: list[tuple[int, int, str]] = []
        previous_end = 0

        def close() -> None:
            words = " ".join(w for _, _, w in segment)
            cue = self._cue.match(words) if segment and self._cue is not None else None
            if cue is not None:
                after = len(cue.group().split())  # the segment's first word after the cue
                if after < len(segment):
                    out.append((segment[0][0], segment[-1][1], text[segment[after][0] : segment[-1][1]]))
            segment.clear()

        for m in _TOKEN.finditer(text):
            word = fold(m.group())[0]  # as the backstop reads its cues: lower case, no apostrophes
            if _BREAK.search(text, previous_end, m.start()) or self._end.match(word):
                close()
            if not self._end.match(word):
                segment.append((m.start(), m.end(), word))
            previous_end = m.end()
        close()
        return out

    def warm_up(self) -> None:
        """Embed the sign phrases now, not on the first question that denies a sign."""
        self._sign_vectors()

    def _sign_vectors(self) -> np.ndarray:
        with self._lock:
            if self._signs is None:
                self._signs = np.asarray(self._embedder.encode(self._phrases), dtype=np.float32)
            return self._signs
