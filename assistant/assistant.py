"""The one orchestrator: message -> triage -> retrieve -> compose -> check -> answer.

The chat page, the command line and the evals are thin shells over `Assistant.ask`.
Triage runs on every message, over the whole conversation, before retrieval; an
emergency or urgent level stops the pipeline there, so no exercise advice can
follow a red flag, and nothing downstream can lower the level.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from assistant.compose import (
    DISCLAIMER,
    Citations,
    Composed,
    Composer,
    Intent,
    check_citations,
    detect_intent,
)
from assistant.config import Settings
from assistant.coverage import content_terms
from assistant.embeddings import Embedder
from assistant.errors import EMERGENCY_NOTE, AssistantError
from assistant.retrieval import HybridRetriever
from assistant.text import as_text, clean_message, limit_note, plain_text
from assistant.types import Answer, ScoredChunk, Triage, TriageLevel, Turn

if TYPE_CHECKING:
    from assistant.index import IngestReport

log = logging.getLogger(__name__)

PT_QUERY = "When should I see a physical therapist about back pain after workouts?"


class TriagerLike(Protocol):
    def assess(
        self,
        message: str,
        history: Sequence[Turn] = (),
        *,
        message_vector: np.ndarray | None = None,
    ) -> Triage: ...


class Assistant:
    """Answers back-pain questions from the knowledge base, with red-flag triage first.

    Example:
        >>> from assistant import Assistant
        >>> bot = Assistant.from_settings()
        >>> answer = bot.ask("why does my back hurt on incline?")
        >>> answer.triage.level, answer.citations[0].section
        ('self_care', 'Causes of Back Pain on the Treadmill')
    """

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        retriever: HybridRetriever,
        composer: Composer,
        triager: TriagerLike,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.retriever = retriever
        self.composer = composer
        self.triager = triager
        self.index_report: IngestReport | None = None
        self._pt_vec: np.ndarray | None = None  # the see-a-PT passage's query, embedded once

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, progress: bool = False, warm: bool = False
    ) -> Assistant:
        """Load the model once, build or refresh the index if needed, and wire the parts.

        `warm=True` also embeds every chunk's sentences up front (a long-running page
        wants that; a one-shot `ask` does not: it embeds only the chunks it cites).

        Raises:
            KnowledgeError: no knowledge documents to build the index from.
            StoreError: the index cannot be built or opened.
        """
        from assistant.index import Index
        from assistant.triage import Triager

        settings = settings or Settings.load()
        embedder = Embedder.from_settings(settings)
        index = Index(settings)
        report = index.ensure(embedder, progress=progress)
        retriever = HybridRetriever.build(index.open(), embedder, settings, index.keywords())
        composer = Composer(embedder, max_words=settings.answer_max_words)
        triager = Triager.from_settings(settings, embedder)
        bot = cls(settings, embedder, retriever, composer, triager)
        bot.index_report = report
        if warm:
            bot.warm_up()
        return bot

    def warm_up(self) -> None:
        """Embed, up front, what answers would otherwise embed on first use (chunk sentences,
        the vocabulary behind the coverage check), so the first questions are as fast as the rest."""
        self.composer.warm_up(self.retriever.chunks)
        self.retriever.warm_up()

    # -- the pipeline ----------------------------------------------------------
    def ask(self, message: str, history: Sequence[Turn | dict[str, Any]] = ()) -> Answer:
        """Answer one message in the context of the conversation so far.

        Triage reads the whole conversation first, before any input limit: a red flag
        buried in an over-long message still escalates, and the reply then explains the
        limit. If anything after triage fails, the reply still carries the referral and
        the emergency line.

        Raises:
            InputError: the message is empty, too long (with no warning sign), or not text.
        """
        timings: dict[str, float] = {}
        started = time.perf_counter()
        text = as_text(message)
        turns = [Turn.coerce(t) for t in history]
        analysed = plain_text(text)
        too_long = len(text) > self.settings.max_message_chars

        t = time.perf_counter()
        vector = None if too_long or not analysed else self.embedder.encode_one(analysed)
        timings["embed"] = _ms(t)
        t = time.perf_counter()
        triage = self.triager.assess(text, turns, message_vector=vector)
        timings["triage"] = _ms(t)

        if too_long or not analysed:
            if triage.level.severity == 0:
                clean_message(text, self.settings.max_message_chars)  # raises, saying why
            note = "" if not too_long else limit_note(len(text), self.settings.max_message_chars)
            return self._referral_answer(text, triage, timings, started, note)
        if triage.level in (TriageLevel.EMERGENCY, TriageLevel.URGENT, TriageLevel.OUT_OF_SCOPE) or (
            triage.language != "en"
        ):
            return self._referral_answer(text, triage, timings, started)
        assert vector is not None
        try:
            return self._answer(text, analysed, vector, turns, triage, timings, started)
        except Exception:
            log.exception("answering failed after triage (%s); replying with the referral", triage.level)
            note = "Sorry, something went wrong while preparing the answer."
            return self._referral_answer(text, triage, timings, started, note)

    def _referral_answer(
        self, text: str, triage: Triage, timings: dict[str, float], started: float, note: str = ""
    ) -> Answer:
        """A reply with no advice: the policy's wording, the signs seen, any note, the emergency line."""
        parts = [self._referral_only(triage)] if triage.referral else []
        if note:
            parts.append(note)
        if triage.level is not TriageLevel.EMERGENCY and (note or triage.level is TriageLevel.OUT_OF_SCOPE):
            parts.append(EMERGENCY_NOTE)
        timings["total"] = _ms(started)
        return Answer(text, triage, "\n\n".join(parts), [], timings, covered=False)

    def _answer(
        self,
        text: str,
        analysed: str,
        vector: np.ndarray,
        turns: Sequence[Turn],
        triage: Triage,
        timings: dict[str, float],
        started: float,
    ) -> Answer:
        """Retrieve, compose and check a cited answer (self-care and see-a-PT levels)."""
        t = time.perf_counter()
        query, query_vector = self._query(analysed, vector, turns)
        # Causes are spread over several sections, so a "why" question reads a little wider.
        wider = detect_intent(query) is Intent.WHY
        hits = self.retriever.search(
            query, query_vector=query_vector, top_k=self.settings.top_k + 2 if wider else None
        )
        timings["retrieve"] = _ms(t)

        t = time.perf_counter()
        if triage.level is TriageLevel.SEE_PT:
            composed = self._with_pt_referral(triage, query, hits, query_vector)
        else:
            unknown = [] if hits else self.retriever.unknown_terms(query)
            composed = self.composer.compose(query, hits, query_vector, unknown_terms=unknown)
        citations = composed.citations
        answer = f"{composed.text}\n\n{DISCLAIMER}"
        timings["compose"] = _ms(t)

        t = time.perf_counter()
        problems = check_citations(answer, citations)
        timings["check"] = _ms(t)
        if problems:  # a composer bug, never the user's fault: fail loudly in tests, safely here
            log.error("citation check failed for %r: %s", text, problems)
            raise AssistantError("The answer failed its citation check: " + "; ".join(problems))
        timings["total"] = _ms(started)
        return Answer(text, triage, answer, citations, timings, covered=composed.covered)

    def _query(self, text: str, vector: np.ndarray, turns: Sequence[Turn]) -> tuple[str, np.ndarray]:
        """Resolve a follow-up that names no topic of its own ("how many reps?") with the previous question.

        A message with two or more topic words of its own ("what about my posture on the
        treadmill?") stands alone, so an earlier, unrelated question does not leak into it.
        """
        previous = [t.content for t in turns if t.role == "user"]
        if not previous or len(content_terms(text)) >= 2:
            return text, vector
        query = f"{plain_text(previous[-1])} {text}"
        return query, self.embedder.encode_one(query)

    def _referral_only(self, triage: Triage) -> str:
        """Emergency, urgent and out-of-scope replies: the policy's wording and the signs seen."""
        lines = [triage.referral.strip()]
        if triage.reasons and triage.level is not TriageLevel.OUT_OF_SCOPE:
            lines.append("\nWhat I noticed in your messages:")
            lines += [f"- {r}" for r in triage.reasons]
        return "\n".join(lines)

    def _with_pt_referral(
        self, triage: Triage, question: str, hits: Sequence[ScoredChunk], vector: np.ndarray
    ) -> Composed:
        """See-a-PT replies: the recommendation and the article's own criterion first, then advice."""
        cites = Citations()
        lead = [triage.referral.strip()]
        if triage.reasons:
            lead.append("Why: " + "; ".join(triage.reasons) + ".")
        pt_vector = self._pt_vector()
        pt_hits = self.retriever.search(PT_QUERY, query_vector=pt_vector)[:1]
        pt = self.composer.compose(
            PT_QUERY, pt_hits, pt_vector, cites=cites, max_units=2, lead="From the article:"
        )
        if pt.covered:
            lead.append(pt.text)
        advice = self.composer.compose(
            question, hits, vector, cites=cites, exclude=frozenset(u for u, _ in pt.units)
        )
        text = "\n".join(lead) + f"\n\n{advice.text}"
        return Composed(text, cites.citations(), covered=advice.covered, intent=advice.intent)

    def _pt_vector(self) -> np.ndarray:
        if self._pt_vec is None:
            self._pt_vec = self.embedder.encode_one(PT_QUERY)
        return self._pt_vec


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)
