"""Reading a question as people type it, and deciding from evidence whether the sources answer it.

Two parts:

* `QueryReader` turns a message into what retrieval should search for: chat shorthand
  ("pls", "tbh") is mapped or dropped, everyday and gym words ("traps", "belly") get
  plainer companions, and misspellings ("treadmil", "postrue") are corrected against the
  knowledge base's own vocabulary with rapidfuzz. Word lists live in `rules/language.yaml`.
  It also weighs each salient word by how rare it is in English (`wordfreq`): a rare
  word the sources never use ("mattress", "sciatica") is evidence something is missing,
  a common one ("week", "sister") hardly is.
* `CoverageModel` is a logistic regression over evidence features (best chunk cosine,
  best sentence cosine, BM25 score, share of salient words the sources know, rarity of
  the rarest unknown word). Its weights are fitted on the dev split of the project's own
  questions (`python -m assistant.coverage_tuning fit`) and stored as data in
  `rules/coverage_model.yaml`. Unknown words are one feature among five: they never
  decide alone.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from bm25s.stopwords import STOPWORDS_EN_PLUS

from assistant.errors import ConfigError
from assistant.question_model import QuestionModel
from assistant.spelling import english_spelling, english_words, zipf
from assistant.types import Chunk

log = logging.getLogger(__name__)

RULES = Path(__file__).parent / "rules"
LANGUAGE_FILE = RULES / "language.yaml"
MODEL_FILE = RULES / "coverage_model.yaml"

_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*[a-z0-9]|[a-z]")
STOPWORDS = frozenset(STOPWORDS_EN_PLUS) | {"i'm", "it's", "what's", "whats", "don't", "can't", "i've"}
# A word this common in English (Zipf scale: 3 = once per million words) is a real word,
# not a typo, so it is never "corrected" into a knowledge-base word.
TYPO_MAX_ZIPF = 3.0
# rapidfuzz normalised Indel similarity (0-100) a correction needs: one wrong, missing or
# extra letter in a 6-letter word scores ~91, two swapped letters ~86, a different word < 80.
TYPO_MIN_SCORE = 84.0
# Short words ("bak", "cor") are corrected only when English hardly has them (Zipf 2.5: a few
# per hundred million words), since one edit turns most short words into other real ones.
SHORT_TYPO_MAX_ZIPF = 3.0
FEATURES = (
    "dense",
    "sentence",
    "lexical",
    "matched",
    "known",
    "unknown_rarity",
    "unmatched_rarity",
    "like_uncovered",
    "like_covered",
    "rest_like_uncovered",
    "rest_like_covered",
    "like_uncovered_k",
    "like_covered_k",
    "rest_like_uncovered_k",
    "rest_like_covered_k",
    "asked_covered",
)
# The features learned from the labelled examples (`Examples`): they speak only for the sources
# the examples were labelled against, so a question whose best passage comes from a source added
# since does not count them (NaN: `CoverageModel.probability` reads them as the dev mean).
EXAMPLE_FEATURES = FEATURES[FEATURES.index("like_uncovered") :]
# The `_k` likeness features average the NEIGHBOURS closest labelled examples of each kind: one
# near-twin decides less than a neighbourhood does. 10 was best of 1, 3, 5, 10, 20 on dev
# (`coverage_tuning`); with unmatched_rarity, test questions declined rose 0.75 -> 0.79 at the
# same share answered.
NEIGHBOURS = 10
# A covered example's answer votes for the passage that holds it (`Examples.votes`): the 5 most
# similar covered examples vote, each with its cosine similarity. 5 beat 1 and 10 on dev
# (`coverage_tuning fit-rerank`); votes are not normalised, so distant neighbours vote weakly.
VOTERS = 5
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


@lru_cache(maxsize=16_384)  # the same sentences and phrases are matched answer after answer
def _plain(text: str) -> str:
    """Text as phrases are matched: case, curly quotes, Markdown emphasis and spacing ignored."""
    return " ".join(text.translate(_QUOTES).replace("*", "").lower().split())


def _needle(phrase: str) -> str:
    """A phrase as it is looked for: `_plain`, its edge punctuation ignored."""
    return _plain(phrase).strip(" .,;:!?")


def holds(text: str, phrase: str) -> bool:
    """The text holds the phrase (both `_plain`)."""
    needle = _needle(phrase)
    return bool(needle) and needle in _plain(text)


def holding(texts: Sequence[str], phrases: Sequence[Sequence[str]]) -> Any:
    """A (len(phrases), len(texts)) matrix: 1.0 where a text holds one of a group's phrases.

    The texts are joined once and each phrase is searched in the whole with `str.find`, so a
    large knowledge base costs one pass per phrase, not one per phrase and text."""
    import bisect

    import numpy as np

    plain = [_plain(t) for t in texts]
    starts, at = [], 0
    for t in plain:
        starts.append(at)
        at += len(t) + 1
    joined = "\x00".join(plain)
    out = np.zeros((len(phrases), len(texts)), dtype=np.float32)
    for row, group in enumerate(phrases):
        for phrase in group:
            needle = _needle(phrase)
            hit = joined.find(needle) if needle else -1
            while hit >= 0:
                out[row, bisect.bisect_right(starts, hit) - 1] = 1.0
                hit = joined.find(needle, hit + 1)
    return out


EXAMPLES_FILE = RULES / "coverage_examples.yaml"


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def stem(word: str) -> str:
    return str(_stemmer().stemWord(word.replace("-", "")))


@lru_cache(maxsize=4096)
def passage_stems(passage: str) -> frozenset[str]:
    """The stems of a passage's words (cached: the same passages are read for every question)."""
    return frozenset(stem(w) for w in words(passage))


def rarity(word: str) -> float:
    """Salience of a word, 0-1: everyday words (more common than ~30 per million words, Zipf
    4.5: "know", "bad", "week") rarely name a topic; rarer ones ("brace", "sciatica") do."""
    return max(0.02, 1.0 / (1.0 + math.exp(2.0 * (zipf(word) - 4.5))))


def content_terms(text: str) -> list[str]:
    """The words of a text that can carry its topic (stop words left out)."""
    return [w for w in dict.fromkeys(words(text)) if len(w) > 1 and w not in STOPWORDS and not w.isdigit()]


@dataclass(frozen=True)
class Language:
    """The word lists of `rules/language.yaml`."""

    shorthand: Mapping[str, str]
    everyday: Mapping[str, str]
    conditions: Mapping[str, str]
    condition_names: Mapping[str, str] = field(default_factory=dict)  # "pregnant": "pregnancy"

    @classmethod
    def load(cls, path: Path = LANGUAGE_FILE) -> Language:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the language rules {path}: {exc}") from exc
        return cls(
            shorthand={str(k).lower(): str(v or "") for k, v in (data.get("shorthand") or {}).items()},
            everyday={str(k).lower(): str(v) for k, v in (data.get("everyday") or {}).items()},
            conditions={str(k).lower(): str(v) for k, v in (data.get("conditions") or {}).items()},
            condition_names={
                str(k).lower(): str(v) for k, v in (data.get("condition_names") or {}).items()
            },
        )


@dataclass(frozen=True)
class Term:
    """A salient word of the question: as typed, as read, its weight, and whether the sources know it."""

    typed: str
    word: str
    weight: float
    known: bool
    plainer: tuple[str, ...] = ()  # an everyday word's plainer companions ("traps": upper back ...)


@dataclass(frozen=True)
class ReadQuery:
    """A message as the assistant reads it."""

    original: str
    text: str  # shorthand mapped, misspellings corrected: what is embedded
    search: str  # `text` plus the plainer companions of everyday words: what BM25 searches
    terms: list[Term] = field(default_factory=list)
    conditions: dict[str, str] = field(default_factory=dict)  # named condition (its name) -> who can help
    expansions: list[str] = field(default_factory=list)  # plainer companions of everyday words
    corrected: bool = False  # a misspelling (or a loosely typed number) was corrected
    # `text` with each everyday word's plainer companions in brackets right after it ("my traps
    # (upper back shoulders) ache"): what is embedded. The sentence model reads "traps" as a
    # word of its own, far from "upper back", so the companions must reach the vector, not only
    # the BM25 search. Empty when no everyday word was read.
    meant: str = ""

    @property
    def embedded(self) -> str:
        """The text the question's vector is made from (`meant`, else `text`)."""
        return self.meant or self.text

    @property
    def changed(self) -> bool:
        """A word was respelled or given plainer companions: the text means something the typed
        one did not, so embed it again.

        Shorthand ("pls" -> "please", "lol" dropped) hardly moves an embedding and is not counted.
        """
        return self.corrected or bool(self.meant)

    def known_share(self) -> float:
        total = sum(t.weight for t in self.terms)
        return sum(t.weight for t in self.terms if t.known) / total if total else 1.0

    def matched_share(self, passages: Sequence[str]) -> float:
        """Rarity-weighted share of the salient words (by stem) that the passages contain."""
        total = sum(t.weight for t in self.terms)
        if not total:
            return 1.0
        stems = {stem(w) for p in passages for w in words(p)}
        return sum(t.weight for t in self.terms if stem(t.word) in stems) / total

    def explained_by(self, passage: str) -> float:
        """Rarity-weighted share of the question's words (and their plainer companions) the passage has."""
        pairs = [(t.word, t.weight) for t in self.terms]
        pairs += [(w, rarity(w)) for e in self.expansions for w in content_terms(e)]
        total = sum(w for _, w in pairs)
        if not total:
            return 0.0
        stems = passage_stems(passage)
        return sum(w for t, w in pairs if stem(t) in stems) / total

    def unknown_rarity(self) -> float:
        return max((t.weight for t in self.terms if not t.known), default=0.0)

    def unmatched_rarity(self, passages: Sequence[str]) -> float:
        """Weight of the rarest salient word the passages lack, though the sources may use it
        elsewhere: "how many seconds do I hold the bird dog?" asks for what its passage never says.
        An everyday word counts as there when one of its plainer companions is ("traps")."""
        stems = {stem(w) for p in passages for w in words(p)}

        def lacks(t: Term) -> bool:
            return stem(t.word) not in stems and not any(stem(p) in stems for p in t.plainer)

        return max((t.weight for t in self.terms if lacks(t)), default=0.0)

    def missing(self, limit: int = 2) -> list[str]:
        """Rare words the sources never use, rarest first: what a "not covered" reply can name.

        Common words ("week", "goal", "sister") are never named: they are not what is missing.
        """
        rare = [t for t in self.terms if not t.known and zipf(t.word) < 4.0 and len(t.word) > 2]
        return [t.typed for t in sorted(rare, key=lambda t: -t.weight)][:limit]


class QueryReader:
    """Reads messages against one knowledge base's vocabulary (built once, from its chunks)."""

    def __init__(
        self, chunks: Sequence[Chunk], keywords: Iterable[str] = (), language: Language | None = None
    ) -> None:
        self.language = language or Language.load()
        vocab: set[str] = set()
        for c in chunks:
            for w in words(f"{c.section} {c.text}"):
                vocab.add(w)
                vocab.update(p for p in w.split("-") if p)
                vocab.add(w.replace("-", ""))
        for k in keywords:
            vocab.update(words(k))
        self.vocab = frozenset(v.strip("'") for v in vocab if v.strip("'"))
        self.stems = frozenset(stem(v) for v in self.vocab)
        self._spellable = sorted(v for v in self.vocab if len(v) >= 4 and not v.isdigit())
        self._by_prefix: dict[str, list[str]] = {}
        for v in self.vocab:
            if len(v) >= 5:
                self._by_prefix.setdefault(v[:4], []).append(v)
        self._prefixes = frozenset(self._by_prefix)
        self.counts: dict[str, int] = {}
        for c in chunks:
            for w in words(c.text):
                self.counts[w] = self.counts.get(w, 0) + 1
        zipf("the")  # load wordfreq's tables now, not on the first question
        english_words()
        self._phrases = sorted(
            (k for k in (*self.language.everyday, *self.language.conditions) if " " in k),
            key=len,
            reverse=True,
        )

    def knows(self, word: str) -> bool:
        """The knowledge base uses the word: as is, by stem, in parts ("shoulder-blade"), or as
        the start of a longer word ("scap" for "scapular")."""
        if word in self.vocab or stem(word) in self.stems or (word.endswith("s") and word[:-1] in self.vocab):
            return True
        if "-" in word:
            return all(self.knows(p) for p in word.split("-") if p)
        return (
            len(word) >= 4
            and word[:4] in self._prefixes
            and any(v.startswith(word) for v in self._by_prefix.get(word[:4], ()))
        )

    def correct(self, word: str) -> str:
        """The knowledge-base word a misspelling stands for, or the word itself."""
        if len(word) < 3 or self.knows(word) or word.isdigit() or zipf(word) >= TYPO_MAX_ZIPF:
            return word
        from rapidfuzz import fuzz, process
        from rapidfuzz.distance import OSA

        if len(word) < 5:  # too short for a similarity score: one edit, only for strings English lacks
            if zipf(word) >= SHORT_TYPO_MAX_ZIPF:
                return word
            near = [
                v
                for v in self.vocab
                if abs(len(v) - len(word)) <= 1 and v.isalpha() and OSA.distance(v, word) == 1
            ]
            return max(near, key=lambda v: (self.counts.get(v, 0), v)) if near else word
        candidates = [v for v in self._spellable if abs(len(v) - len(word)) <= 2]
        best = process.extractOne(word, candidates, scorer=fuzz.ratio, score_cutoff=TYPO_MIN_SCORE)
        return str(best[0]) if best else word

    def _numbers(self, message: str) -> str:
        """Number groups typed loosely ("12 3 30", "12/3/30") as the sources write them ("12-3-30")."""

        def join(m: re.Match[str]) -> str:
            dashed = "-".join(re.split(r"[\s/.-]+", m.group(0)))
            return dashed if dashed in self.vocab else m.group(0)

        return re.sub(r"\b\d+(?:[ /.-]+\d+){1,3}\b", join, message)

    def read(self, message: str) -> ReadQuery:
        typed = message
        message = self._numbers(message)
        corrected = message != typed
        low = message.lower().replace("’", "'")
        conditions = {
            self.language.condition_names.get(c, c): who
            for c, who in self.language.conditions.items()
            if re.search(rf"\b{re.escape(c)}\b", low)
        }
        out: list[str] = []
        meant: list[str] = []  # `out` with companions after their everyday words
        extra: list[str] = []
        terms: dict[str, Term] = {}
        for phrase in self._phrases:  # "hold on", "spinal stenosis"
            if re.search(rf"\b{re.escape(phrase)}\b", low) and phrase in self.language.everyday:
                extra.append(self.language.everyday[phrase])
        for token in re.findall(r"\S+", message):
            parts = words(token)
            if not parts:
                out.append(token)
                meant.append(token)
                continue
            rebuilt = token
            companions: list[str] = []
            for w in parts:
                read = self.language.shorthand[w] if w in self.language.shorthand else self.correct(w)
                weighs_as = read
                if read == w and w not in self.language.everyday and not self.knows(w):
                    english = english_spelling(w)
                    if english and (self.knows(english) or english in STOPWORDS):
                        read = english  # a typo of a word the sources use, or of a filler word
                    weighs_as = english or w
                corrected |= w not in self.language.shorthand and read != w
                if w in self.language.everyday:
                    extra.append(self.language.everyday[w])
                    companions.append(self.language.everyday[w])
                if read != w:
                    rebuilt = re.sub(re.escape(w), read, rebuilt, count=1, flags=re.I)
                for r in words(read):
                    if len(r) > 1 and r not in STOPWORDS and not r.isdigit() and r not in terms:
                        known = self.knows(r) or w in self.language.everyday
                        weight = rarity(weighs_as if weighs_as not in STOPWORDS else r)
                        plainer = tuple(content_terms(self.language.everyday.get(w, "")))
                        terms[r] = Term(w, r, weight, known, plainer)
            if rebuilt.strip():
                out.append(rebuilt)
                meant.append(f"{rebuilt} ({' '.join(companions)})" if companions else rebuilt)
        text = " ".join(out)
        text = re.sub(r"\s+", " ", text).strip()
        # Only words' companions are embedded: a phrase's ("hold on" -> holding onto the treadmill)
        # reads an idiom that the sentence may not mean ("how long do I hold on the top?"), and it
        # stays in the BM25 search only, as before.
        with_companions = re.sub(r"\s+", " ", " ".join(meant)).strip()
        search = " ".join([text, *dict.fromkeys(extra)]).strip()
        return ReadQuery(
            typed,
            text or message,
            search or message,
            list(terms.values()),
            conditions,
            list(dict.fromkeys(extra)),
            corrected,
            with_companions if with_companions != text else "",
        )


@dataclass(frozen=True)
class Evidence:
    """The features the coverage model reads, for one question and its retrieved passages."""

    dense: float  # cosine similarity of the best chunk
    sentence: float  # cosine similarity of the best sentence of the retrieved chunks
    lexical: float  # log(1 + best BM25 score)
    matched: float  # rarity-weighted share of the question's salient words found in the best passages
    known: float  # rarity-weighted share of the question's salient words the sources use
    unknown_rarity: float  # weight of the rarest salient word the sources never use (0: none)
    unmatched_rarity: float = 0.0  # the same for the best passages (`ReadQuery.unmatched_rarity`)
    # cosine similarity to the closest labelled dev question the sources do not / do answer
    like_uncovered: float = 0.0
    like_covered: float = 0.0
    # the same for the question's rest: what its best sentence leaves unexplained (`rest`)
    rest_like_uncovered: float = 0.0
    rest_like_covered: float = 0.0
    # the four above, averaged over the NEIGHBOURS closest examples instead of the closest one
    like_uncovered_k: float = 0.0
    like_covered_k: float = 0.0
    rest_like_uncovered_k: float = 0.0
    rest_like_covered_k: float = 0.0
    # the question model's log-odds that a question asked in these words is covered
    # (`question_model.py`: its words, vector and rest, weighed over every example at once);
    asked_covered: float = 0.0

    def vector(self) -> list[float]:
        return [float(getattr(self, f)) for f in FEATURES]

    def without_examples(self) -> Evidence:
        """The same evidence with the features learned from the labelled examples not counted
        (NaN, see `EXAMPLE_FEATURES`)."""
        return replace(self, **dict.fromkeys(EXAMPLE_FEATURES, math.nan))

    @property
    def examples_counted(self) -> bool:
        return not any(math.isnan(getattr(self, f)) for f in EXAMPLE_FEATURES)

    @classmethod
    def of(
        cls,
        read: ReadQuery,
        dense: float,
        sentence: float,
        bm25: float,
        passages: Sequence[str] = (),
    ) -> Evidence:
        return cls(
            dense=dense if math.isfinite(dense) else 0.0,
            sentence=sentence if math.isfinite(sentence) else 0.0,
            lexical=math.log1p(max(bm25, 0.0)),
            matched=read.matched_share(passages),
            known=read.known_share(),
            unknown_rarity=read.unknown_rarity(),
            unmatched_rarity=read.unmatched_rarity(passages),
        )


@dataclass(frozen=True)
class CoverageModel:
    """p(covered) = sigmoid(w . standardised features + b), weights fitted on the dev split."""

    weights: dict[str, float]
    intercept: float
    mean: dict[str, float]
    scale: dict[str, float]
    threshold: float = 0.5
    # A covered answer whose p(covered) is under this carries a hedge (`compose.hedge_note`): the
    # band where answered questions are most often ones the sources don't quite answer. 0: never.
    hedge_below: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)  # how and on what it was fitted
    # For a question whose best passage comes from a source the labelled examples never saw, none
    # of `EXAMPLE_FEATURES` is measured. Reading them as the dev mean asks a model fitted with them
    # to decide without them, and its threshold was set for questions that have them. So a second
    # regression over the other features alone decides then: fitted on the same dev questions,
    # its own threshold chosen by the same rule, and its intercept moved so that threshold lands
    # on `threshold` (one threshold for callers). None: the dev-mean reading.
    without_examples: dict[str, float] | None = None  # weights of the non-example features, "intercept"

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> CoverageModel:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            model = cls(
                weights={f: float(data["weights"][f]) for f in FEATURES},
                intercept=float(data["intercept"]),
                mean={f: float(data["mean"][f]) for f in FEATURES},
                scale={f: float(data["scale"][f]) or 1.0 for f in FEATURES},
                threshold=float(data.get("threshold", 0.5)),
                hedge_below=float(data.get("hedge_below", 0.0)),
                info=dict(data.get("info") or {}),
                without_examples=(
                    {k: float(v) for k, v in data["without_examples"].items()}
                    if data.get("without_examples")
                    else None
                ),
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the coverage model {path}: {exc}; "
                "refit it with `python -m assistant.coverage_tuning fit`"
            ) from exc
        if not 0.0 < model.threshold < 1.0:
            raise ConfigError(f"coverage threshold must be in (0, 1), got {model.threshold}")
        if model.hedge_below and not model.threshold <= model.hedge_below < 1.0:
            raise ConfigError(
                f"coverage hedge_below must be 0 or in [threshold, 1), got {model.hedge_below}; "
                "refit it with `python -m assistant.coverage_tuning fit`"
            )
        return model

    def probability(self, evidence: Evidence) -> float:
        """A feature that could not be measured (NaN) counts as the dev mean: it adds nothing.
        With none of the example features measured, `without_examples` decides when fitted."""
        weights, intercept = self.weights, self.intercept
        unlabelled = not any(math.isfinite(getattr(evidence, f)) for f in EXAMPLE_FEATURES)
        if unlabelled and self.without_examples is not None:
            weights = self.without_examples
            intercept = self.without_examples["intercept"]
        z = intercept + sum(
            weights[f] * (value - self.mean[f]) / self.scale[f]
            for f in FEATURES
            if f in weights and math.isfinite(value := getattr(evidence, f))
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def covered(self, evidence: Evidence) -> bool:
        return self.probability(evidence) >= self.threshold

    def hedged(self, p_covered: float) -> bool:
        """Answered, but in the band where the answer may miss what was asked."""
        return self.threshold <= p_covered < self.hedge_below

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "weights": self.weights,
            "intercept": self.intercept,
            "mean": self.mean,
            "scale": self.scale,
            "threshold": self.threshold,
            "hedge_below": self.hedge_below,
            **({"without_examples": self.without_examples} if self.without_examples else {}),
            "info": self.info,
        }


def rest(vector: Any, sentence: Any) -> Any:
    """What a question asks beyond its closest sentence of the sources: its vector less the
    part along that sentence, unit length.

    Every question about the sources' subject shares their subject ("back pain on the
    treadmill"), which makes raw similarities alike for questions they answer and ones they
    don't. The rest leaves that out: for "which shoes for treadmill walking?" it is about
    shoes; for a covered question in other words it is little more than phrasing.
    """
    import numpy as np

    q = np.asarray(vector, dtype=np.float32)
    s = np.asarray(sentence, dtype=np.float32)
    r = q - float(q @ s) * s
    norm = float(np.linalg.norm(r))
    return r / norm if norm > 1e-6 else np.zeros_like(r)


class Examples:
    """Labelled dev questions (covered or not), embedded once: how alike a new question is to each
    kind, as a whole and in its rest (`rest`)."""

    def __init__(
        self,
        covered: Sequence[str],
        uncovered: Sequence[str],
        sources: Sequence[str] = (),
        answers: Sequence[Sequence[str]] = (),
    ) -> None:
        self.covered, self.uncovered = list(covered), list(uncovered)
        # the knowledge sources the labels were made against (empty: not recorded)
        self.sources = frozenset(sources)
        # per covered example, phrases of the sources that answer it (empty: not recorded)
        self.answers = [tuple(a) for a in answers] or [() for _ in self.covered]
        self._vectors: tuple[Any, Any] | None = None
        self._knowledge: tuple[Any, Any] | None = None  # see `know`
        # (chunk ids, their columns, which chunks answered each covered example): see `know`, `votes`
        self._answered: tuple[list[str], dict[str, int], Any] | None = None
        self._unseen: set[str] = set()  # chunks of sources added since the examples were labelled
        self._left_out: str | None = None  # see `without`
        self._rests: tuple[Any, Any] | None = None
        self._kept: Any = None  # which uncovered examples are still uncovered (see `vectors`)
        self._question_model: QuestionModel | None = None  # see `question_model`
        self._read: Callable[[str], str] | None = None  # see `know`
        # where vectors and rests are kept between runs (`cache_at`); None: computed every run
        self.cache_file: Path | None = None

    def cache_at(self, folder: Path, *parts: str) -> None:
        """Keep the vectors and rests in `folder`, under a key of the examples and of `parts`
        (what else they depend on: the model, the sources' text)."""
        import hashlib

        labels = [*self.covered, "\x1e", *self.uncovered, "\x1e", *sorted(self.sources)]
        text = "\x1f".join([*labels, "\x1e", *parts])
        digest = hashlib.sha256(text.encode())
        self.cache_file = folder / f"examples-{digest.hexdigest()[:20]}.npz"

    def _load_cache(self) -> None:
        import numpy as np

        if self.cache_file is None or not self.cache_file.exists() or self._rests is not None:
            return
        try:
            with np.load(self.cache_file) as data:
                self._vectors = (data["cov"], data["unc"])
                self._rests = (data["cov_rest"], data["unc_rest"])
                self._kept = data["unc_kept"]
        except Exception as exc:  # a broken or older cache is recomputed, never fatal
            log.warning("Ignoring the unreadable examples cache %s (%s).", self.cache_file, exc)
            self._vectors = self._rests = self._kept = None

    def _save_cache(self) -> None:
        import os
        import tempfile

        import numpy as np

        if self.cache_file is None or self._vectors is None or self._rests is None:
            return
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_file.parent, suffix=".npz")
            with os.fdopen(fd, "wb") as fh:
                cov, unc = self._vectors
                np.savez(
                    fh,
                    cov=cov,
                    unc=unc,
                    cov_rest=self._rests[0],
                    unc_rest=self._rests[1],
                    unc_kept=self._kept,
                )
            os.replace(tmp, self.cache_file)
        except OSError as exc:  # a read-only cache folder only costs time
            log.warning("Could not keep the examples cache in %s (%s).", self.cache_file, exc)

    @classmethod
    def load(cls, path: Path = EXAMPLES_FILE) -> Examples:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            return cls([], [])
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the coverage examples {path}: {exc}") from exc
        covered = [c if isinstance(c, dict) else {"question": c} for c in data.get("covered") or []]
        return cls(
            [str(c["question"]) for c in covered],
            [str(q) for q in data.get("uncovered") or []],
            [str(s) for s in data.get("sources") or []],
            [tuple(str(a) for a in c.get("answer") or ()) for c in covered],
        )

    def know(
        self,
        chunk_matrix: Any,
        chunk_sources: Sequence[str],
        chunk_ids: Sequence[str] = (),
        chunk_texts: Sequence[str] = (),
        read: Callable[[str], str] | None = None,
    ) -> None:
        """Tell the examples which knowledge base they are used with (every chunk's unit vector,
        source, id and text).

        An "uncovered" label is true of the sources it was made against: an uncovered example
        whose closest chunk now comes from a source added since ("how do I do a dead bug?" once a
        document on it is dropped in) stops counting as uncovered. A covered example's answer is
        found again by its phrases, in whichever chunks hold them now (`votes`). `read` gives a
        question as the assistant reads it (`ReadQuery.search`): the question model reads the
        examples so too."""
        import numpy as np

        new = np.array([s not in self.sources for s in chunk_sources], dtype=bool)
        self._knowledge = (chunk_matrix, new) if self.sources and new.any() else None
        self._vectors = self._rests = self._kept = None
        self._question_model = None
        self._read = read
        answered = holding(chunk_texts, self.answers)
        ids = list(chunk_ids)
        self._answered = (ids, {c: i for i, c in enumerate(ids)}, answered) if answered.any() else None
        self._unseen = {c for c, n in zip(chunk_ids, new, strict=False) if n} if self.sources else set()

    @contextmanager
    def without(self, question: str) -> Iterator[None]:
        """Within the block, the example with this question does not vote: tuning judges a dev
        question through the whole assistant without its own label (not thread-safe; tuning only)."""
        self._left_out = question
        try:
            yield
        finally:
            self._left_out = None

    def voters(self, embedder: Any, vector: Any) -> list[tuple[int, float]]:
        """The VOTERS covered examples most like the question, with their cosine similarity
        (at least 0): (index into `covered`, similarity); never the one `without` leaves out."""
        import numpy as np

        cov, _ = self.vectors(embedder)
        if not len(cov):
            return []
        sims = cov @ np.asarray(vector, dtype=np.float32)
        order = np.argsort(-sims)
        if self._left_out is not None:  # tuning only: drop the left-out example
            order = order[[self.covered[int(i)] != self._left_out for i in order]]
        return [(int(i), max(float(sims[i]), 0.0)) for i in order[:VOTERS]]

    def voted_phrases(self, embedder: Any, vector: Any) -> dict[str, float]:
        """The answering phrases of the examples most like the question, each with the greatest
        similarity of an example it answers: what the composer prefers to quote (`Composer`)."""
        out: dict[str, float] = {}
        for i, sim in self.voters(embedder, vector):
            for phrase in self.answers[i]:
                out[phrase] = max(out.get(phrase, 0.0), sim)
        return out

    def votes(self, embedder: Any, vector: Any, chunk_ids: Sequence[str]) -> Any:
        """Per chunk: how strongly the covered examples most like the question say that chunk
        answered them, the sum of the VOTERS nearest ones' similarities over VOTERS (0 for a
        chunk none of them points at).

        No candidate gets a vote when one of them comes from a source added since the examples
        were labelled: nobody could have voted for it, so the votes would not compare like with
        like ("how do I do a dead bug?" would go to the one passage that names dead bugs among
        the labelled sources, past a new document's "Dead Bug" section)."""
        import numpy as np

        out = np.zeros(len(chunk_ids), dtype=np.float32)
        if self._answered is None or not self._unseen.isdisjoint(chunk_ids):
            return out
        _, column, _ = self._answered
        score = self._vote_scores(embedder, vector)
        if score is None:
            return out
        for i, cid in enumerate(chunk_ids):
            if cid in column:
                out[i] = float(score[column[cid]]) / VOTERS
        return out

    def voted_chunks(self, embedder: Any, vector: Any, limit: int) -> list[str]:
        """Up to `limit` chunks the covered examples most like the question were answered by,
        most voted first: candidates fusion may have missed ("should I watch my toes or the
        ceiling on the belt?" shares no word and little meaning with "keep a neutral gaze
        ahead", but its nearest labelled questions were answered there)."""
        import numpy as np

        score = self._vote_scores(embedder, vector) if limit > 0 else None
        if score is None:
            return []
        ids = self._answered[0]  # type: ignore[index]  # set whenever there are scores
        return [ids[j] for j in np.argsort(-score, kind="stable")[:limit] if score[j] > 0]

    def _vote_scores(self, embedder: Any, vector: Any) -> Any:
        """Per chunk (in `know`'s order): the summed similarity of the VOTERS nearest covered
        examples it answered; None when no example can vote."""
        import numpy as np

        if self._answered is None:
            return None
        _, _, answered = self._answered
        voters = self.voters(embedder, vector)
        if not voters:
            return None
        weight = np.array([w for _, w in voters], dtype=np.float32)
        return weight @ answered[np.array([i for i, _ in voters])]

    def _still_uncovered(self, unc: Any) -> Any:
        """Which uncovered examples are still unanswered by the sources (see `know`)."""
        import numpy as np

        if self._knowledge is None or not len(unc):
            return np.ones(len(unc), dtype=bool)
        matrix, new = self._knowledge
        return ~new[np.argmax(unc @ matrix.T, axis=1)]

    def vectors(self, embedder: Any) -> tuple[Any, Any]:
        import numpy as np

        self._load_cache()
        if self._vectors is None:
            empty = np.zeros((0, 0), dtype=np.float32)
            cov = embedder.encode(self.covered) if self.covered else empty
            unc = embedder.encode(self.uncovered) if self.uncovered else empty
            unc = np.asarray(unc, dtype=np.float32)
            self._kept = self._still_uncovered(unc)
            self._vectors = (np.asarray(cov, dtype=np.float32), unc[self._kept])
        return self._vectors

    def labelled(self, embedder: Any, sentence_of: Callable[[Any], Any]) -> tuple[list[str], Any, Any, Any]:
        """Every example still labelled (covered first): its text, vector, rest and label."""
        import numpy as np

        cov, unc = self.vectors(embedder)
        cov_r, unc_r = self.rests(embedder, sentence_of)
        kept = [q for q, k in zip(self.uncovered, self._kept, strict=True) if k] if self.uncovered else []
        covered = np.r_[np.ones(len(cov), dtype=bool), np.zeros(len(unc), dtype=bool)]
        return [*self.covered, *kept], _rows(cov, unc), _rows(cov_r, unc_r), covered

    def read(self, question: str) -> str:
        """A question as the assistant reads it (see `know`); as typed when not told how."""
        return self._read(question) if self._read is not None else question

    def question_model(self, embedder: Any, sentence_of: Callable[[Any], Any]) -> QuestionModel | None:
        """The question model fitted on these examples (`question_model.py`), kept beside the
        examples' cache; None without examples of both kinds."""
        if self._question_model is None:
            texts, vectors, rests, covered = self.labelled(embedder, sentence_of)
            if not 0 < int(covered.sum()) < len(covered):
                return None
            path = (
                self.cache_file.with_name(f"{self.cache_file.stem}-asked-{_reader_key()}.npz")
                if self.cache_file
                else None
            )
            if path is not None and path.exists():
                try:
                    self._question_model = QuestionModel.load(path)
                except Exception as exc:  # a broken cache is refitted, never fatal
                    log.warning("Refitting the question model: cannot read %s (%s).", path, exc)
            if self._question_model is None:
                self._question_model = QuestionModel.fit(
                    [self.read(t) for t in texts], vectors, rests, covered
                )
                if path is not None:
                    try:
                        self._question_model.save(path)
                    except OSError as exc:  # a read-only cache folder only costs time
                        log.warning("Could not keep the question model in %s (%s).", path, exc)
        return self._question_model

    def labelled_against(self, source: str) -> bool:
        """The labels were made with this source among the sources (or their sources are not recorded)."""
        return not self.sources or source in self.sources

    def asked(
        self, embedder: Any, text: str, vector: Any, rest_vector: Any, sentence_of: Callable[[Any], Any]
    ) -> float:
        """The question model's log-odds that a question asked so (`text` as read) is covered
        (0.0 without one)."""
        model = self.question_model(embedder, sentence_of)
        return 0.0 if model is None else model.log_odds_one(text, vector, rest_vector)

    def rests(self, embedder: Any, sentence_of: Callable[[Any], Any]) -> tuple[Any, Any]:
        """The examples' rests, each against its own closest sentence (`sentence_of(vector)`)."""
        import numpy as np

        self._load_cache()
        if self._rests is None:
            cov, unc = self.vectors(embedder)
            self._rests = tuple(  # type: ignore[assignment]
                np.asarray([rest(v, sentence_of(v)) for v in m], dtype=np.float32).reshape(m.shape)
                for m in (cov, unc)
            )
            self._save_cache()
        assert self._rests is not None
        return self._rests

    def likeness(
        self,
        embedder: Any,
        vector: Any,
        rest_vector: Any = None,
        sentence_of: Callable[[Any], Any] | None = None,
    ) -> dict[str, float]:
        """The likeness features of `Evidence`: how close the question is to the uncovered and
        the covered examples, and its rest to theirs (0.0 without `rest_vector`)."""
        import numpy as np

        cov, unc = self.vectors(embedder)
        q = np.asarray(vector, dtype=np.float32)
        out = likeness_features("", unc @ q if len(unc) else [], cov @ q if len(cov) else [])
        if rest_vector is not None and sentence_of is not None:
            cov_r, unc_r = self.rests(embedder, sentence_of)
            r = np.asarray(rest_vector, dtype=np.float32)
            out |= likeness_features(
                "rest_", unc_r @ r if len(unc_r) else [], cov_r @ r if len(cov_r) else []
            )
        return out


@lru_cache(maxsize=1)
def _reader_key() -> str:
    """What the question model's fit depends on beyond the examples' cache key: how questions
    are read (`language.yaml`, this module) and the model's own code."""
    import hashlib

    from assistant import question_model

    digest = hashlib.sha256()
    for path in (LANGUAGE_FILE, Path(__file__), Path(question_model.__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _rows(first: Any, second: Any) -> Any:
    """Two row blocks stacked, either of which may be empty (shape (0, 0))."""
    import numpy as np

    blocks = [np.asarray(b, dtype=np.float32) for b in (first, second) if len(b)]
    return np.vstack(blocks) if blocks else np.zeros((0, 0), dtype=np.float32)


def likeness_features(prefix: str, uncovered: Any, covered: Any) -> dict[str, float]:
    """From one question's similarities to the uncovered and the covered examples: the closest of
    each kind, and the mean of the NEIGHBOURS closest (`Evidence`'s like_* features)."""
    import numpy as np

    out: dict[str, float] = {}
    for kind, sims in (("uncovered", uncovered), ("covered", covered)):
        top = np.sort(np.asarray(sims, dtype=np.float32))[::-1][:NEIGHBOURS]
        out[f"{prefix}like_{kind}"] = float(top[0]) if len(top) else 0.0
        out[f"{prefix}like_{kind}_k"] = float(top.mean()) if len(top) else 0.0
    return out
