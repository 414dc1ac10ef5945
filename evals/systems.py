"""The systems under evaluation, behind two small protocols the suites call.

Suites never import the assistant's internals: they ask a `Retriever` for
ranked passage texts and an `Answerer` for a `SystemAnswer`. `Ours` adapts the
real `Assistant`; `evals.baselines.naive_rag.NaiveRag` is the LangChain baseline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from evals.metrics import Statement

if TYPE_CHECKING:
    from assistant.assistant import Assistant


@dataclass(frozen=True)
class SystemAnswer:
    """What a suite needs from an answer (the fields of `Answer.to_dict`, plainly typed)."""

    response: str
    citations: list[str]  # text of citation n at index n-1
    covered: bool = True
    hedged: bool = False  # covered, with a line saying the sources may not answer exactly this
    level: str | None = None  # triage level; None for systems without triage
    reasons: list[str] = field(default_factory=list)
    policy_text: list[str] = field(default_factory=list)  # triage wording put before the advice
    timings_ms: dict[str, float] = field(default_factory=dict)
    # the answer's claims, each with the citation numbers it carries (None: only `response`)
    claims: tuple[Statement, ...] | None = None


class Retriever(Protocol):
    name: str
    top_k: int  # passages the system retrieves per question at its operating point

    def retrieve(self, query: str, k: int) -> list[str]:
        """Passage texts, best first (at most k)."""
        ...


class Answerer(Protocol):
    name: str
    has_triage: bool

    def answer(self, message: str, history: Sequence[dict[str, str]] = ()) -> SystemAnswer: ...


class Ours:
    """The assistant as the suites see it: `retriever.search` and `ask`."""

    name = "ours"
    has_triage = True

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.top_k = assistant.retriever.top_k

    @classmethod
    def from_settings(cls, **overrides: Any) -> Ours:
        """Build (or refresh) the index named by the settings and load the assistant."""
        from assistant import Assistant, Settings

        return cls(Assistant.from_settings(Settings.load(**overrides)))

    def retrieve(self, query: str, k: int) -> list[str]:
        """The top k passages for the question as `ask` reads it (cleaned, tags removed, typos and
        shorthand read, reranked)."""
        from assistant.text import clean_message, plain_text

        bot = self.assistant
        text = plain_text(clean_message(query, bot.settings.max_message_chars))
        read = bot.retriever.reader.read(text)
        return [h.chunk.text for h in bot.search(read, bot.embedder.encode_one(read.embedded), top_k=k)]

    def answer(self, message: str, history: Sequence[dict[str, str]] = ()) -> SystemAnswer:
        a = self.assistant.ask(message, history)
        return SystemAnswer(
            response=a.answer,
            citations=[c.text for c in sorted(a.citations, key=lambda c: c.n)],
            covered=a.covered,
            hedged=a.hedged,
            level=str(a.triage.level),
            reasons=list(a.triage.reasons),
            policy_text=[a.triage.referral, *a.triage.reasons] if a.triage.referral else [],
            timings_ms=dict(a.timings_ms),
            claims=tuple(Statement(f"{s.prefix}{s.text}", (s.n,)) for s in a.statements),
        )


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Call fn and return (result, wall milliseconds)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - start) * 1000


def build_systems(*, baseline: bool = True, baseline_backend: str = "torch", **overrides: Any) -> list[Any]:
    """Ours (index built or refreshed as needed) and, optionally, the naive baseline.

    The baseline embeds with the same model as a LangChain tutorial runs it:
    sentence-transformers on torch (`baseline_backend="onnx"` lends it ours instead).
    """
    from assistant.embeddings import Embedder

    ours = Ours.from_settings(**overrides)
    systems: list[Any] = [ours]
    if baseline:
        from evals.baselines.naive_rag import NaiveRag

        embedder = ours.assistant.embedder
        steady = min(_probe(embedder) for _ in range(5))
        lent = embedder if baseline_backend == embedder.backend else Embedder(
            embedder.model_path, embedder.batch_size, backend=baseline_backend  # type: ignore[arg-type]
        )
        systems.append(NaiveRag(lent))
        settle(embedder, steady)
    return systems


def _probe(embedder: Any) -> float:
    t = time.perf_counter()
    embedder.encode_one("settle probe: treadmill back pain")
    return (time.perf_counter() - t) * 1000


def settle(embedder: Any, steady_ms: float, max_seconds: float = 30.0) -> float:
    """Wait until query embedding is back at its steady speed; returns the seconds waited.

    Sometimes, right after the baseline's in-memory Chroma collection is filled, query
    embeddings in this process take ~400 ms instead of ~8 ms for several seconds
    (background work competing for the cores). Timing in that window would penalise
    whichever system runs first, so the suites start once five probes in a row run
    within twice the speed measured before the baseline was built.
    """
    start, streak = time.perf_counter(), 0
    while streak < 5 and time.perf_counter() - start < max_seconds:
        streak = streak + 1 if _probe(embedder) <= 2 * steady_ms else 0
    return time.perf_counter() - start
