"""Hybrid retrieval: dense (Chroma) and lexical (BM25) rankings fused by weighted RRF.

Dense search finds paraphrases ("walking uphill" for "incline"); BM25 finds exact
names ("bird dog", "12-3-30"). Reciprocal rank fusion needs no score calibration
between the two. A question the knowledge base does not cover (see `covers`) gets
nothing, so the answer can say so instead of citing the least bad chunk. Past that
gate, chunks are not filtered one by one: a short, specific question ("what is tech
neck") can be answered by a chunk whose overall similarity is low.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from assistant.config import Settings
from assistant.coverage import TermCoverage
from assistant.embeddings import Embedder
from assistant.errors import ConfigError
from assistant.store import ChromaStore
from assistant.types import Chunk, ScoredChunk

# bm25s stop-word list: "en" keeps "my", "does", "should", which skew short questions
STOPWORDS = "en_plus"


class LexicalIndex:
    """BM25 over chunk texts (bm25s, with English stop words and Snowball stemming)."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        import bm25s
        import Stemmer

        # bm25s installs its own DEBUG-level handler; keep stderr for messages people need
        logging.getLogger("bm25s").setLevel(logging.WARNING)

        self._bm25s = bm25s
        self._stemmer = Stemmer.Stemmer("english")
        self.ids = [c.id for c in chunks]
        self._bm25 = bm25s.BM25()
        if chunks:
            tokens = bm25s.tokenize(
                [f"{c.section}\n{c.text}" for c in chunks],
                stopwords=STOPWORDS,
                stemmer=self._stemmer,
                show_progress=False,
            )
            self._bm25.index(tokens, show_progress=False)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of up to k chunks sharing a term with the query, best first."""
        if not self.ids:
            return []
        tokens = self._bm25s.tokenize(
            [query], stopwords=STOPWORDS, stemmer=self._stemmer, return_ids=False, show_progress=False
        )
        if not tokens or not tokens[0]:
            return []
        idx, scores = self._bm25.retrieve(tokens, k=min(k, len(self.ids)), show_progress=False)
        return [(self.ids[int(i)], float(s)) for i, s in zip(idx[0], scores[0], strict=True) if s > 0]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], weights: Sequence[float], k: int = 60
) -> list[tuple[str, float]]:
    """Weighted RRF (Cormack et al., 2009): score(d) = sum_i w_i / (k + rank_i(d))."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


class HybridRetriever(BaseRetriever):
    """A LangChain retriever over the knowledge index; `search` returns typed scored chunks.

    Example:
        >>> retriever = HybridRetriever.build(store, embedder, settings)
        >>> docs = retriever.invoke("why does my back hurt on incline?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: ChromaStore
    embedder: Embedder
    top_k: int = 4
    candidates: int = 20
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    rrf_k: int = 60
    min_similarity: float = 0.3
    covered_similarity: float = 0.55

    _chunks: dict[str, Chunk] = PrivateAttr(default_factory=dict)
    _lexical: LexicalIndex | None = PrivateAttr(default=None)
    _coverage: TermCoverage | None = PrivateAttr(default=None)

    @classmethod
    def build(
        cls,
        store: ChromaStore,
        embedder: Embedder,
        settings: Settings,
        keywords: Sequence[str] = (),
    ) -> HybridRetriever:
        """Load every chunk once (for BM25, lookups and coverage) and take the knobs from settings."""
        if settings.candidates < settings.top_k:
            raise ConfigError(
                f"candidates must be >= top_k, got candidates={settings.candidates}, top_k={settings.top_k}"
            )
        retriever = cls(
            store=store,
            embedder=embedder,
            top_k=settings.top_k,
            candidates=settings.candidates,
            dense_weight=settings.dense_weight,
            lexical_weight=settings.lexical_weight,
            rrf_k=settings.rrf_k,
            min_similarity=settings.min_similarity,
            covered_similarity=settings.covered_similarity,
        )
        chunks = store.all_chunks()
        retriever._chunks = {c.id: c for c in chunks}
        retriever._lexical = LexicalIndex(chunks)
        retriever._coverage = TermCoverage(chunks, embedder, keywords)
        return retriever

    def warm_up(self) -> None:
        if self._coverage is not None:
            self._coverage.warm_up()

    @property
    def chunks(self) -> list[Chunk]:
        return list(self._chunks.values())

    def chunk(self, chunk_id: str) -> Chunk:
        return self._chunks[chunk_id]

    def search(
        self, query: str, *, query_vector: np.ndarray | None = None, top_k: int | None = None
    ) -> list[ScoredChunk]:
        """The top chunks for a query, or [] when nothing in the index is relevant."""
        k = top_k or self.top_k
        if k <= 0:
            raise ValueError(f"top_k must be > 0, got {k}")
        vector = query_vector if query_vector is not None else self.embedder.encode_one(query)
        dense = self.store.query(vector, self.candidates)
        similarity = dict(dense)
        lexical = self._lexical.search(query, self.candidates) if self._lexical else []
        if not self.covers(query, dense[0][1] if dense else -1.0, bool(lexical)):
            return []
        fused = reciprocal_rank_fusion(
            [[i for i, _ in dense], [i for i, _ in lexical]],
            [self.dense_weight, self.lexical_weight],
            self.rrf_k,
        )
        results: list[ScoredChunk] = []
        for chunk_id, score in fused:
            sim = similarity.get(chunk_id)
            if chunk_id not in self._chunks:
                continue
            results.append(
                ScoredChunk(self._chunks[chunk_id], score, sim if sim is not None else float("nan"))
            )
            if len(results) == k:
                break
        return results

    def unknown_terms(self, query: str) -> list[str]:
        """Content words of the query that the knowledge base never uses (see coverage.py)."""
        return self._coverage.unknown_terms(query) if self._coverage else []

    def covers(self, query: str, best_similarity: float, lexical_match: bool) -> bool:
        """Whether the knowledge base covers the question at all.

        A question whose content words the knowledge base does not use ("knee brace")
        is covered only when its meaning is very close (`covered_similarity`); one whose
        words it knows needs `min_similarity`, or a lexical match for short, specific
        questions ("what is tech neck") that embed poorly.
        """
        if best_similarity >= self.covered_similarity:
            return True
        if self._coverage and self._coverage.unknown_terms(query):
            return False
        return best_similarity >= self.min_similarity or lexical_match

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [
            Document(
                page_content=hit.chunk.text,
                id=hit.chunk.id,
                metadata={**hit.chunk.metadata(), "score": hit.score, "similarity": hit.similarity},
            )
            for hit in self.search(query)
        ]
