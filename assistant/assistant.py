"""The one orchestrator: message -> triage -> retrieve -> compose -> check -> answer.

The chat page, the command line and the evals are thin shells over `Assistant.ask`.
Triage runs on every message, over the whole conversation, before retrieval; an
emergency or urgent level stops the pipeline there, so no exercise advice can
follow a red flag, and nothing downstream can lower the level.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from assistant.compose import (
    DISCLAIMER,
    Citations,
    Composed,
    Composer,
    Intent,
    check_citations,
    condition_note,
    detect_intent,
    hedge_note,
    not_covered,
    overview,
    topic_name,
)
from assistant.config import Settings
from assistant.coverage import CoverageModel, Evidence, Examples, ReadQuery, rest
from assistant.denials import DenialReader
from assistant.embeddings import Embedder
from assistant.errors import EMERGENCY_NOTE, AssistantError, InputError, StoreError
from assistant.history import read_history
from assistant.llm import ModelWriter
from assistant.rerank import Reranker
from assistant.retrieval import HybridRetriever
from assistant.text import as_text, clean_message, limit_note, plain_text
from assistant.triage.language import warm_up as warm_up_language
from assistant.types import Answer, Block, ScoredChunk, Triage, TriageLevel, Turn, render_text

if TYPE_CHECKING:
    from assistant.index import IngestReport

log = logging.getLogger(__name__)

UNREACHABLE = (
    "Sorry, I cannot reach the knowledge base right now, so I cannot look up the sources. "
    "Please try again in a minute."
)
NO_WORDS = "I found no words in your message once its HTML tags were set aside. Please type your question."
# triaged once by `warm_up`: long enough for the language check to load its models
WARM_UP_MESSAGE = "my lower back feels stiff after a long walk on the treadmill"
PT_QUERY = "When should I see a physical therapist about back pain after workouts?"
# A follow-up: the chunk the conversation is about is within this cosine of the message's own
# best chunk, i.e. the message's own words do not point anywhere clearly better.
FOLLOW_UP_MARGIN = 0.05
# A follow-up naming a word this rare (coverage.rarity; ~Zipf 4.5, "brace", "yoga") that the
# sources never use asks about something new, so it must earn coverage on its own evidence.
NEW_THING_RARITY = 0.5
_MARKED = re.compile(r"^\s*(?:- )?(?:[^:\n]{3,120}: )?(.+?)\s*\[(\d+)\]\s*$")


@dataclass(frozen=True)
class Topic:
    """What the conversation is about: chunk ids (most recent first) and a vector for them."""

    chunk_ids: list[str]
    vector: np.ndarray


@dataclass
class Retrieved:
    """Retrieval's result for one message, with the evidence the coverage model judged."""

    read: ReadQuery
    hits: list[ScoredChunk]
    vector: np.ndarray
    evidence: Evidence
    p_covered: float
    follow_up: bool = False
    # answering phrases of the labelled questions most like this one (`Examples.voted_phrases`)
    voted: dict[str, float] = field(default_factory=dict)


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
        coverage: CoverageModel | None = None,
        reranker: Reranker | None = None,
        writer: ModelWriter | None = None,
    ) -> None:
        self.settings = settings
        self.writer = writer  # a language model rewriting covered answers, checked; None: extractive
        self.coverage = coverage or CoverageModel.load()
        self.reranker = reranker or Reranker.load()
        self.examples = Examples.load()
        sources = sorted(f"{c.id}\x1f{c.section}\x1f{c.text}" for c in retriever.chunks)
        self.examples.cache_at(settings.cache_dir / "coverage", str(embedder.model_path), *sources)
        ids, matrix = retriever.vector_matrix()
        chunks = [retriever.chunk(i) for i in ids]
        self.examples.know(
            matrix, [c.source for c in chunks], ids, [c.text for c in chunks], read=self._read_for_search
        )
        self._overview = overview(retriever.chunks)
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
        report: IngestReport | None = None
        if settings.ingest_on_start:
            report = index.ensure(embedder, progress=progress)
        elif index.status(embedder.model_id) == "stale":  # a replica serves what is there
            log.warning("the index is stale; serving it as it is (`python -m assistant ingest` updates it)")
        retriever = HybridRetriever.build(index.open(), embedder, settings, index.keywords())
        composer = Composer(embedder, max_words=settings.answer_max_words)
        triager = Triager.from_settings(settings, embedder)
        writer = ModelWriter.from_settings(settings, composer)
        bot = cls(settings, embedder, retriever, composer, triager, writer=writer)
        bot.index_report = report
        if warm:
            bot.warm_up()
        else:  # a one-shot `ask` reads the sentence vectors an earlier warm start kept, if any
            composer.warm_up(retriever.chunks, settings.cache_dir, embed=False)
        return bot

    def warm_up(self) -> None:
        """Embed, up front, what answers would otherwise embed on first use (chunk sentences,
        the vocabulary behind the coverage check), and load what triage loads lazily (the
        language models), so the first questions are as fast as the rest.

        The chunk sentences' vectors are kept in the cache folder, so a later start reads
        them back. Safe to run in a background thread while `ask` answers (the chat page does).
        """
        self.composer.warm_up(self.retriever.chunks, self.settings.cache_dir)
        self.examples.question_model(self.embedder, self.sentence_of)
        self.retriever.warm_up()
        self.triager.assess(WARM_UP_MESSAGE)
        if self.denials is not None:
            self.denials.warm_up()
        warm_up_language()

    # -- the pipeline ----------------------------------------------------------
    def ask(
        self, message: str, history: Sequence[Turn | dict[str, Any]] | Any = (), *, refuse: str = ""
    ) -> Answer:
        """Answer one message in the context of the conversation so far.

        Triage reads the conversation first, before any input limit or check of the history's
        shape: a red flag buried in an over-long message, or sent with a malformed history,
        still escalates, and the reply then explains the limit or the problem. If anything
        after triage fails, the reply still carries the referral and the emergency line.

        Args:
            message: what the person typed.
            history: earlier turns, `{"role": "user"|"assistant", "content": str}`, oldest first.
            refuse: a reason the caller will not answer (a rate limit): the message is still
                triaged, and gets its referral when it escalates, else `InputError(refuse)`.

        Raises:
            InputError: the message is empty, too long, not text, or the history is malformed
                (with no warning sign in what could be read); or `refuse` was given.
        """
        timings: dict[str, float] = {}
        started = time.perf_counter()
        limit = self.settings.max_read_chars
        unread = len(message) - limit if isinstance(message, str | bytes) and len(message) > limit else 0
        text = as_text(message[:limit] if unread else message)  # raises for a non-text message
        hist = read_history(
            history, max_turns=self.settings.max_history_turns, max_chars=self.settings.max_history_chars
        )
        turns = hist.turns
        analysed = plain_text(text)
        too_long = unread > 0 or len(text) > self.settings.max_message_chars

        t = time.perf_counter()
        vector = None if too_long or not analysed or hist.problems else self.embedder.encode_one(analysed)
        timings["embed"] = _ms(t)
        t = time.perf_counter()
        read = [Turn(role="user", content=u) for u in hist.triage_texts]
        triage = self.triager.assess(text, read, message_vector=vector)
        timings["triage"] = _ms(t)

        problem = refuse or (hist.problem() if hist.problems else "")
        if problem:
            if triage.level.severity == 0:
                raise InputError(problem, triage=triage)
            note = f"{problem} I only checked your messages for warning signs."
            return self._referral_answer(text, triage, timings, started, note)
        if too_long or not analysed:
            note = NO_WORDS
            if too_long:
                note = limit_note(len(text) + unread, self.settings.max_message_chars, read=limit)
            if triage.level.severity == 0:
                if unread:
                    raise InputError(note, triage=triage)
                try:
                    clean_message(text, self.settings.max_message_chars)  # raises: empty or too long
                except InputError as exc:
                    raise InputError(str(exc), triage=triage) from exc
            return self._referral_answer(text, triage, timings, started, note)
        if triage.level in (TriageLevel.EMERGENCY, TriageLevel.URGENT, TriageLevel.OUT_OF_SCOPE) or (
            triage.language != "en"
        ):
            return self._referral_answer(text, triage, timings, started)
        assert vector is not None
        try:
            return self._answer(text, analysed, vector, turns, triage, timings, started)
        except StoreError as exc:  # e.g. the Chroma server went away: answers resume when it is back
            log.warning("the index could not be read (%s); replying with the referral", exc)
            return self._referral_answer(text, triage, timings, started, UNREACHABLE)
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
        notice = "\n\n".join(parts)
        timings["total"] = _ms(started)
        return Answer(text, triage, render_text(notice=notice), [], timings, covered=False, notice=notice)

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
        got = self.retrieve(analysed, vector, turns)
        timings["retrieve"] = _ms(t)

        t = time.perf_counter()
        covered = got.p_covered >= self.coverage.threshold
        composed, hedged = None, False
        if covered:
            query = got.read.text
            if triage.level is TriageLevel.SEE_PT:
                composed = self._with_pt_referral(query, got.hits, got.vector, got.voted)
            else:
                composed = self.composer.compose(query, got.hits, got.vector, voted=got.voted)
            covered = composed.covered
            if covered:
                condition = condition_note(got.read, [c.text for c in composed.citations])
                # a follow-up's coverage is the conversation's, not this model's: never hedged
                hedged = not got.follow_up and self.coverage.hedged(got.p_covered)
                nearest = topic_name(got.hits[0].chunk) if got.hits else None
                hedge = hedge_note(nearest, refer=not condition) if hedged else ""
                notice = " ".join(n for n in (hedge, condition) if n)
                if notice:
                    composed = replace(composed, notice=notice)
        backend, fallback = "extractive", ""
        if covered and composed is not None and self.writer is not None:
            t_llm = time.perf_counter()
            composed, backend, fallback = self.writer.rewrite(got.read.text, got.hits, composed)
            timings["llm"] = _ms(t_llm)
        if not covered or composed is None:
            top = got.hits[0] if got.hits else None
            near = top if top is not None and top.similarity >= self.settings.min_similarity else None
            nearest = topic_name(near.chunk) if near else None
            notice, missing = not_covered(got.read, self._overview, nearest)
            closest = self.composer.closest_passage(near, got.vector) if near else None
            composed = Composed(
                closest.blocks if closest else [],
                closest.citations if closest else [],
                covered=False,
                intent=detect_intent(analysed),
                notice=notice,
                missing=missing,
                nearest_topic=nearest,
            )
        why = ""
        if triage.level is TriageLevel.SEE_PT and triage.reasons:
            why = "Why: " + "; ".join(triage.reasons) + "."
        referral = triage.referral if triage.level is TriageLevel.SEE_PT else ""
        answer_text = render_text(
            referral=referral, why=why, notice=composed.notice, blocks=composed.blocks, disclaimer=DISCLAIMER
        )
        timings["compose"] = round(_ms(t) - timings.get("llm", 0.0), 3)  # the model call is "llm"

        t = time.perf_counter()
        problems = check_citations(composed.blocks, composed.citations, answer_text)
        timings["check"] = _ms(t)
        if problems:  # a composer bug, never the user's fault: fail loudly in tests, safely here
            said = repr(text) if self.settings.log_messages else f"a message of {len(text)} characters"
            log.error("citation check failed for %s: %s", said, problems)
            raise AssistantError("The answer failed its citation check: " + "; ".join(problems))
        timings["total"] = _ms(started)
        return Answer(
            text,
            triage,
            answer_text,
            composed.citations,
            timings,
            covered=composed.covered,
            why=why,
            notice=composed.notice,
            blocks=tuple(composed.blocks),
            disclaimer=DISCLAIMER,
            missing=tuple(composed.missing),
            nearest_topic=composed.nearest_topic,
            follow_up=got.follow_up,
            hedged=hedged,
            backend=backend,
            fallback_reason=fallback,
        )

    # -- retrieval with evidence and conversation topic ----------------------------
    def retrieve(self, text: str, vector: np.ndarray, turns: Sequence[Turn] = ()) -> Retrieved:
        """Read the message (typos, shorthand), retrieve, and judge coverage from the evidence.

        A message in a conversation is a follow-up when the conversation's topic chunk is
        (nearly) as close to it as its own best chunk, or when its own evidence is too weak
        to be covered: it is then retrieved with its vector blended with the topic's and
        the topic's chunks as a third ranking.
        """
        denied = self.denials.read(text) if self.denials is not None else None
        if denied is not None and denied.phrases:  # "no numbness, ...": not what is asked
            text, vector = denied.text, self.embedder.encode_one(denied.text)
        read = self.retriever.reader.read(text)
        qvec = self.embedder.encode_one(read.embedded) if read.changed else vector
        k = self.settings.top_k + 2 if detect_intent(read.text) is Intent.WHY else None
        own = self._judge(read, qvec, self.search(read, qvec, top_k=k))
        topic = self._topic(turns) if turns else None
        if topic is None:
            return own
        topic_sim = float(np.dot(topic.vector, qvec))
        own_best = own.evidence.dense
        # Standalone only when the message is covered on its own AND its words point to a passage
        # that explains them better than the topic does ("what about my posture?" after the bird
        # dog) AND that passage is clearly closer in meaning. "How many reps?" is explained by every
        # exercise alike, so the conversation decides.
        topic_chunk = self.retriever.chunk(topic.chunk_ids[0])
        own_chunk = own.hits[0].chunk if own.hits else topic_chunk
        own_words = own.read.explained_by(f"{own_chunk.section} {own_chunk.text}")
        got_words = own.read.explained_by(f"{topic_chunk.section} {topic_chunk.text}")
        if (
            own.p_covered >= self.coverage.threshold
            and own_words > got_words
            and topic_sim < own_best - FOLLOW_UP_MARGIN
        ):
            return own
        blended = qvec / max(float(np.linalg.norm(qvec)), 1e-12) + topic.vector
        blended = blended / max(float(np.linalg.norm(blended)), 1e-12)
        hits = self.search(read, blended, top_k=k, topic=topic.chunk_ids)
        follow = self._judge(read, blended, hits, own_vector=qvec)
        follow.follow_up = True
        if read.unknown_rarity() < NEW_THING_RARITY:
            # a follow-up on a covered topic is covered unless it names something new and rare
            follow.p_covered = max(follow.p_covered, self.coverage.threshold)
        if not follow.evidence.examples_counted and follow.p_covered >= self.coverage.threshold:
            # The topic's source has no labelled questions, and without them p(covered) hardly
            # tells one passage's coverage from another's (`CoverageModel.without_examples`: dev
            # balanced accuracy 0.58 at the same share answered): the conversation decides.
            return follow
        # a message whose own words are better covered than the topic stands on its own
        own_p = own.p_covered
        if not follow.evidence.examples_counted:  # like with like: the examples count for neither
            own_p = self.coverage.probability(own.evidence.without_examples())
        return own if own_p > follow.p_covered and own.p_covered >= self.coverage.threshold else follow

    def search(
        self, read: ReadQuery, vector: np.ndarray, top_k: int | None = None, topic: Sequence[str] = ()
    ) -> list[ScoredChunk]:
        """Hybrid retrieval of `rerank_pool` candidates, reranked (`rerank.Reranker`): the best `top_k`."""
        k = top_k or self.settings.top_k
        pool = self.candidates(read, vector, max(k, self.settings.rerank_pool), topic)
        return self.reranker.rerank(read, pool, vector, self.composer.sentence_similarity, self.vote)[:k]

    def candidates(
        self, read: ReadQuery, vector: np.ndarray, pool: int, topic: Sequence[str] = ()
    ) -> list[ScoredChunk]:
        """What the reranker chooses from: the `pool` best by fusion, and the chunks the labelled
        questions most like this one were answered by when fusion left them out (at most
        `voted_candidates`): a question in words the sources never use is often far from its
        passage, and near a question asked before."""
        hits = self.retriever.search(read.search, query_vector=vector, top_k=pool, topic=topic)
        have = {h.chunk.id for h in hits}
        voted = self.examples.voted_chunks(self.embedder, vector, self.settings.voted_candidates)
        return hits + self.retriever.scored([c for c in voted if c not in have], vector)

    @cached_property
    def denials(self) -> DenialReader | None:
        """Reads the warning signs a person denies out of the question (`denials.py`), with the
        triage policy's negation cues and sign phrases; None with a triager that has no policy."""
        policy = getattr(self.triager, "policy", None)
        if policy is None:
            return None
        patterns = getattr(self.triager, "patterns", None)
        return DenialReader(
            self.embedder,
            [p for s in policy.signs for p in (s.name, *s.examples)],
            policy.negation.pre,
            policy.negation.terminators,
            respell=(lambda text: patterns.prepare(text).folded) if patterns is not None else str,
        )

    def vote(self, hits: Sequence[ScoredChunk], vector: np.ndarray) -> np.ndarray:
        """The labelled covered questions' votes for the candidates (`Examples.votes`)."""
        return self.examples.votes(self.embedder, vector, [h.chunk.id for h in hits])

    def _judge(
        self,
        read: ReadQuery,
        vector: np.ndarray,
        hits: list[ScoredChunk],
        own_vector: np.ndarray | None = None,
    ) -> Retrieved:
        own_vector = vector if own_vector is None else own_vector
        dense = max((h.similarity for h in hits if h.similarity == h.similarity), default=0.0)
        evidence = Evidence.of(
            read,
            dense=dense,
            sentence=self.composer.best_sentence(hits[:3], vector),
            bm25=max((h.lexical for h in hits), default=0.0),
            passages=[f"{h.chunk.section} {h.chunk.text}" for h in hits[:3]],
        )
        _, sentence = self.composer.closest_sentence([h.chunk for h in hits[:3]], own_vector)
        own_rest = rest(own_vector, sentence) if sentence is not None else None
        if hits and not self.examples.labelled_against(hits[0].chunk.source):
            # The labelled examples were labelled against the sources of their day: what they
            # say marks a question those sources don't answer ("what damper setting should a
            # beginner rower use?"), not one a document added since does. Not counted.
            evidence = evidence.without_examples()
        else:
            evidence = replace(
                evidence,
                **self.examples.likeness(self.embedder, own_vector, own_rest, self.sentence_of),
                asked_covered=self.examples.asked(
                    self.embedder, read.search, own_vector, own_rest, self.sentence_of
                ),
            )
        voted = self.examples.voted_phrases(self.embedder, vector)
        return Retrieved(read, hits, vector, evidence, self.coverage.probability(evidence), voted=voted)

    def _read_for_search(self, question: str) -> str:
        """A question as retrieval reads it (`ReadQuery.search`)."""
        return self.retriever.reader.read(question).search

    def sentence_of(self, vector: np.ndarray) -> np.ndarray:
        """The vector of the sources' sentence closest to `vector`, among the units of its three
        closest chunks (dense only: used for the labelled examples, embedded at start)."""
        ids, matrix = self.retriever.vector_matrix()
        if not ids:
            return np.asarray(vector, dtype=np.float32)
        q = np.asarray(vector, dtype=np.float32)
        order = np.argsort(-(matrix @ q))[:3]
        chunks = [self.retriever.chunk(ids[int(i)]) for i in order]
        _, sentence = self.composer.closest_sentence(chunks, q)
        return sentence if sentence is not None else q

    def _topic(self, turns: Sequence[Turn]) -> Topic | None:
        """The chunks the conversation was last about: those the last answer quoted, else the
        best chunks for the last question that had evidence of its own."""
        ids: list[str] = []
        for turn in reversed(turns):
            if turn.role == "assistant":
                ids = self._quoted_chunks(turn.content)
                if ids:
                    break
            elif turn.role == "user" and turn.content.strip():
                read = self.retriever.reader.read(plain_text(turn.content))
                vec = self.embedder.encode_one(read.embedded)
                judged = self._judge(read, vec, self.search(read, vec))
                if judged.p_covered >= self.coverage.threshold:
                    ids = [h.chunk.id for h in judged.hits[:2]]
                    break
        if not ids:
            return None
        vectors = self.retriever.vectors(ids[:1])
        if not vectors:
            return None
        return Topic(ids, next(iter(vectors.values())))

    def _quoted_chunks(self, text: str) -> list[str]:
        """Chunks an earlier answer quoted (our answers quote verbatim; other text matches nothing)."""
        out: list[str] = []
        chunks = self.retriever.chunks
        for line in text.splitlines():
            m = _MARKED.match(line)
            if not m:
                continue
            quote = m.group(1).strip()
            candidates = [quote, line.strip().removeprefix("- ").rsplit("[", 1)[0].strip()]
            for c in chunks:
                if c.id not in out and any(len(q) > 15 and q in c.text for q in candidates):
                    out.append(c.id)
                    break
        return out

    def _referral_only(self, triage: Triage) -> str:
        """Emergency, urgent and out-of-scope replies: the policy's wording and the signs seen."""
        lines = [triage.referral.strip()]
        if triage.reasons and triage.level is not TriageLevel.OUT_OF_SCOPE:
            lines.append("\nWhat I noticed in your messages:")
            lines += [f"- {r}" for r in triage.reasons]
        return "\n".join(lines)

    def _with_pt_referral(
        self,
        question: str,
        hits: Sequence[ScoredChunk],
        vector: np.ndarray,
        voted: Mapping[str, float] | None = None,
    ) -> Composed:
        """See-a-PT replies: the sources' own criterion for seeing one first, then the advice."""
        cites = Citations()
        pt_vector = self._pt_vector()
        pt_hits = self.retriever.search(PT_QUERY, query_vector=pt_vector)[:1]
        pt = self.composer.compose(
            PT_QUERY, pt_hits, pt_vector, cites=cites, max_units=2, lead="From the sources:"
        )
        blocks: list[Block] = list(pt.blocks) if pt.covered else []
        advice = self.composer.compose(
            question, hits, vector, cites=cites, exclude=frozenset(u for u, _ in pt.units), voted=voted
        )
        blocks += advice.blocks
        return Composed(blocks, cites.citations(), covered=advice.covered, intent=advice.intent)

    def _pt_vector(self) -> np.ndarray:
        if self._pt_vec is None:
            self._pt_vec = self.embedder.encode_one(PT_QUERY)
        return self._pt_vec


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)
