"""The learned sign classifier: which warning sign, if any, a unit of text carries.

Features are the sentence embedding (meaning, English) next to character n-grams (typos,
other languages, word pieces; the words a negation governs left out) and word n-grams with
negation, hypothetical and historical marking ("no fever" is not "fever"), read by one
multinomial logistic regression; with the policy's `context_embedding`, the embedding is read
once more per context a unit is said in, so the model can learn how much a denied or
hypothetical sign's meaning counts. Units that carry a sign weigh more in training, by
level, so a missed emergency costs more than a false alarm. A second, small regression
says whether the sign is about the writer or about someone else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse

from assistant.triage.corpus import Example, TrainingUnits
from assistant.triage.policy import ModelPolicy, TriagePolicy
from assistant.types import TriageLevel

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: vectorisers and classifiers stored compiled (`compiled.py`)


class ContextMarker:
    """Word features that carry each clause's context, in the manner of NegEx and ConText
    (Chapman et al. 2001; Harkema et al. 2009).

    * Negation: a cue marks the next words, up to the window, punctuation or a terminator,
      as negated ("no lumps on my back" -> "no neg_lumps neg_on ..."), so a denied sign
      and a reported one have different words.
    * Hypothetical and historical clauses ("what would foot drop mean?", "I fainted once
      years ago") add a copy of their words tagged with the context ("hyp_foot",
      "past_fainted"), so the model can weigh a sign differently in that context.

    The cues are the policy's (`model.context`), in every language it serves; the weights
    are learned from the corpus.
    """

    def __init__(
        self, negation: list[str], terminators: list[str], window: int, contexts: dict[str, str]
    ) -> None:
        self.negation = negation
        self.terminators = terminators
        self.window = window
        self.contexts = contexts
        self._compiled: tuple[re.Pattern[str], re.Pattern[str], list[tuple[str, re.Pattern[str]]]] | None = (
            None
        )

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_compiled": None}

    def _patterns(self) -> tuple[re.Pattern[str], re.Pattern[str], list[tuple[str, re.Pattern[str]]]]:
        if self._compiled is None:
            self._compiled = (
                re.compile(rf"^(?:{'|'.join(self.negation)})$"),
                re.compile(rf"^(?:{'|'.join(self.terminators)})$"),
                _context_patterns(tuple(self.contexts.items())),
            )
        return self._compiled

    def flags(self, texts: list[str]) -> np.ndarray:
        """Per text, 1.0 where it is said negated (holds a negation cue) and where it is said in
        each of the policy's contexts, in that order: (texts, 1 + contexts). The model reads the
        sentence embedding once as it is and once per flag it carries (`TriageModel._context_copies`), so
        it can learn how much a sign's meaning counts when it is denied or merely asked about;
        the n-grams alone cannot move a sentence embedding that says "numb" either way."""
        cue = self._patterns()[0]
        tags = list(self.contexts)
        out = np.zeros((len(texts), 1 + len(tags)))
        for i, text in enumerate(texts):
            out[i, 0] = any(cue.match(token) for token in _TOKEN.findall(fold(text)))
            said_in = contexts(text, self.contexts)
            out[i, 1:] = [tag in said_in for tag in tags]
        return out

    def without_negated(self, text: str) -> str:
        """The text with the words a negation governs left out (the character n-grams' view:
        "no lumps on my back" should not look like a lump)."""
        cue, stop, _ = self._patterns()
        folded = fold(text)
        out: list[str] = []
        left = 0
        for token in _TOKEN.findall(folded):
            if not token[0].isalnum() or stop.match(token):
                left = 0
            elif cue.match(token):
                left = self.window
            elif left:
                left -= 1
                continue
            out.append(token)
        return " ".join(out)

    def __call__(self, text: str) -> str:
        cue, stop, tagged = self._patterns()
        folded = fold(text)
        out: list[str] = []
        clause: list[str] = []

        def close() -> None:
            joined = " ".join(clause)
            for tag, pattern in tagged:
                if pattern.search(joined):
                    out.extend(f"{tag}_{w.removeprefix('neg_')}" for w in clause if w[0].isalnum())
            clause.clear()

        left = 0
        for token in _TOKEN.findall(folded):
            if not token[0].isalnum() or stop.match(token):
                left = 0
                close()
                out.append(token)
                continue
            if cue.match(token):
                left = self.window
                word = token
            elif left:
                left -= 1
                word = "neg_" + token
            else:
                word = token
            out.append(word)
            clause.append(word)
        close()
        return " ".join(out)


_TOKEN = re.compile(r"\w+|[^\w\s]")


def fold(text: str) -> str:
    """Text as the policy's cues are written: lower case, no accents, no apostrophes."""
    return strip_accents(text.lower().replace("'", "").replace("\u2019", ""))


@lru_cache(maxsize=8)
def _context_patterns(cues: tuple[tuple[str, str], ...]) -> list[tuple[str, re.Pattern[str]]]:
    return [(tag, re.compile(rf"(?<!\w)(?:{cue})(?!\w)")) for tag, cue in cues]


def contexts(text: str, cues: dict[str, str]) -> list[str]:
    """The contexts (the policy's `context_cues`: hypothetical, historical) a clause is said in:
    "what if both legs went numb?" -> ["hyp"]."""
    folded = fold(text)
    return [tag for tag, pattern in _context_patterns(tuple(cues.items())) if pattern.search(folded)]


def strip_accents(text: str) -> str:
    """ "pérdida" -> "perdida": NFKD, combining marks dropped (as scikit-learn's
    `strip_accents_unicode`, without importing scikit-learn at answer time)."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


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


@dataclass(frozen=True)
class Scores:
    """What the model says of each text it was given."""

    proba: np.ndarray  # (texts, classes), columns follow TriageModel.classes
    other: np.ndarray  # P(the text speaks of someone else)
    scope: list[dict[str, float]]  # P(none / off_topic / forbidden), for whole messages
    gate: np.ndarray  # P(the text, read as a whole message, reports a sign)


@dataclass
class TriageModel:
    """Vectorisers and classifiers, fitted together; `proba` scores units."""

    classes: list[str]
    char: object
    word: object
    classifier: object
    subject: object | None
    embedding_weight: float
    scope: object | None = None  # message level: none / off_topic / forbidden
    gate: object | None = None  # message level: does it report a sign at all (see `fit`)
    gate_weight: float = 0.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    fingerprint: str = ""
    # the policy's lay words it learned from its training messages, read as written (`LayWords`)
    lay_seen: frozenset[str] = frozenset()
    # when set, the embedding is also read once per context flag the unit carries (`_context_copies`)
    context_marker: ContextMarker | None = None

    def learned_words(self) -> frozenset[str]:
        """The words its word features hold (each met in at least two training units, folded)."""
        return frozenset(w for w in self.word.vocabulary if " " not in w)  # type: ignore[attr-defined]

    # -- scoring -----------------------------------------------------------------------

    def _context_copies(self, texts: list[str], dense: np.ndarray) -> sparse.csr_matrix:
        """With `context_marker`, a copy of the embedding per context the unit is said in
        (negated, hypothetical, historical; zeros where it is not): an interaction a linear
        model cannot form from the embedding and the n-grams side by side. Only the sign
        classifier and the gate read them: they decide whether a sign is reported, which is
        what a denial or a question changes; the scope classifier decides the topic."""
        if self.context_marker is None:
            return sparse.csr_matrix((len(texts), 0))
        flags = self.context_marker.flags(texts)
        return sparse.csr_matrix(np.hstack([dense * flags[:, j : j + 1] for j in range(flags.shape[1])]))

    def _parts(self, texts: list[str], vectors: np.ndarray) -> tuple[sparse.csr_matrix, ...]:
        """The plain features (embedding, character and word n-grams) and the context copies."""
        dense = np.asarray(vectors, dtype=np.float64).reshape(len(texts), -1) * self.embedding_weight
        char, word = self.char.transform(texts), self.word.transform(texts)  # type: ignore[attr-defined]
        return sparse.csr_matrix(dense), char, word, self._context_copies(texts, dense)

    def features(self, texts: list[str], vectors: np.ndarray, *, context: bool = True) -> sparse.csr_matrix:
        """What the sign classifier and the gate read (`context`), or the scope classifier."""
        dense, char, word, copies = self._parts(texts, vectors)
        return sparse.hstack([dense, char, word, *([copies] if context else [])], format="csr")

    def score(self, texts: list[str], vectors: np.ndarray) -> Scores:
        """Every classifier on the same features, computed once: per-text sign probabilities,
        P(about someone else), and scope probabilities (meant for a whole message)."""
        if not texts:
            return Scores(np.zeros((0, len(self.classes))), np.zeros(0), [], np.zeros(0))
        dense, char, word, copies = self._parts(texts, vectors)
        plain = sparse.hstack([dense, char, word], format="csr")
        x = sparse.hstack([plain, copies], format="csr")
        proba = self.classifier.predict_proba(x)  # type: ignore[attr-defined]
        other = np.zeros(len(texts))
        if self.subject is not None:
            other = self.subject.predict_proba(sparse.hstack([char, word], format="csr"))[:, 1]  # type: ignore[attr-defined]
        scope: list[dict[str, float]] = []
        if self.scope is not None:
            rows = self.scope.predict_proba(plain)  # type: ignore[attr-defined]
            names = [str(c) for c in self.scope.classes_]  # type: ignore[attr-defined]
            scope = [dict(zip(names, map(float, row), strict=True)) for row in rows]
        gate = np.ones(len(texts))
        if self.gate is not None:
            gate = self.gate.predict_proba(x)[:, 1]  # type: ignore[attr-defined]
        return Scores(proba, other, scope, gate)

    # -- training ----------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        data: TrainingUnits,
        vectors: np.ndarray,
        policy: TriagePolicy,
        params: ModelPolicy | None = None,
        messages: tuple[list[Example], np.ndarray] | None = None,
        gate: tuple[list[str], list[bool], np.ndarray] | None = None,
    ) -> TriageModel:
        """Fit vectorisers and classifiers on training units (never on dev or test).

        `messages` (whole training messages and their vectors) trains the scope classifier,
        with balanced class weights: off-topic and forbidden requests are rare in the units.
        `gate` (windows, whether each holds a sign, their vectors) trains the gate.
        """
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        params = params or policy.model
        marker = ContextMarker(
            params.negation_cues, params.negation_terminators, params.negation_window, params.context_cues
        )
        char = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            min_df=2,
            sublinear_tf=True,
            preprocessor=marker.without_negated,
        )
        word = TfidfVectorizer(
            ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b", preprocessor=marker
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
            context_marker=marker if params.context_embedding else None,
        )
        x = model.features(data.texts, vectors)
        clf = LogisticRegression(C=params.C, max_iter=3000)
        clf.fit(x, data.labels, sample_weight=weights)
        model.classifier = clf
        model.classes = [str(c) for c in clf.classes_]
        if messages is not None and messages[0]:
            texts = [e.text for e in messages[0]]
            labels = [e.scope_class if not e.signs else "none" for e in messages[0]]
            xm = model.features(texts, messages[1], context=False)
            if len(set(labels)) > 1:
                model.scope = LogisticRegression(C=params.C, max_iter=3000, class_weight="balanced").fit(
                    xm, labels
                )
        # The gate reads a unit with the sentences around it: a sign's clause alone ("almost
        # fell at incline 10") can look like a report while its context ("but caught myself,
        # zero pain") says otherwise. Trained on windows: holds a sign's evidence, or not.
        if gate is not None and params.gate_weight > 0 and 0 < sum(gate[1]) < len(gate[1]):
            model.gate = LogisticRegression(C=params.gate_C, max_iter=3000, class_weight="balanced").fit(
                model.features(gate[0], gate[2]), gate[1]
            )
            model.gate_weight = params.gate_weight
        rows = [i for i, lab in enumerate(data.labels) if lab in level_of and data.subjects[i]]
        subjects = [data.subjects[i] == "other" for i in rows]
        if rows and 0 < sum(subjects) < len(subjects):
            xs = sparse.hstack(
                [
                    char.transform([data.texts[i] for i in rows]),
                    word.transform([data.texts[i] for i in rows]),
                ],
                format="csr",
            )
            model.subject = LogisticRegression(C=4.0, max_iter=2000).fit(xs, subjects)
        model._compile(data.texts, vectors)
        return model

    def _compile(self, texts: list[str], vectors: np.ndarray) -> None:
        """Swap the scikit-learn parts for their arrays (`compiled.py`), checked on the training
        texts, so a loaded model scores without importing scikit-learn."""
        from assistant.triage.compiled import compile_classifier, compile_vectorizer, verify

        char, word = compile_vectorizer(self.char), compile_vectorizer(self.word)
        verify(self.char, char, texts, "character n-grams")
        verify(self.word, word, texts, "word n-grams")
        dense, char_x, word_x, copies = self._parts(texts, vectors)
        plain = sparse.hstack([dense, char_x, word_x], format="csr")
        x = sparse.hstack([plain, copies], format="csr")
        both = sparse.hstack([char_x, word_x], format="csr")
        for name, inputs in (("classifier", x), ("scope", plain), ("gate", x), ("subject", both)):
            fitted = getattr(self, name)
            if fitted is not None:
                compiled = compile_classifier(fitted)
                verify(fitted, compiled, inputs, name)
                setattr(self, name, compiled)
        self.char, self.word = char, word

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
