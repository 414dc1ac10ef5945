"""The learned sign classifier: which warning sign, if any, a unit of text carries.

Features are the sentence embedding (meaning, English) next to character n-grams (typos,
other languages, word pieces) and word n-grams ("no fever" is not "fever"), read by one
multinomial logistic regression. Units that carry a sign weigh more in training, by
level, so a missed emergency costs more than a false alarm. A second, small regression
says whether the sign is about the writer or about someone else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from assistant.triage.corpus import NONE, SCOPE_CLASSES, TrainingUnits
from assistant.triage.policy import ModelPolicy, TriagePolicy
from assistant.types import TriageLevel

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class Thresholds:
    """Decision thresholds, tuned on the dev split: P(a sign of this level or worse) >= t escalates."""

    levels: dict[TriageLevel, float] = field(
        default_factory=lambda: {
            TriageLevel.EMERGENCY: 0.5,
            TriageLevel.URGENT: 0.5,
            TriageLevel.SEE_PT: 0.5,
        }
    )
    out_of_scope: float = 0.5
    # a pattern hit is set aside only when the model is at least this sure that the clause
    # holding it reports nothing ("I haven't fainted", "nearly fainted at the price"); > 1: never
    pattern_veto: float = 1.01


@dataclass
class TriageModel:
    """Vectorisers and classifiers, fitted together; `proba` scores units."""

    classes: list[str]
    char: object
    word: object
    classifier: object
    subject: object | None
    embedding_weight: float
    thresholds: Thresholds = field(default_factory=Thresholds)
    fingerprint: str = ""
    report: dict = field(default_factory=dict)

    # -- scoring -----------------------------------------------------------------------

    def features(self, texts: list[str], vectors: np.ndarray) -> sparse.csr_matrix:
        char = self.char.transform(texts)  # type: ignore[attr-defined]
        word = self.word.transform(texts)  # type: ignore[attr-defined]
        dense = sparse.csr_matrix(np.asarray(vectors, dtype=np.float64) * self.embedding_weight)
        return sparse.hstack([dense, char, word], format="csr")

    def proba(self, texts: list[str], vectors: np.ndarray) -> np.ndarray:
        """(units, classes) probabilities; columns follow `self.classes`."""
        if not texts:
            return np.zeros((0, len(self.classes)))
        return self.classifier.predict_proba(self.features(texts, vectors))  # type: ignore[attr-defined]

    def other_person(self, texts: list[str]) -> np.ndarray:
        """P(the unit speaks of someone else: "my husband can't feel...")."""
        if self.subject is None or not texts:
            return np.zeros(len(texts))
        x = sparse.hstack([self.char.transform(texts), self.word.transform(texts)], format="csr")  # type: ignore[attr-defined]
        return self.subject.predict_proba(x)[:, 1]  # type: ignore[attr-defined]

    # -- training ----------------------------------------------------------------------

    @classmethod
    def fit(
        cls, data: TrainingUnits, vectors: np.ndarray, policy: TriagePolicy, params: ModelPolicy | None = None
    ) -> TriageModel:
        """Fit vectorisers and classifiers on training units (never on dev or test)."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        params = params or policy.model
        char = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, strip_accents="unicode"
        )
        word = TfidfVectorizer(
            ngram_range=(1, 2), min_df=2, sublinear_tf=True, strip_accents="unicode",
            token_pattern=r"(?u)\b\w+\b",
        )
        char.fit(data.texts)
        word.fit(data.texts)
        level_of = {s.id: s.level for s in policy.signs}
        weights = np.array(
            [params.class_weight.get(level_of[lab], 1.0) if lab in level_of else 1.0 for lab in data.labels]
        )
        model = cls(
            classes=[],
            char=char,
            word=word,
            classifier=None,
            subject=None,
            embedding_weight=params.embedding_weight,
        )
        x = model.features(data.texts, vectors)
        clf = LogisticRegression(C=params.C, max_iter=3000)
        clf.fit(x, data.labels, sample_weight=weights)
        model.classifier = clf
        model.classes = [str(c) for c in clf.classes_]
        rows = [i for i, lab in enumerate(data.labels) if lab in level_of and data.subjects[i]]
        subjects = [data.subjects[i] == "other" for i in rows]
        if rows and 0 < sum(subjects) < len(subjects):
            xs = sparse.hstack(
                [char.transform([data.texts[i] for i in rows]), word.transform([data.texts[i] for i in rows])],
                format="csr",
            )
            model.subject = LogisticRegression(C=4.0, max_iter=2000).fit(xs, subjects)
        return model

    # -- persistence -------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename), so a reader never sees half a model."""
        import joblib

        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            joblib.dump({"format": FORMAT_VERSION, "model": self}, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> TriageModel | None:
        """The cached model if it was trained from the same corpus, policy and code, else None."""
        import joblib

        try:
            blob = joblib.load(path)
        except FileNotFoundError:
            return None
        except Exception as exc:  # a corrupt cache is rebuilt, never fatal
            log.warning("Ignoring the unreadable triage model cache %s (%s); retraining.", path, exc)
            return None
        if not isinstance(blob, dict) or blob.get("format") != FORMAT_VERSION:
            return None
        model = blob.get("model")
        if not isinstance(model, cls) or model.fingerprint != fingerprint:
            return None
        return model


def fingerprint(*parts: bytes) -> str:
    """sha256 over the corpus, the policy and this package's code: what the model depends on."""
    digest = hashlib.sha256(f"format-{FORMAT_VERSION}".encode())
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def scope_columns(classes: list[str]) -> list[int]:
    return [i for i, c in enumerate(classes) if c in SCOPE_CLASSES]


def none_column(classes: list[str]) -> int:
    return classes.index(NONE)
