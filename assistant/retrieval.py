"""Hybrid retrieval: dense (Chroma) and lexical (BM25) rankings fused by weighted RRF.

Dense search finds paraphrases ("walking uphill" for "incline"); BM25 finds exact
names ("bird dog", "12-3-30"). Reciprocal rank fusion needs no score calibration
between the two. Retrieval never decides that a question is not covered: it returns
its best passages with their scores, and `coverage.CoverageModel` judges, from that
evidence, whether they answer the question. A follow-up's conversation topic (chunks
the previous turns were about) joins the fusion as a third ranking.
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
from assistant.coverage import QueryReader
from assistant.embeddings import Embedder
from assistant.errors import ConfigError, StoreError
from assistant.store import ChromaStore
from assistant.types import Chunk, ScoredChunk

log = logging.getLogger(__name__)


def _unit(vector: np.ndarray) -> np.ndarray:
    """The vector at unit length (the chunks' vectors are kept so: a dot product is a cosine)."""
    q = np.asarray(vector, dtype=np.float32)
    return q / max(float(np.linalg.norm(q)), 1e-12)

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
    topic_weight: float = 1.5  # a follow-up's topic outranks its own weak words (one ranking of three)

    _chunks: dict[str, Chunk] = PrivateAttr(default_factory=dict)
    _matrix: np.ndarray | None = PrivateAttr(default=None)  # every chunk's unit vector, one row each
    _matrix_ids: list[str] = PrivateAttr(default_factory=list)
    _row: dict[str, int] = PrivateAttr(default_factory=dict)
    _store_lost: bool = PrivateAttr(default=False)
    _lexical: LexicalIndex | None = PrivateAttr(default=None)
    _reader: QueryReader | None = PrivateAttr(default=None)

    @classmethod
    def build(
        cls,
        store: ChromaStore,
        embedder: Embedder,
        settings: Settings,
        keywords: Sequence[str] = (),
    ) -> HybridRetriever:
        """Load every chunk and its vector once (for BM25, lookups, spelling and a store that
        goes away) and take the knobs from settings."""
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
        )
        chunks, vectors = store.all_chunks_and_vectors()
        retriever._chunks = {c.id: c for c in chunks}
        if vectors:
            retriever._matrix_ids = list(vectors)
            retriever._row = {i: n for n, i in enumerate(retriever._matrix_ids)}
            retriever._matrix = np.stack(list(vectors.values()))
        retriever._lexical = LexicalIndex(chunks)
        retriever._reader = QueryReader(chunks, keywords)
        return retriever

    def warm_up(self) -> None:
        """Nothing is embedded lazily by the retriever; kept for the `Assistant.warm_up` protocol."""

    @property
    def reader(self) -> QueryReader:
        """Reads messages against this knowledge base's vocabulary (typos, shorthand, everyday words)."""
        if self._reader is None:
            self._reader = QueryReader(self.chunks)
        return self._reader

    @property
    def chunks(self) -> list[Chunk]:
        return list(self._chunks.values())

    def chunk(self, chunk_id: str) -> Chunk:
        return self._chunks[chunk_id]

    def scored(self, ids: Sequence[str], query_vector: np.ndarray) -> list[ScoredChunk]:
        """Chunks fusion did not rank, with their cosine similarity to the query (fused and BM25
        scores 0): candidates found another way (`Assistant.candidates`)."""
        q = _unit(query_vector)
        return [
            ScoredChunk(self._chunks[i], 0.0, float(v @ q), 0.0)
            for i, v in self.vectors(ids).items()
            if i in self._chunks
        ]

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Unit-length vectors of the given chunks, from memory (unknown ids are skipped)."""
        if self._matrix is None:
            return {}
        return {i: self._matrix[self._row[i]] for i in ids if i in self._row}

    def vector_matrix(self) -> tuple[list[str], np.ndarray]:
        """Every chunk id and its unit vector as the rows of one matrix (empty if no chunks)."""
        if self._matrix is None:
            return [], np.zeros((0, 0), dtype=np.float32)
        return self._matrix_ids, self._matrix  # shared, read-only

    def _dense(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """The store's nearest chunks. If an embedded index's folder can no longer be read
        (deleted or damaged while running: Chroma opens new SQLite connections as it goes), the
        same search runs exactly over the vectors loaded at start, and one warning says to
        rebuild. A Chroma server's outage is not hidden: it stays an error the reply reports."""
        if not self._store_lost:
            try:
                return self.store.query(vector, n)
            except StoreError as exc:
                if self.store.server is not None or self._matrix is None:
                    raise
                self._store_lost = True
                log.warning(
                    "%s; answering from the copy of the index loaded at start. "
                    "Restore the folder, or rebuild it with: python -m assistant ingest --rebuild",
                    exc,
                )
        if self._matrix is None:
            return []
        sims = self._matrix @ _unit(vector)
        order = np.argsort(-sims, kind="stable")[:n]
        return [(self._matrix_ids[int(i)], float(sims[int(i)])) for i in order]

    def search(
        self,
        query: str,
        *,
        query_vector: np.ndarray | None = None,
        top_k: int | None = None,
        topic: Sequence[str] = (),
    ) -> list[ScoredChunk]:
        """The top chunks for a query, best first, with their dense and BM25 scores.

        `topic` ranks chunk ids the conversation is about (best first); it joins the
        fusion with `topic_weight`, so a follow-up ("how many reps?") stays on the
        exercise just discussed unless its own words point elsewhere.
        """
        k = top_k or self.top_k
        if k <= 0:
            raise ValueError(f"top_k must be > 0, got {k}")
        vector = query_vector if query_vector is not None else self.embedder.encode_one(query)
        dense = self._dense(vector, self.candidates)
        similarity = dict(dense)
        lexical = self._lexical.search(query, self.candidates) if self._lexical else []
        bm25 = dict(lexical)
        rankings = [[i for i, _ in dense], [i for i, _ in lexical]]
        weights = [self.dense_weight, self.lexical_weight]
        if topic:
            rankings.append(list(topic))
            weights.append(self.topic_weight)
        fused = reciprocal_rank_fusion(rankings, weights, self.rrf_k)
        top = [i for i, _ in fused[:k] if i in self._chunks]
        missing = [i for i in top if i not in similarity]
        if missing:  # a topic or BM25-only chunk: its cosine is evidence all the same
            q = _unit(vector)
            similarity.update({i: float(v @ q) for i, v in self.vectors(missing).items()})
        results: list[ScoredChunk] = []
        for chunk_id, score in fused:
            if chunk_id not in self._chunks:
                continue
            sim = similarity.get(chunk_id)
            results.append(
                ScoredChunk(
                    self._chunks[chunk_id],
                    score,
                    sim if sim is not None else float("nan"),
                    bm25.get(chunk_id, 0.0),
                )
            )
            if len(results) == k:
                break
        return results

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
