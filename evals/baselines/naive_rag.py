"""A plain LangChain RAG over the raw article: the bar the assistant has to clear.

What a tutorial would build: the article's raw text (a copy of the project's seed,
`data/treadmill-back-pain-article.txt`, page furniture and all), split by
`RecursiveCharacterTextSplitter` at 1,000 characters with 200 overlap, embedded by
the same model as the assistant (`assistant.embeddings.Embedder`, a LangChain
`Embeddings`), stored in an in-memory `langchain_chroma.Chroma` collection (an
ephemeral client, nothing on disk; Chroma never sees its default embedding
function), and searched by top-4 cosine similarity. No triage, no lexical search,
no "not covered" threshold.

Its answer is extractive, so the answer metrics compare like with like: from each
of the top-4 chunks, in rank order, the one sentence (or list line) sharing the
most content words with the question (ties: the earlier sentence), followed by
`[n]` for that chunk; duplicates are skipped. No model writes anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evals.metrics import Statement, content_words
from evals.systems import SystemAnswer

if TYPE_CHECKING:
    from assistant.embeddings import Embedder

ARTICLE = Path(__file__).resolve().parent / "data" / "treadmill-back-pain-article.txt"
CHUNK_SIZE = 1000
CHUNK_OVERLAP = 200
TOP_K = 4
# sentence ends (not a list number such as "3."), optionally closing a quote; or line breaks
_SENTENCE = re.compile(r"(?:(?<=[^\d\s][.!?])|(?<=[.!?][\"”]))\s+|\n+")


class NaiveRag:
    """Top-4 similarity search over 1,000/200 character chunks, answers by best sentences."""

    name = "baseline"
    has_triage = False
    top_k = TOP_K

    def __init__(self, embedder: Embedder, article: Path = ARTICLE) -> None:
        import chromadb
        from langchain_chroma import Chroma
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(
            chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP
        )
        self.chunks = splitter.split_text(article.read_text(encoding="utf-8"))
        client = chromadb.EphemeralClient(
            settings=chromadb.Settings(anonymized_telemetry=False, allow_reset=True)
        )
        self.store = Chroma(
            collection_name="naive_rag_baseline",
            embedding_function=embedder,
            client=client,
            collection_metadata={"hnsw:space": "cosine"},
        )
        self.store.reset_collection()  # the ephemeral client is shared within a process
        self.store.add_texts(self.chunks, ids=[f"c{i:04d}" for i in range(len(self.chunks))])

    def retrieve(self, query: str, k: int) -> list[str]:
        return [d.page_content for d in self.store.similarity_search(query, k=k)]

    def answer(self, message: str, history: Sequence[dict[str, str]] = ()) -> SystemAnswer:
        chunks = self.retrieve(message, self.top_k)
        pairs = claims(message, chunks)
        return SystemAnswer(
            response="\n".join(f"{s} [{n}]" for s, n in pairs),
            citations=chunks,
            claims=tuple(Statement(s, (n,)) for s, n in pairs),
        )


def best_sentence(question: str, chunk: str) -> str:
    """The sentence of `chunk` sharing the most content words with the question."""
    asked = set(content_words(question))
    sentences = [s.strip() for s in _SENTENCE.split(chunk) if len(s.split()) >= 3]
    if not sentences:
        return " ".join(chunk.split())
    scores = [len(asked & set(content_words(s))) for s in sentences]
    return sentences[scores.index(max(scores))]


def claims(question: str, chunks: Sequence[str]) -> list[tuple[str, int]]:
    """One best sentence per chunk, in rank order, each with its citation number."""
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for n, chunk in enumerate(chunks, start=1):
        sentence = best_sentence(question, chunk)
        if sentence not in seen:
            seen.add(sentence)
            out.append((sentence, n))
    return out


def compose(question: str, chunks: Sequence[str]) -> str:
    """One best sentence per chunk, in rank order, each followed by its [n]."""
    return "\n".join(f"{s} [{n}]" for s, n in claims(question, chunks))
