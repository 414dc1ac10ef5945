"""A second reading of a clause as it was meant: chat shorthand and English typos as words.

The sentence embedding splits a word it does not know into pieces that mean little: "cant
breth at nite" loses the very word that names a sign. A model that never saw a writer
type like that misses what it would catch spelled out (trained without the corpus's typos
and SMS-speak, it found 0.80 of their urgent-or-worse messages). So the triager also scores
each clause read with:

* chat shorthand replaced by the words it stands for (the project's one list,
  `rules/language.yaml`'s `shorthand`, which the question reader uses too: "n" -> "and",
  "b4" -> "before", "lol" dropped);
* a word English hardly has that drops a final "g" ("walkin") or is one edit from one of
  English's common words ("breth" -> "breath", `spelling.english_spelling`) read as that word.

Words the model learned as written (its word features' vocabulary: "glute", and the typos
its training messages hold) are never corrected. The triager reads only English turns this
way (`Analysis.language`), and a word commoner in another language served than in English
("bein", "gambe") is left as written even there, so a German or Italian word is never
"corrected" into an English one. Each sign's probability is the mean of the two readings'
(`Triager._read_again` says why not the larger), and the reasons still quote the
person's own words.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

from assistant.spelling import ENGLISH_TYPO_MAX_ZIPF, english_spelling, zipf

# A word at least this common in another language served (Zipf 3.5: about three per million
# words) is that language's word, not a typo of an English one ("gambe", "bein").
OTHER_LANGUAGE_ZIPF = 3.5
# "walkin" is "walking" when English has the latter at least this commonly.
DROPPED_G_ZIPF = 3.0
_TOKEN = re.compile(r"[\w/']+")
_MEMO = 50_000  # tokens remembered; beyond that each is read afresh


class TypedWords:
    """Reads "cant breth at nite n walkin hurts" as "can't breath at night and walking hurts".

    Example:
        >>> TypedWords({"n": "and", "nite": "night", "cant": "can't"})("cant breth at nite n walkin hurts")
        "can't breath at night and walking hurts"
    """

    def __init__(
        self, shorthand: Mapping[str, str], other_languages: Sequence[str] = (), learned: Collection[str] = ()
    ) -> None:
        """`learned`: words the model learned as written (`TriageModel.learned_words`), never
        corrected: "glute" is one edit from "glue", and the model knows what it means."""
        self.shorthand = {k.strip().lower(): v.strip() for k, v in shorthand.items() if k.strip()}
        self.other_languages = tuple(other_languages)
        self.learned = frozenset(learned)
        self._memo: dict[str, str] = {}  # a chat repeats its words; wordfreq and rapidfuzz run once each

    def __call__(self, text: str) -> str:
        """The text with shorthand and typos read as words; the text itself when none is found."""
        read = _TOKEN.sub(lambda m: self.word(m.group()), text)
        return re.sub(r"  +", " ", read).strip() if read != text else text

    def word(self, token: str) -> str:
        """How one token reads: the words a shorthand stands for, a typo's word, or the token."""
        read = self._memo.get(token)
        if read is None:
            read = self._read(token)
            if len(self._memo) < _MEMO:
                self._memo[token] = read
        return read

    def foreign(self, word: str) -> bool:
        """Commoner in another language served than in English ("bein", "gambe"): not a typo."""
        english = zipf(word)
        return any(
            zipf(word, language) >= max(OTHER_LANGUAGE_ZIPF, english) for language in self.other_languages
        )

    def _read(self, token: str) -> str:
        word = token.lower()
        if word in self.shorthand:
            return self.shorthand[word]
        if len(word) < 4 or not (word.isascii() and word.isalpha()) or word in self.learned:
            return token
        if self.foreign(word):
            return token
        if word.endswith("in") and zipf(word + "g") >= max(DROPPED_G_ZIPF, zipf(word)):
            return word + "g"
        if zipf(word) >= ENGLISH_TYPO_MAX_ZIPF:
            return token
        return english_spelling(word) or token
