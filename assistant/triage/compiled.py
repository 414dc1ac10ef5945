"""The fitted triage vectorisers and classifiers as plain arrays, so answering never imports
scikit-learn.

scikit-learn trains the model (`model.TriageModel.fit`); importing it costs about 115 MB and
0.8 s here (it pulls in pandas and scipy.stats), which a one-shot `ask` pays for a few dot
products. `compile_vectorizer` and `compile_classifier` keep what a fitted `TfidfVectorizer`
and `LogisticRegression` learned (vocabulary, idf, weights) and score with numpy and
scipy.sparse. The n-gram analysers follow scikit-learn's own (`_char_wb_ngrams`,
`_word_ngrams`, version 1.9); `verify` checks, at every training, that both give the same
features and probabilities on the training texts, and training stops if they ever differ.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

_WHITE_SPACES = re.compile(r"\s\s+")  # scikit-learn's CountVectorizer._white_spaces
_WORD_CACHE = 50_000  # words whose n-gram columns are kept (a few MB)


@dataclass
class NgramVectorizer:
    """A fitted `TfidfVectorizer` (char_wb or word n-grams, sublinear tf, idf, l2 norm)."""

    analyzer: str  # "char_wb" or "word"
    ngram_range: tuple[int, int]
    token_pattern: str
    preprocessor: Callable[[str], str]
    vocabulary: dict[str, int]
    idf: np.ndarray
    sublinear_tf: bool

    def _word_grams(self, word: str) -> list[str]:
        """One word's char_wb n-grams: each word is read on its own, padded with a space."""
        low, high = self.ngram_range
        grams: list[str] = []
        w = " " + word + " "
        for n in range(low, high + 1):
            offset = 0
            grams.append(w[offset : offset + n])
            while offset + n < len(w):
                offset += 1
                grams.append(w[offset : offset + n])
            if offset == 0:  # a word shorter than n is counted once
                break
        return grams

    def _char_wb_ids(self, text: str) -> list[int]:
        """The vocabulary columns of the text's char_wb n-grams, one per occurrence.

        A word's n-grams never depend on its neighbours, so each word's columns are kept
        (`_WORD_CACHE` words): in a long message or a long conversation most words recur,
        and this is most of the model's own cost.
        """
        # kept beside the fields, not as one: models pickled before this cache existed load as they are
        cache: dict[str, list[int]] = self.__dict__.setdefault("_word_ids", {})
        out: list[int] = []
        vocabulary = self.vocabulary
        for w in _WHITE_SPACES.sub(" ", text).split():
            ids = cache.get(w)
            if ids is None:
                ids = [j for g in self._word_grams(w) if (j := vocabulary.get(g)) is not None]
                if len(cache) >= _WORD_CACHE:
                    cache.clear()
                cache[w] = ids
            out.extend(ids)
        return out

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_word_ids"}

    def _words(self, text: str) -> list[str]:
        tokens = re.findall(self.token_pattern, text)
        low, high = self.ngram_range
        grams = list(tokens) if low == 1 else []
        for n in range(max(low, 2), min(high, len(tokens)) + 1):
            grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        return grams

    def _columns(self, text: str) -> list[int]:
        if self.analyzer == "char_wb":
            return self._char_wb_ids(text)
        vocabulary = self.vocabulary
        return [j for g in self._words(text) if (j := vocabulary.get(g)) is not None]

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        indptr: list[int] = [0]
        indices: list[int] = []
        values: list[float] = []
        for text in texts:
            counts: dict[int, int] = {}
            for j in self._columns(self.preprocessor(text)):
                counts[j] = counts.get(j, 0) + 1
            cols = sorted(counts)
            tf = np.array([counts[j] for j in cols], dtype=np.float64)
            if self.sublinear_tf:
                tf = np.log(tf) + 1.0
            tf *= self.idf[cols]
            norm = float(np.sqrt((tf**2).sum()))
            values.extend(tf / norm if norm else tf)
            indices.extend(cols)
            indptr.append(len(indices))
        return sparse.csr_matrix(
            (np.asarray(values, dtype=np.float64), np.asarray(indices, dtype=np.int32), indptr),
            shape=(len(texts), len(self.idf)),
        )


@dataclass
class LinearClassifier:
    """A fitted `LogisticRegression`: softmax over classes, or a sigmoid for two."""

    coef: np.ndarray  # (1 or classes, features)
    intercept: np.ndarray
    classes_: list

    def predict_proba(self, x: sparse.spmatrix) -> np.ndarray:
        z = np.asarray(x @ self.coef.T) + self.intercept
        if self.coef.shape[0] == 1:
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.column_stack([1.0 - p, p])
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def compile_vectorizer(fitted: object) -> NgramVectorizer:
    """The arrays of a fitted `TfidfVectorizer` built with a `preprocessor` (so scikit-learn's own
    lower-casing and accent stripping are not in play) and l2 normalisation."""
    params = fitted.get_params()  # type: ignore[attr-defined]
    if params["analyzer"] not in ("char_wb", "word") or params["norm"] != "l2" or not params["use_idf"]:
        raise ValueError(f"cannot compile a TfidfVectorizer with {params}")
    if params["preprocessor"] is None or params["stop_words"] is not None:
        raise ValueError("compile only vectorisers with their own preprocessor and no stop words")
    return NgramVectorizer(
        analyzer=params["analyzer"],
        ngram_range=tuple(params["ngram_range"]),
        token_pattern=params["token_pattern"],
        preprocessor=params["preprocessor"],
        vocabulary={str(k): int(v) for k, v in fitted.vocabulary_.items()},  # type: ignore[attr-defined]
        idf=np.asarray(fitted.idf_, dtype=np.float64),  # type: ignore[attr-defined]
        sublinear_tf=bool(params["sublinear_tf"]),
    )


def compile_classifier(fitted: object) -> LinearClassifier:
    return LinearClassifier(
        coef=np.asarray(fitted.coef_, dtype=np.float64),  # type: ignore[attr-defined]
        intercept=np.asarray(fitted.intercept_, dtype=np.float64),  # type: ignore[attr-defined]
        classes_=list(fitted.classes_),  # type: ignore[attr-defined]
    )


def verify(
    fitted: object, compiled: NgramVectorizer | LinearClassifier, inputs: object, what: str
) -> None:
    """Stop training if the compiled part disagrees with scikit-learn's on `inputs`."""
    if isinstance(compiled, NgramVectorizer):
        a, b = fitted.transform(inputs), compiled.transform(inputs)  # type: ignore[attr-defined, arg-type]
        diff = abs(a - b).max() if a.shape == b.shape else np.inf
    else:
        a, b = fitted.predict_proba(inputs), compiled.predict_proba(inputs)  # type: ignore[attr-defined]
        diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else np.inf
    if not diff <= 1e-9:
        raise RuntimeError(
            f"the compiled triage {what} differs from scikit-learn's by {diff}: scikit-learn's "
            "analysers have changed; update assistant/triage/compiled.py to match them"
        )
