"""Which retrieved passage answers best: a small reranker over the fused candidates, fitted on dev.

Reciprocal rank fusion orders passages by where two rankers put them, which says little
about which one *answers*: a passage can be close to the question in meaning but not
hold its words, or share its words in one aside. The reranker scores each of the fused
candidates with four pieces of evidence, all relative to the best candidate of the
same question so that scores compare across questions:

* `fused`: its fusion score over the best one (dense + BM25 rankings, and a follow-up's topic);
* `dense`: its cosine similarity minus the best candidate's;
* `sentence`: its best sentence's cosine similarity minus the best such sentence's
  (an answer is usually one sentence, and a long passage's average hides it);
* `words`: the rarity-weighted share of the question's words (and the plainer companions
  of everyday words) that the passage uses (`ReadQuery.explained_by`);
* `vote`: how strongly the labelled dev questions most like this one were answered by the
  passage (`coverage.Examples.votes`): questions asked in other words before point at the
  passage that answered them, which similarity alone often misses ("12-3-30 meaning?").

score = w . features. The weights are a conditional logit ("which of these candidates
holds the answer", softmax over a question's candidates) fitted on the dev split of the
project's own covered questions, where a passage holds the answer when it contains one
of the question's expected phrases (`python -m assistant.coverage_tuning fit-rerank`).
They are stored, with how they were fitted, in `rules/rerank_model.yaml`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from assistant.coverage import ReadQuery
from assistant.errors import ConfigError
from assistant.types import Chunk, ScoredChunk

RERANK_FILE = Path(__file__).parent / "rules" / "rerank_model.yaml"
RERANK_FEATURES = ("fused", "dense", "sentence", "words", "vote")

SentenceScore = Callable[[Chunk, np.ndarray], float]
Votes = Callable[[Sequence[ScoredChunk], np.ndarray], np.ndarray]


def candidate_features(
    read: ReadQuery,
    hits: Sequence[ScoredChunk],
    query_vector: np.ndarray,
    sentence: SentenceScore,
    votes: Votes | None = None,
) -> np.ndarray:
    """One row of `RERANK_FEATURES` per candidate, each relative to the best candidate (`vote`
    is absolute: no vote at all says nothing about which candidate answers)."""
    if not hits:
        return np.zeros((0, len(RERANK_FEATURES)))
    fused = np.array([h.score for h in hits], dtype=float)
    dense = np.array([h.similarity if math.isfinite(h.similarity) else -1.0 for h in hits], dtype=float)
    sent = np.array([sentence(h.chunk, query_vector) for h in hits], dtype=float)
    words = np.array([read.explained_by(f"{h.chunk.section} {h.chunk.text}") for h in hits], dtype=float)
    top = float(fused.max())
    vote = votes(hits, query_vector) if votes is not None else np.zeros(len(hits))
    return np.column_stack(
        [fused / top if top > 0 else fused, dense - dense.max(), sent - sent.max(), words, vote]
    )


@dataclass(frozen=True)
class Reranker:
    """score = w . candidate features; the best-scoring candidate is cited first."""

    weights: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = RERANK_FILE) -> Reranker:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            # a feature the file predates weighs nothing until the reranker is refitted
            weights = {f: float(data["weights"].get(f, 0.0)) for f in RERANK_FEATURES}
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the reranker {path}: {exc}; "
                "refit it with `python -m assistant.coverage_tuning fit-rerank`"
            ) from exc
        return cls(weights, dict(data.get("info") or {}))

    def vector(self) -> np.ndarray:
        return np.array([self.weights[f] for f in RERANK_FEATURES], dtype=float)

    def rerank(
        self,
        read: ReadQuery,
        hits: Sequence[ScoredChunk],
        query_vector: np.ndarray,
        sentence: SentenceScore,
        votes: Votes | None = None,
    ) -> list[ScoredChunk]:
        """The candidates, best answer first; each keeps its scores, `score` becomes the reranker's."""
        if len(hits) < 2:
            return list(hits)
        scores = candidate_features(read, hits, query_vector, sentence, votes) @ self.vector()
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
        return [replace(hits[i], score=float(scores[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(RERANK_FEATURES), "weights": self.weights, "info": self.info}


def fit_weights(
    groups: Sequence[tuple[np.ndarray, np.ndarray]], l2: float = 0.01
) -> tuple[np.ndarray, float]:
    """Conditional-logit weights: maximise the mean log-probability that the softmax over each
    question's candidates picks one holding the answer (L2 penalty `l2` keeps them modest).

    `groups` holds (features, holds_answer) per question; questions without any candidate
    holding the answer are left out (nothing to learn from them). Returns (weights, top-1 share).
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    usable = [(x, y.astype(bool)) for x, y in groups if y.any() and len(y) > 1]
    if not usable:
        raise ValueError("no question has a candidate holding its answer")

    def loss(w: np.ndarray) -> float:
        total = 0.0
        for x, y in usable:
            s = x @ w
            total -= float(logsumexp(s[y]) - logsumexp(s))
        return total / len(usable) + l2 * float(w @ w)

    w = minimize(loss, np.zeros(len(RERANK_FEATURES)), method="L-BFGS-B").x
    top1 = float(np.mean([y[int(np.argmax(x @ w))] for x, y in usable]))
    return w, top1
