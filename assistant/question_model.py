"""How a question is asked, as evidence of whether the sources answer it.

A logistic regression (scikit-learn) on three views of a question: its words (TF-IDF unigrams
and bigrams), its sentence vector, and its rest (the vector less its part along its closest
sentence of the sources, `coverage.rest`). It is fitted on the labelled examples, the dev
questions of `rules/coverage_examples.yaml` that the sources do and do not answer, and its
log-odds is one feature of the coverage model (`Evidence.asked_covered`), never the decision.

Why: the likeness features compare a question with its nearest examples; this model weighs
every example at once, so the words and directions that mark a question the sources don't
answer ("brace", "shoes", "how long until") count wherever they appear. Trained on all but
one writer's questions and tested on that writer's, it raised the coverage model's AUC in each
of the four rounds (by 0.006 to 0.019) and the uncovered questions declined in three.

It is fitted when first needed (about a second) and kept in the cache folder beside the
examples' vectors; scoring uses numpy only (`triage.compiled`), so answering never imports
scikit-learn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from assistant.triage.compiled import NgramVectorizer, compile_vectorizer, verify

# Chosen on the dev split by 5-fold cross-validated AUC of this model alone (C in 1, 3, 10, 30,
# 100; unigrams or unigrams and bigrams): 10 with bigrams, 0.925 (30: 0.926, 1: 0.913).
C = 10.0
NGRAMS = (1, 2)


def _lower(text: str) -> str:
    """The vectoriser's preprocessor (a named function, so the compiled copy matches)."""
    return text.lower()


@dataclass
class QuestionModel:
    """log-odds(covered) = words . w_words + vector . w_vector + rest . w_rest + b."""

    words: NgramVectorizer
    coef: np.ndarray  # words' columns, then the vector's, then the rest's
    intercept: float

    @classmethod
    def fit(
        cls, texts: Sequence[str], vectors: np.ndarray, rests: np.ndarray, covered: Sequence[bool]
    ) -> QuestionModel:
        """Fit on labelled questions; `class_weight="balanced"` as the coverage model."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(ngram_range=NGRAMS, min_df=2, sublinear_tf=True, preprocessor=_lower)
        x_words = vectorizer.fit_transform(list(texts))
        x = sparse.hstack([x_words, sparse.csr_matrix(np.c_[vectors, rests])], format="csr")
        lr = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(x, list(covered))
        words = compile_vectorizer(vectorizer)
        verify(vectorizer, words, list(texts), "question words")
        sign = 1.0 if bool(lr.classes_[1]) else -1.0  # log-odds of covered, whichever class is second
        return cls(words, sign * lr.coef_[0], sign * float(lr.intercept_[0]))

    def log_odds(self, texts: Sequence[str], vectors: np.ndarray, rests: np.ndarray) -> np.ndarray:
        """Per question: the log-odds that the sources answer it."""
        x = sparse.hstack(
            [self.words.transform(texts), sparse.csr_matrix(np.c_[vectors, rests])], format="csr"
        )
        return np.asarray(x @ self.coef).ravel() + self.intercept

    def log_odds_one(self, text: str, vector: np.ndarray, rest: np.ndarray | None = None) -> float:
        """`log_odds` of one question; no rest (no closest sentence) reads as zeros."""
        q = np.asarray(vector, dtype=np.float32)[None, :]
        r = np.zeros_like(q) if rest is None else np.asarray(rest, dtype=np.float32)[None, :]
        return float(self.log_odds([text], q, r)[0])

    def save(self, path: Path) -> None:
        vocabulary = json.dumps(self.words.vocabulary)
        with path.open("wb") as fh:
            np.savez(
                fh,
                vocabulary=np.array(vocabulary),
                token_pattern=np.array(self.words.token_pattern),
                idf=self.words.idf,
                coef=self.coef,
                b=self.intercept,
            )

    @classmethod
    def load(cls, path: Path) -> QuestionModel:
        with np.load(path) as data:
            words = NgramVectorizer(
                analyzer="word",
                ngram_range=NGRAMS,
                token_pattern=str(data["token_pattern"]),
                preprocessor=_lower,
                vocabulary=json.loads(str(data["vocabulary"])),
                idf=np.asarray(data["idf"]),
                sublinear_tf=True,
            )
            return cls(words, np.asarray(data["coef"]), float(data["b"]))
