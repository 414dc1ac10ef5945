"""A reading of a clause about someone else as the person's own: "his legs went numb" -> "my legs went numb".

The policy gives a sign in a partner, parent or friend the same level as the writer's own
(`decide.py` only changes who the reply speaks to). Most training messages, like most
people, describe signs in the first person, and the sentence embedding places "my husband
can't feel his legs" further from "I can't feel my legs" than the words justify: trained
without the corpus's messages about someone else and tested on them, the model found 0.72
of their see-a-PT-or-worse messages. So the triager also scores each English clause with
third-person words read as first-person ones, from `rules/first_person.yaml` (named by the
policy's `model.first_person_file`), after the typed reading (`typed_words.py`).

Who is spoken of is still read from the words as written (the model's "about someone else"
score is never taken from this reading), and the reasons quote the person's own words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_APOSTROPHE = "['’‘]"


class FirstPerson:
    """Reads "my husband says his downstairs has gone numb" as "I says my downstairs has gone numb".

    Example:
        >>> FirstPerson({"my husband": "I", "his": "my"})("My husband says his back hurts")
        'I says my back hurts'
    """

    def __init__(self, words: Mapping[str, str]) -> None:
        """`words`: third-person word or phrase -> the first-person words read instead (whole
        words, any case and spacing, straight or curly apostrophes; the longest phrase wins)."""
        self.words = {_key(k): v.strip() for k, v in words.items() if k.strip()}
        listed = "|".join(
            re.escape(k).replace("'", _APOSTROPHE).replace(r"\ ", r"\s+")
            for k in sorted(self.words, key=len, reverse=True)
        )
        self._pattern = re.compile(rf"(?<![\w'’])(?:{listed})(?![\w'’])", re.I) if listed else None

    def __call__(self, text: str) -> str:
        """The text with the listed words replaced; the text itself when none is found."""
        if self._pattern is None:
            return text
        read = self._pattern.sub(lambda m: self.words[_key(m.group())], text)
        return re.sub(r"  +", " ", read).strip() if read != text else text


def _key(phrase: str) -> str:
    """How a phrase is looked up: lower case, single spaces, straight apostrophes."""
    return " ".join(phrase.lower().replace("’", "'").replace("‘", "'").split())
