"""Grounded answers without a language model: chosen sentences of the retrieved text, each cited.

The composer never writes advice of its own. It picks units (sentences, list
items, numbered steps) of the retrieved chunks, arranges them for the kind of
question asked, and returns them as `Block`s of `Statement`s, each a verbatim unit
of the chunk it cites. Only lead lines, headings and expert attributions (name and
credential, from the chunk's metadata) are added. What it looks for in a sentence
(cause words, instructions, ...) and how much each cue counts live in
`rules/answers.yaml`, not in code: nothing here knows any one article.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from assistant.coverage import ReadQuery, content_terms, holds, rarity
from assistant.embeddings import Embedder
from assistant.errors import ConfigError
from assistant.knowledge import split_units
from assistant.types import Block, Chunk, Citation, ScoredChunk, Statement

log = logging.getLogger(__name__)

ANSWERS_FILE = Path(__file__).parent / "rules" / "answers.yaml"
DISCLAIMER = (
    "_This is general guidance from the sources cited, not a diagnosis. "
    "If pain persists or gets worse, see a physical therapist or doctor._"
)
CITATION = re.compile(r"\[(\d+)\]")
PER_CHUNK = 3  # sentences one chunk may contribute to a prose answer, so other sections get a say
_QUOTE_OPEN = re.compile(r"^[\"“]")
_STEP = re.compile(r"^\d+\.\s")


class Intent(StrEnum):
    """What the question asks for; it decides which units lead and how they are laid out."""

    WHY = "why"
    STEPS = "steps"
    REPS = "reps"
    ACTION = "action"
    WHEN_PT = "when_pt"
    GENERAL = "general"


@dataclass(frozen=True)
class Style:
    """The layout rules of `rules/answers.yaml`, compiled."""

    intents: list[tuple[Intent, re.Pattern[str]]]
    leads: dict[Intent, str]
    cues: dict[str, re.Pattern[str]]
    bonus: dict[str, float]
    why_extra_words: int = 0  # a "why" answer lists several causes, a sentence each

    @classmethod
    def load(cls, path: Path = ANSWERS_FILE) -> Style:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            intents = [
                (Intent(name), re.compile("|".join(pats), re.I)) for name, pats in data["intents"].items()
            ]
            cues = {
                k: re.compile(data[k], re.I)
                for k in (
                    "cause_cues",
                    "cause_sections",
                    "imperative",
                    "action_cues",
                    "anaphora",
                    "reps",
                    "meta_unit",
                )
            }
            return cls(
                intents=intents,
                leads={Intent(k): str(v) for k, v in data["leads"].items()},
                cues=cues,
                bonus={str(k): float(v) for k, v in data["bonus"].items()},
                why_extra_words=int(data.get("why_extra_words", 0)),
            )
        except (OSError, yaml.YAMLError, KeyError, ValueError, re.error) as exc:
            raise ConfigError(f"cannot read the answer rules {path}: {exc}") from exc


@lru_cache(maxsize=1)
def style() -> Style:
    return Style.load()


def detect_intent(question: str) -> Intent:
    for intent, pattern in style().intents:
        if pattern.search(question):
            return intent
    return Intent.GENERAL


def is_exercise(chunk: Chunk) -> bool:
    return any(_STEP.match(u) for u in split_units(chunk.text))


def topic_name(chunk: Chunk) -> str:
    return chunk.section.split(" > ")[-1].strip()


def _context(chunk: Chunk, unit: str) -> str:
    """A unit as embedded: with its section heading, which says what the sentence is about."""
    return f"{topic_name(chunk)}: {unit}"


def names_exercise(question: str, chunk: Chunk) -> bool:
    """The question names the exercise the chunk teaches ("bird dog?", "glute bridges")."""
    name = {w[:5] for w in content_terms(topic_name(chunk)) if len(w) > 2}
    asked = {w[:5] for w in content_terms(question)}
    return bool(name) and len(name & asked) >= min(2, len(name))


@dataclass
class Composed:
    """An answer body with its citations, before triage wording is put in front."""

    blocks: list[Block]
    citations: list[Citation]
    covered: bool
    intent: Intent
    notice: str = ""
    missing: list[str] = field(default_factory=list)
    nearest_topic: str | None = None

    @property
    def units(self) -> list[tuple[str, int]]:
        return [(s.text, s.n) for b in self.blocks for s in b.statements]


class Citations:
    """Numbers chunks [1], [2], ... in order of first use."""

    def __init__(self) -> None:
        self.by_id: OrderedDict[str, tuple[int, Chunk]] = OrderedDict()

    def n(self, chunk: Chunk) -> int:
        if chunk.id not in self.by_id:
            self.by_id[chunk.id] = (len(self.by_id) + 1, chunk)
        return self.by_id[chunk.id][0]

    def citations(self) -> list[Citation]:
        return [
            Citation(n, c.id, c.document, c.section, list(c.experts), c.text) for n, c in self.by_id.values()
        ]


def not_covered(
    read: ReadQuery | None, overview: Sequence[str], nearest: str | None
) -> tuple[str, list[str]]:
    """The honest reply when the retrieved passages do not answer the question, and the words named.

    It says what the sources cover, names a condition's right helper when the question
    names one, and offers the nearest covered topic (whose closest sentence the reply quotes,
    `Composer.closest_passage`). Only rare words are ever named
    (`ReadQuery.missing`), never filler.
    """
    missing = read.missing() if read else []
    conditions = dict(read.conditions) if read else {}
    # a named condition is named as such, not again as a missing word
    missing = [m for m in missing if not any(m in c.split() for c in conditions)]
    lines = []
    if conditions:
        lines.append(_condition_line(*next(iter(conditions.items()))))
    elif missing:
        named = " or ".join(f"“{m}”" for m in missing)
        lines.append(f"The sources here say nothing about {named}, so I won't guess.")
    else:
        lines.append("The sources here don't answer that question, so I won't guess.")
    if overview:
        lines.append("They cover: " + "; ".join(overview) + ".")
    if nearest:
        lines.append(f"The nearest topic they do cover is “{nearest}”, quoted below: "
                     "ask about it if that helps.")
    return " ".join(lines), missing


def hedge_note(nearest: str | None, *, refer: bool = True) -> str:
    """The line above an answer the coverage model is unsure of (`CoverageModel.hedged`): the
    closest the sources come may not be what was asked, and the reader should know. `refer`
    is False when a condition's note already says who can help."""
    where = f" (from “{nearest}”)" if nearest else ""
    line = f"The sources may not answer exactly this: below is the closest they come{where}."
    return f"{line} If it misses your question, a physical therapist can answer it." if refer else line


def _condition_line(condition: str, who: str) -> str:
    return (
        f"The sources here don't discuss {condition}. For advice about it, {who} can assess you "
        "and tailor exercise to it."
    )


def condition_note(read: ReadQuery, cited: Sequence[str]) -> str:
    """For an answered question that names a condition the cited passages never mention ("I
    have scoliosis: how do I do the bird dog?"): the general answer stands, and this line says
    the sources don't discuss that condition and who can help with it."""
    plain = " ".join(cited)
    for condition, who in read.conditions.items():
        if not re.search(rf"\b{re.escape(condition)}\b", plain, re.I):
            return _condition_line(condition, who)
    return ""


class Composer:
    """Builds short, organised, cited answers from retrieved chunks."""

    def __init__(
        self,
        embedder: Embedder,
        max_words: int = 180,
        min_unit_similarity: float = 0.2,
        cache_size: int = 4096,
    ) -> None:
        self.embedder = embedder
        self.max_words = max_words
        self.min_unit_similarity = min_unit_similarity
        self.style = style()
        self._cache: OrderedDict[str, tuple[list[str], np.ndarray]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def warm_up(self, chunks: Sequence[Chunk], cache_dir: Path | None = None, *, embed: bool = True) -> None:
        """Embed the units of many chunks in one batch (cheap for a small knowledge base).

        With `cache_dir`, the vectors are kept there (`compose/units-<key>.npz`, keyed by the
        model and every embedded text) and read back by the next start instead of re-embedded;
        `embed=False` only reads them back, when an earlier warm start kept them.
        Safe to call while other threads answer: the unit cache is shared under a lock.
        """
        with self._lock:
            todo = [c for c in chunks if c.id not in self._cache][: self._cache_size]
        texts = [split_units(c.text) for c in todo]
        flat = [_context(c, u) for c, units in zip(todo, texts, strict=True) for u in units]
        if not flat:
            return
        path = self._cache_file(cache_dir, flat)
        vectors = _load_vectors(path, len(flat))
        if vectors is None:
            if not embed:
                return
            vectors = self.embedder.encode(flat)
            _save_vectors(path, vectors)
        start = 0
        for chunk, units in zip(todo, texts, strict=True):
            self._remember(chunk.id, units, vectors[start : start + len(units)])
            start += len(units)

    def _cache_file(self, cache_dir: Path | None, texts: Sequence[str]) -> Path | None:
        if cache_dir is None:
            return None
        digest = hashlib.sha256(str(getattr(self.embedder, "model_path", "")).encode())
        for text in texts:
            digest.update(b"\x1f" + text.encode())
        return Path(cache_dir) / "compose" / f"units-{digest.hexdigest()[:20]}.npz"

    def _remember(self, chunk_id: str, units: list[str], vectors: np.ndarray) -> None:
        with self._lock:
            self._cache[chunk_id] = (units, vectors)
            self._cache.move_to_end(chunk_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _units(self, chunk: Chunk) -> tuple[list[str], np.ndarray]:
        with self._lock:
            found = self._cache.get(chunk.id)
        if found is None:
            units = split_units(chunk.text)
            vectors = self.embedder.encode([_context(chunk, u) for u in units]) if units else np.zeros((0, 1))
            self._remember(chunk.id, units, vectors)
            found = (units, vectors)
        return found

    def sentence_similarity(self, chunk: Chunk, query_vector: np.ndarray) -> float:
        """Cosine similarity of the chunk's sentence closest to the question."""
        units, vectors = self._units(chunk)
        return float(np.max(vectors @ np.asarray(query_vector, dtype=np.float32))) if units else 0.0

    def best_sentence(self, hits: Sequence[ScoredChunk], query_vector: np.ndarray) -> float:
        """Cosine similarity of the retrieved chunks' best sentence to the question (evidence)."""
        return self.closest_sentence([h.chunk for h in hits], query_vector)[0]

    def closest_sentence(
        self, chunks: Sequence[Chunk], query_vector: np.ndarray
    ) -> tuple[float, np.ndarray | None]:
        """(cosine similarity, vector) of the chunks' sentence closest to the question."""
        q = np.asarray(query_vector, dtype=np.float32)
        best, vector = 0.0, None
        for chunk in chunks:
            units, vectors = self._units(chunk)
            if units:
                sims = vectors @ q
                i = int(np.argmax(sims))
                if vector is None or float(sims[i]) > best:
                    best, vector = float(sims[i]), vectors[i]
        return best, vector

    # -- composing -------------------------------------------------------------
    def compose(
        self,
        question: str,
        hits: Sequence[ScoredChunk],
        query_vector: np.ndarray,
        *,
        cites: Citations | None = None,
        exclude: frozenset[str] = frozenset(),
        max_units: int | None = None,
        lead: str | None = None,
        intent: Intent | None = None,
        voted: Mapping[str, float] | None = None,
    ) -> Composed:
        """Compose a cited answer; `cites` continues a numbering, `exclude` skips units already said.

        `lead` replaces the heading the question's intent would put over prose; `intent`
        overrides the intent read from the question (a follow-up keeps its own); `voted` maps
        phrases that answered similar labelled questions to their similarity (a sentence holding
        one gains the `vote` bonus).
        """
        intent = intent or detect_intent(question)
        if not hits:
            return Composed([], [], covered=False, intent=intent)
        cites = cites or Citations()
        top = hits[0].chunk
        if is_exercise(top) and (
            intent in (Intent.STEPS, Intent.REPS)
            or (intent is Intent.GENERAL and names_exercise(question, top))
        ):
            block = self._exercise(top, cites, reps_only=intent is Intent.REPS)
            return Composed([block], cites.citations(), covered=True, intent=intent)
        scored = [t for t in self._score(question, hits, query_vector, intent, voted) if t[4] not in exclude]
        if not scored:
            return Composed([], [], covered=False, intent=intent)
        block = self._prose(scored, cites, intent, max_units, lead)
        return Composed([block], cites.citations(), covered=True, intent=intent)

    def _score(
        self,
        question: str,
        hits: Sequence[ScoredChunk],
        query_vector: np.ndarray,
        intent: Intent,
        voted: Mapping[str, float] | None = None,
    ) -> list[tuple[float, float, int, int, str, Chunk]]:
        """(score, similarity, chunk rank, unit position, unit, chunk) for every unit of the hits."""
        cue, bonus = self.style.cues, self.style.bonus
        phrases = [(p, w) for p, w in (voted or {}).items() if w > 0]
        terms = {t[:5]: rarity(t) for t in content_terms(question)}
        total = sum(terms.values()) or 1.0
        out = []
        q = np.asarray(query_vector, dtype=np.float32)
        for rank, hit in enumerate(hits):
            units, vectors = self._units(hit.chunk)
            if not units:
                continue
            sims = vectors @ q
            cause_section = bool(cue["cause_sections"].search(hit.chunk.section))
            for pos, (unit, sim) in enumerate(zip(units, sims, strict=True)):
                if cue["meta_unit"].match(unit) or unit.endswith((":", "?")):
                    continue  # labels and lead-ins say nothing on their own
                b = bonus["rank"] * (len(hits) - rank) / len(hits)
                if intent is Intent.WHY:
                    # two cause cues ("poor posture ... causes") say more than one ("force")
                    b += bonus["cause"] * min(2, len(set(cue["cause_cues"].findall(unit.lower()))))
                    b += bonus["cause_section"] * cause_section
                elif intent is Intent.ACTION:
                    if cue["imperative"].search(unit):
                        b += bonus["imperative"]
                    elif cue["action_cues"].search(unit):
                        b += bonus["action_cue"]
                if terms:  # the question's own rarer words ("12-3-30", "tech neck") in the sentence
                    low = unit.lower()
                    share = sum(w for t, w in terms.items() if t in low) / total
                    b += bonus["rare_terms_general" if intent is Intent.GENERAL else "rare_terms"] * share
                if phrases:  # what answered similar questions before
                    b += bonus.get("vote", 0.0) * max((w for p, w in phrases if holds(unit, p)), default=0.0)
                if len(unit.split()) < 8:
                    b += bonus["fragment"]
                if cue["anaphora"].match(unit):
                    b += bonus["anaphora"]
                out.append((float(sim) + b, float(sim), rank, pos, unit, hit.chunk))
        return out

    def _attribute(self, unit: str, chunk: Chunk) -> str:
        """The attribution to put before a quote ("Name, CRED: "), or "" when the unit names them."""
        if not chunk.experts or not (_QUOTE_OPEN.search(unit) or re.search(r"\b(she|he|they) says?\b", unit)):
            return ""
        units = split_units(chunk.text)
        pos = units.index(unit) if unit in units else len(units)
        # the expert named in this unit, else the nearest one named before it
        for candidate in [unit, *reversed(units[:pos])]:
            for label in chunk.experts:
                name = label.split(",")[0]
                if name.split()[-1] in candidate:
                    return "" if name in unit else f"{label}: "
        return ""

    def _prose(
        self, scored: list, cites: Citations, intent: Intent, max_units: int | None, lead: str | None
    ) -> Block:
        """The best sentences, the best chunk's first, so the first citation holds the answer.

        A "why" question then takes cause sentences that each name a cause not yet named
        (causes are spread over sections and sentences), then fills the budget by score.
        """
        ranked = sorted(scored, key=lambda t: (-t[0], t[2], t[3]))
        chosen: list[tuple[float, int, int, str, Chunk]] = []
        words = 0
        budget = self.max_words - 25  # room for the lead line and the reminder
        if intent is Intent.WHY:
            budget += self.style.why_extra_words

        def take(item: tuple) -> bool:
            nonlocal words
            score, sim, rank, pos, unit, chunk = item
            n_words = len(unit.split())
            if chosen and words + n_words > budget:
                return False
            if any(unit == c[3] for c in chosen):
                return False
            if sum(c[4].id == chunk.id for c in chosen) >= PER_CHUNK:
                return False
            chosen.append((score, rank, pos, unit, chunk))
            words += n_words
            return True

        def best_of(rank: int) -> tuple | None:
            return next((item for item in ranked if item[2] == rank), None)

        # The passage retrieval judged to answer best (reranked, first) leads with its best sentence.
        leading = best_of(0)
        if leading is not None:
            take(leading)
        if intent is Intent.WHY:
            self._causes(ranked, chosen, take)
        # The next passages each get a say (their best sentence) before the rest is filled by score.
        for rank in range(1, int(self.style.bonus.get("lead_passages", 1))):
            best = best_of(rank)
            if best is not None and best[1] >= self.min_unit_similarity:
                take(best)
        for item in ranked:
            if max_units and len(chosen) >= max_units:
                break
            if item[1] < self.min_unit_similarity and chosen:
                break
            if words >= budget * 0.8 and len(chosen) >= 3:
                break
            take(item)
        # Passages in retrieval's order (the reranker put the one that answers best first), so the
        # first citation holds the answer; inside a passage, the source's own order (quotes stay
        # in sequence).
        chosen.sort(key=lambda c: (c[1], c[2]))
        statements = []
        for _, _, _, unit, chunk in chosen:
            statements.append(Statement(unit, cites.n(chunk), self._attribute(unit, chunk)))
        return Block(
            lead or self.style.leads.get(intent, self.style.leads[Intent.GENERAL]), tuple(statements)
        )

    def _causes(self, ranked: list[tuple], chosen: list[tuple], take: Callable[[tuple], bool]) -> None:
        """Cause sentences for a "why" answer, each naming a cause (a `cause_cues` match) that no
        sentence taken so far names: sentences from sections about causes first, then the
        strongest. Stops when no cause sentence adds a cause."""
        cue, section = self.style.cues["cause_cues"], self.style.cues["cause_sections"]

        def named(unit: str) -> frozenset[str]:
            return frozenset(m.lower() for m in cue.findall(unit.lower()))

        said = set().union(*(named(c[3]) for c in chosen))
        pool = [(t, named(t[4])) for t in ranked if t[1] >= self.min_unit_similarity]
        pool = [(t, causes) for t, causes in pool if causes]

        def rank(entry: tuple[tuple, frozenset[str]]) -> tuple[bool, bool, float]:
            item, causes = entry
            return bool(causes - said), bool(section.search(item[5].section)), item[0]

        while pool:
            best = max(pool, key=rank)
            pool.remove(best)
            item, causes = best
            if not causes - said:
                break
            if take(item):
                said |= causes

    def closest_passage(self, hit: ScoredChunk, query_vector: np.ndarray) -> Composed:
        """For a "not covered" reply: the one sentence of the nearest passage closest to the
        question, cited and labelled as the closest the sources come, not as an answer, so the
        person can judge for themselves (and check it) rather than get nothing."""
        units, vectors = self._units(hit.chunk)
        if not units:
            return Composed([], [], covered=False, intent=Intent.GENERAL)
        unit = units[int(np.argmax(vectors @ np.asarray(query_vector, dtype=np.float32)))]
        cites = Citations()
        statement = Statement(unit, cites.n(hit.chunk), self._attribute(unit, hit.chunk))
        lead = "The closest the sources come (it may not answer your question):"
        return Composed([Block(lead, (statement,))], cites.citations(), covered=False, intent=Intent.GENERAL)

    def _exercise(self, chunk: Chunk, cites: Citations, *, reps_only: bool) -> Block:
        """An exercise whole and in order (setup, steps, repetitions), or just its repetitions."""
        n = cites.n(chunk)
        units = split_units(chunk.text)
        if reps_only:
            reps = [
                u
                for u in units
                if self.style.cues["reps"].search(u) and not self.style.cues["meta_unit"].match(u)
            ]
            units = reps or units
            return Block(f"**{topic_name(chunk)}**", tuple(Statement(u, n, style="step") for u in units))
        statements = []
        for unit in units:
            step = bool(_STEP.match(unit) or self.style.cues["meta_unit"].match(unit))
            statements.append(Statement(unit, n, style="step" if step else "paragraph"))
        return Block(f"**{topic_name(chunk)}**", tuple(statements))


def check_citations(blocks: Sequence[Block], citations: Sequence[Citation], text: str = "") -> list[str]:
    """Problems with an answer's citations: statements not found in the chunk they cite (a
    language model's sentences were checked for support instead), and markers in the rendered
    `text` without an entry."""
    by_n = {c.n: c for c in citations}
    problems = []
    for block in blocks:
        for st in block.statements:
            if st.n not in by_n:
                problems.append(f"[{st.n}] has no citation entry")
            elif st.verbatim and st.text not in by_n[st.n].text:
                problems.append(f"[{st.n}] does not contain: {st.text[:80]!r}")
    for n in sorted({int(m) for m in CITATION.findall(text)} - set(by_n)):
        problems.append(f"[{n}] has no citation entry")
    return problems


def overview(chunks: Sequence[Chunk], limit: int = 8) -> list[str]:
    """What the knowledge base covers, from its documents' top-level sections (for "not covered")."""
    out: list[str] = []
    for c in chunks:
        head = c.section.split(" > ")[0].strip()
        if head and head != "Introduction" and head.lower() not in (o.lower() for o in out):
            out.append(head)
    return out[:limit]


def _load_vectors(path: Path | None, rows: int) -> np.ndarray | None:
    """Vectors kept by `_save_vectors`, or None when absent, unreadable or of another shape."""
    if path is None or not path.exists():
        return None
    try:
        with np.load(path) as data:
            vectors = np.asarray(data["vectors"], dtype=np.float32)
    except Exception as exc:  # a broken cache is recomputed, never fatal
        log.warning("Ignoring the unreadable sentence-vector cache %s (%s).", path, exc)
        return None
    return vectors if vectors.ndim == 2 and len(vectors) == rows else None


def _save_vectors(path: Path | None, vectors: np.ndarray) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, vectors=vectors)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache folder only costs time
        log.warning("Could not keep the sentence-vector cache in %s (%s).", path, exc)
