"""Does the knowledge base know the question's key terms? The "not covered" signal.

Embedding similarity alone cannot tell "should I wear a knee brace?" (not covered:
the article never mentions braces) from "how many marches on each side?" (covered):
both score about 0.45. What separates them is a content word the knowledge base
never uses. A term counts as known when the knowledge base has the word, a
spelling of it one or two edits away (typos), a word sharing its first five
letters (pushup / push-up, scapula / scapular), a curated keyword from a
document's front matter, or a word very close to it in embedding space
(tired / fatigue). Generic words ("ok", "best", "should") never count.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence

import numpy as np
from bm25s.stopwords import STOPWORDS_EN_PLUS

from assistant.embeddings import Embedder
from assistant.types import Chunk

_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*[a-z0-9]|[a-z]")
# Words that carry no topic: question words, judgements, common verbs.
GENERIC = frozenset(STOPWORDS_EN_PLUS) | {
    "ok",
    "okay",
    "fine",
    "good",
    "bad",
    "best",
    "better",
    "worse",
    "worst",
    "right",
    "wrong",
    "safe",
    "normal",
    "really",
    "actually",
    "also",
    "just",
    "still",
    "even",
    "ever",
    "usually",
    "often",
    "always",
    "never",
    "much",
    "many",
    "lot",
    "lots",
    "thing",
    "things",
    "way",
    "ways",
    "kind",
    "sort",
    "help",
    "helps",
    "helpful",
    "use",
    "using",
    "used",
    "need",
    "needs",
    "want",
    "get",
    "gets",
    "getting",
    "got",
    "make",
    "makes",
    "making",
    "go",
    "goes",
    "going",
    "feel",
    "feels",
    "know",
    "tell",
    "say",
    "says",
    "think",
    "try",
    "take",
    "takes",
    "put",
    "give",
    "look",
    "looks",
    "part",
    "parts",
    "count",
    "counts",
    "considered",
    "mean",
    "means",
    "would",
    "could",
    "might",
    "must",
    "shall",
    "can",
    "cannot",
    "can't",
    "don't",
    "doesn't",
    "i'm",
    "it's",
    "what's",
    "whats",
    "how's",
    "i've",
    "i'd",
    "besides",
    "instead",
    "else",
    "anything",
    "something",
    "someone",
    "anyone",
    "please",
    "thanks",
    "thank",
    "hi",
    "hello",
    "hey",
    "yes",
    "no",
    "maybe",
    "like",
    "well",
    "every",
    "everyday",
    "day",
    "days",
    "time",
    "times",
    "long",
    "far",
    "new",
    "old",
    "own",
    "one",
    "two",
    "per",
    "each",
    "first",
    "next",
    "last",
    "less",
    "more",
    "most",
    "least",
    "bit",
    "little",
    "enough",
    "useful",
    "worth",
    "possible",
    "able",
    "sure",
    "certain",
    "quite",
    "pretty",
    "very",
    "instructions",
    "instruction",
    "steps",
    "step",
    "tips",
    "tip",
    "advice",
    "guide",
    "explain",
    "describe",
    "information",
    "info",
    "question",
    "questions",
    "recommend",
    "idea",
    "ideas",
    "happen",
    "happens",
    "wear",
    "wearing",
    "buy",
    "buying",
    "happening",
}
PREFIX = 5
SYNONYM_SIMILARITY = 0.75  # nearest knowledge-base word this close in meaning counts as known


def _edits_le(a: str, b: str, limit: int) -> bool:
    """Optimal string alignment distance (transpositions count once) is at most `limit`."""
    if abs(len(a) - len(b)) > limit:
        return False
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return False
        prev2, prev = prev, cur
    return prev[-1] <= limit


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def content_terms(text: str) -> list[str]:
    """The words of a question that carry its topic (no stop words or generic words)."""
    return [w for w in dict.fromkeys(words(text)) if len(w) > 1 and w not in GENERIC]


class TermCoverage:
    """The knowledge base's vocabulary, and the question terms it does not know."""

    def __init__(self, chunks: Sequence[Chunk], embedder: Embedder, keywords: Iterable[str] = ()) -> None:
        vocab: set[str] = set()
        for c in chunks:
            for w in words(f"{c.section} {c.text}"):
                vocab.add(w)
                vocab.update(w.split("-"))
                vocab.add(w.replace("-", ""))
        for k in keywords:
            vocab.update(words(k))
        self.vocab = frozenset(v for v in vocab if v)
        self._prefixes = {v[:PREFIX] for v in self.vocab if len(v) >= PREFIX}
        self._by_length: dict[int, list[str]] = {}
        # Short generic words are too close to everything ("vest" is one letter from "best").
        for v in self.vocab | {g for g in GENERIC if len(g) >= 5}:
            self._by_length.setdefault(len(v), []).append(v)
        self.embedder = embedder
        self._vocab_list = sorted(v for v in self.vocab if v not in GENERIC and len(v) > 2)
        self._vectors: np.ndarray | None = None
        self._known_by_meaning: dict[str, bool] = {}  # cache: term -> a close word exists
        self._lock = threading.Lock()

    def _close_spelling(self, term: str) -> bool:
        """A typo of a known or a generic word ("treadmil", "brige", "shoud")."""
        if len(term) <= 4:  # "vest" is one letter from "rest": only swapped letters ("dgo")
            return any(
                sorted(v) == sorted(term) and _edits_le(term, v, 1)
                for v in self._by_length.get(len(term), ())
            )
        limit = 1 if len(term) <= 5 else 2
        return any(
            _edits_le(term, v, limit)
            for n in range(len(term) - limit, len(term) + limit + 1)
            for v in self._by_length.get(n, ())
        )

    def warm_up(self) -> None:
        self._vocab_vectors()

    def _vocab_vectors(self) -> np.ndarray:
        if self._vectors is None:
            with self._lock:
                if self._vectors is None:
                    self._vectors = self.embedder.encode(self._vocab_list)
        return self._vectors

    def unknown_terms(self, question: str) -> list[str]:
        """Content words of the question that the knowledge base does not use in any form."""
        candidates = []
        for term in dict.fromkeys(words(question)):
            term = term.strip("'")
            if len(term) < 3 or term in GENERIC or term.isdigit() or term in self.vocab:
                continue
            if term.endswith("s") and term[:-1] in self.vocab:
                continue
            if len(term) >= PREFIX and term[:PREFIX] in self._prefixes:
                continue
            if self._close_spelling(term):
                continue
            candidates.append(term)
        todo = [t for t in candidates if t not in self._known_by_meaning]
        if todo and self._vocab_list:
            sims = self.embedder.encode(todo) @ self._vocab_vectors().T
            for term, best in zip(todo, sims.max(axis=1), strict=True):
                if len(self._known_by_meaning) > 10_000:
                    self._known_by_meaning.clear()
                self._known_by_meaning[term] = bool(best >= SYNONYM_SIMILARITY)
        return [t for t in candidates if not self._known_by_meaning.get(t, False)]
