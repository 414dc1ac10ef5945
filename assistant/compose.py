"""Grounded answers without a language model: chosen sentences of the retrieved text, each cited.

The composer never writes advice of its own. It picks units (sentences, list
items, numbered steps) of the retrieved chunks, arranges them for the kind of
question asked, and marks each with `[n]` pointing at the chunk it came from.
Only headings, connective words and expert attributions (name and credential,
from the chunk's metadata) are added, so every claim can be checked against its
citation by substring search (`check_citations`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from assistant.coverage import content_terms
from assistant.embeddings import Embedder
from assistant.knowledge import split_units
from assistant.types import Chunk, Citation, ScoredChunk

DISCLAIMER = (
    "_This is general guidance from the sources cited, not a diagnosis. "
    "If pain persists or gets worse, see a physical therapist or doctor._"
)
NOT_COVERED = (
    "The knowledge base doesn't cover that question, so I won't guess. It covers back pain "
    "from treadmill and incline walking (such as the 12-3-30 workout): likely causes, posture, "
    "lowering the intensity, strengthening exercises, and when to see a physical therapist."
)
CITATION = re.compile(r"\[(\d+)\]")


class Intent(StrEnum):
    """What the question asks for; it decides which units lead and how they are laid out."""

    WHY = "why"
    STEPS = "steps"
    REPS = "reps"
    ACTION = "action"
    WHEN_PT = "when_pt"
    GENERAL = "general"


_LEADS = {
    Intent.WHY: "Likely causes, from the sources:",
    Intent.ACTION: "What you can do:",
    Intent.WHEN_PT: "When to get professional help:",
}


def _any(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.I)


# First match wins, so the more specific intents come first.
_INTENT_RULES: list[tuple[Intent, re.Pattern[str]]] = [
    (
        Intent.REPS,
        _any(
            r"\bhow (many|much|often|long)\b.*\b(reps?|repetitions?|times|sets?|hold)\b",
            r"\bhow many\b",
            r"\breps?\b",
        ),
    ),
    (
        Intent.STEPS,
        _any(
            r"\bhow (do|should|can|would) (i|you|we) (do|perform|complete)\b",
            r"\bhow to (do|perform)\b",
            r"\bsteps?\b|\bwalk me through\b|\bform\b|\binstructions?\b",
            r"\btell me about the\b|\bshow me\b",
            r"\bwhat is (a|the) (bird dog|glute bridge|stationary march|scapular|single-arm)",
        ),
    ),
    (
        Intent.WHEN_PT,
        _any(
            r"\b(physical therapist|physiotherapist|physio|pt|professional|doctor)\b",
            r"\bwhen should i (see|get)\b",
        ),
    ),
    (
        Intent.WHY,
        _any(r"\bwhy\b|\bwhat (causes|is causing|could cause|makes)\b|\bcauses?\b|\breason\b|\bhow come\b"),
    ),
    (
        Intent.ACTION,
        _any(
            r"\bwhat (should|can|could) i do\b",
            r"\bhow (do|can|could|should) i (stop|avoid|prevent|fix|reduce|ease|help|improve)\b",
            r"\b(tips?|advice|help|fix|prevent|avoid|stop|exercises?|strengthen|should i)\b",
        ),
    ),
]

_CAUSE = _any(
    r"\b(caus|because|lead to|can't be attenuated|pressure on|weakness|fatigue|poor posture|force)",
    r"\b(requires more work|compounded|don't tend to have|too much|too steep|too quickly)",
    r"\b(repetitive|aggravate|strain)",
)
PER_CHUNK = 3  # sentences one chunk may contribute to a prose answer
_CAUSE_SECTION = _any(r"\bcauses?\b", r"\bwhy\b", r"\breasons?\b", r"\bweakness")
_IMPERATIVE = _any(r"^(- )?(try|keep|hold|lower|slow|lean|add|incorporat|be sure|start|pull back|diversif)")
_ACTION_CUE = _any(_IMPERATIVE.pattern, r"\b(try|recommend|help|you can|you'll want|should|key)\b")
_QUOTE_OPEN = re.compile(r"^[\"“]")
_ANAPHORA = re.compile(r"^(That|This|It|They|These|Those|Connecting the two|But)\b")
_REPS = re.compile(r"\b(repeat|times|repetitions|reps)\b", re.I)
_STEP = re.compile(r"^\d+\.\s")
_META_UNIT = re.compile(r"^\*\*(Region|What it's good for):\*\*", re.I)


def not_covered(unknown_terms: Sequence[str] = ()) -> str:
    """The honest answer when the knowledge base has nothing on the question."""
    if not unknown_terms:
        return NOT_COVERED
    named = ", ".join(f"“{t}”" for t in unknown_terms[:3])
    return f"I found nothing about {named} in the knowledge base. {NOT_COVERED}"


def _context(chunk: Chunk, unit: str) -> str:
    """A unit as embedded: with its section heading, which says what the sentence is about."""
    return f"{chunk.section.split(' > ')[-1]}: {unit}"


def detect_intent(question: str) -> Intent:
    for intent, pattern in _INTENT_RULES:
        if pattern.search(question):
            return intent
    return Intent.GENERAL


def is_exercise(chunk: Chunk) -> bool:
    return any(_STEP.match(u) for u in split_units(chunk.text))


@dataclass
class Composed:
    """An answer body with its citations, before triage wording is put in front."""

    text: str
    citations: list[Citation]
    covered: bool
    intent: Intent
    units: list[tuple[str, int]] = field(default_factory=list)  # (unit, n) as cited


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
        self._cache: OrderedDict[str, tuple[list[str], np.ndarray]] = OrderedDict()
        self._cache_size = cache_size

    def warm_up(self, chunks: Sequence[Chunk]) -> None:
        """Embed the units of many chunks in one batch (cheap for a small knowledge base)."""
        todo = [c for c in chunks if c.id not in self._cache][: self._cache_size]
        texts = [split_units(c.text) for c in todo]
        flat = [_context(c, u) for c, units in zip(todo, texts, strict=True) for u in units]
        if not flat:
            return
        vectors = self.embedder.encode(flat)
        start = 0
        for chunk, units in zip(todo, texts, strict=True):
            self._remember(chunk.id, units, vectors[start : start + len(units)])
            start += len(units)

    def _remember(self, chunk_id: str, units: list[str], vectors: np.ndarray) -> None:
        self._cache[chunk_id] = (units, vectors)
        self._cache.move_to_end(chunk_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _units(self, chunk: Chunk) -> tuple[list[str], np.ndarray]:
        if chunk.id not in self._cache:
            units = split_units(chunk.text)
            self._remember(chunk.id, units, self.embedder.encode([_context(chunk, u) for u in units]))
        return self._cache[chunk.id]

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
        unknown_terms: Sequence[str] = (),
        lead: str | None = None,
    ) -> Composed:
        """Compose a cited answer; `cites` continues a numbering, `exclude` skips units already said.

        `unknown_terms` are words of the question the knowledge base never uses; a
        "not covered" answer names them, so the person knows what was not found.
        `lead` replaces the heading the question's intent would put over prose.
        """
        intent = detect_intent(question)
        if not hits:
            return Composed(not_covered(unknown_terms), [], covered=False, intent=intent)
        scored = [t for t in self._score(question, hits, query_vector, intent) if t[4] not in exclude]
        if not scored or max(s for s, *_ in scored) < self.min_unit_similarity:
            return Composed(NOT_COVERED, [], covered=False, intent=intent)
        cites = cites or Citations()
        top = hits[0].chunk
        if intent in (Intent.STEPS, Intent.REPS) and is_exercise(top):
            lines, used = self._exercise(top, cites, reps_only=intent is Intent.REPS)
        else:
            lines, used = self._prose(scored, cites, intent, max_units, lead)
        body = "\n".join(lines)
        return Composed(body, cites.citations(), covered=True, intent=intent, units=used)

    def _score(
        self, question: str, hits: Sequence[ScoredChunk], query_vector: np.ndarray, intent: Intent
    ) -> list[tuple[float, float, int, int, str, Chunk]]:
        """(score, similarity, chunk rank, unit position, unit, chunk) for every unit of the hits."""
        # Local IDF: a question word found in few of the candidate sentences says more.
        candidates = [u.lower() for hit in hits for u in self._units(hit.chunk)[0]]
        weights = {}
        for term in content_terms(question):
            stem = term[:5]
            df = sum(stem in u for u in candidates)
            if df:
                weights[stem] = float(np.log(1 + len(candidates) / df))
        total = sum(weights.values()) or 1.0
        out = []
        for rank, hit in enumerate(hits):
            units, vectors = self._units(hit.chunk)
            if not units:
                continue
            sims = vectors @ np.asarray(query_vector, dtype=np.float32)
            for pos, (unit, sim) in enumerate(zip(units, sims, strict=True)):
                if _META_UNIT.match(unit) or unit.endswith((":", "?")):
                    continue  # labels and lead-ins say nothing on their own
                bonus = 0.04 * (len(hits) - rank) / len(hits)
                if intent is Intent.WHY and _CAUSE.search(unit):
                    bonus += 0.12
                if intent is Intent.WHY and _CAUSE_SECTION.search(hit.chunk.section):
                    bonus += 0.08
                elif intent is Intent.ACTION and _IMPERATIVE.search(unit):
                    bonus += 0.15
                elif intent is Intent.ACTION and _ACTION_CUE.search(unit):
                    bonus += 0.05
                if weights:  # the question's own rarer words ("12-3-30", "tech neck") in the sentence
                    low = unit.lower()
                    share = sum(w for t, w in weights.items() if t in low) / total
                    bonus += (0.3 if intent is Intent.GENERAL else 0.1) * share

                if len(unit.split()) < 8:
                    bonus -= 0.1  # fragments ("Lower it back down.") read badly out of context
                if _ANAPHORA.match(unit):
                    bonus -= 0.08  # "That is only compounded..." needs the sentence before it
                out.append((float(sim) + bonus, float(sim), rank, pos, unit, hit.chunk))
        return out

    def _attribute(self, unit: str, chunk: Chunk) -> str:
        """Name the expert behind a quote, with credentials, when the unit does not already."""
        if not chunk.experts or not (_QUOTE_OPEN.search(unit) or re.search(r"\b(she|he) says\b", unit)):
            return unit
        units = split_units(chunk.text)
        pos = units.index(unit) if unit in units else len(units)
        # the expert named in this unit, else the nearest one named before it
        for candidate in [unit, *reversed(units[:pos])]:
            for label in chunk.experts:
                name = label.split(",")[0]
                if name.split()[-1] in candidate:
                    return unit if name in unit else f"{label}: {unit}"
        return unit

    def _prose(
        self, scored: list, cites: Citations, intent: Intent, max_units: int | None, lead: str | None
    ) -> tuple[list[str], list[tuple[str, int]]]:
        ranked = sorted(scored, key=lambda t: (-t[0], t[2], t[3]))
        chosen: list[tuple[float, int, int, str, Chunk]] = []
        words = 0
        budget = self.max_words - 25  # room for the lead line and the reminder
        for score, sim, rank, pos, unit, chunk in ranked:
            if sim < self.min_unit_similarity and chosen:
                break
            n_words = len(unit.split())
            if chosen and words + n_words > budget:
                continue
            if any(unit == c[3] for c in chosen):
                continue
            if sum(c[4].id == chunk.id for c in chosen) >= PER_CHUNK:
                continue  # leave room for what other sections add
            chosen.append((score, rank, pos, unit, chunk))
            words += n_words
            if words >= budget * 0.8 and len(chosen) >= 3:
                break
            if max_units and len(chosen) >= max_units:
                break
        # Best chunk first; inside a chunk, the article's own order (quotes stay in sequence).
        first_seen: dict[str, int] = {}
        for i, c in enumerate(chosen):
            first_seen.setdefault(c[4].id, i)
        if intent is Intent.WHY:  # causes lead; the rest keeps the same order after them
            chosen.sort(key=lambda c: (not _CAUSE.search(c[3]), first_seen[c[4].id], c[2]))
        else:
            chosen.sort(key=lambda c: (first_seen[c[4].id], c[2]))
        lead = lead or _LEADS.get(intent, "From the sources:")
        lines, used = [lead], []
        for _, _, _, unit, chunk in chosen:
            text = unit[2:] if unit.startswith("- ") else unit
            n = cites.n(chunk)
            lines.append(f"- {self._attribute(text, chunk)} [{n}]")
            used.append((unit, n))
        return lines, used

    def _exercise(
        self, chunk: Chunk, cites: Citations, *, reps_only: bool
    ) -> tuple[list[str], list[tuple[str, int]]]:
        n = cites.n(chunk)
        name = chunk.section.split(" > ")[-1]
        units = split_units(chunk.text)
        lines = [f"**{name}**"]
        if reps_only:
            units = [u for u in units if _REPS.search(u)] or units
            return lines + [f"{u} [{n}]" for u in units], [(u, n) for u in units]
        for unit in units:
            if _STEP.match(unit) or _META_UNIT.match(unit):
                lines.append(f"{unit} [{n}]")
            else:
                lines.append(f"\n{unit} [{n}]")
        return lines, [(u, n) for u in units]


def check_citations(answer: str, citations: Sequence[Citation]) -> list[str]:
    """Problems with an answer's citations: markers without an entry, or text not in its chunk.

    A statement is a line (or, in prose, a bullet) ending in one `[n]`; the text
    before the marker, less any expert attribution, must appear in chunk n.
    """
    by_n = {c.n: c for c in citations}
    problems = []
    for n in {int(m) for m in CITATION.findall(answer)}:
        if n not in by_n:
            problems.append(f"[{n}] has no citation entry")
    for line in answer.splitlines():
        m = re.match(r"^\s*(?:- )?(.*?)\s*\[(\d+)\]\s*$", line)
        if not m:
            continue
        text, n = m.group(1), int(m.group(2))
        if n not in by_n:
            continue
        chunk_text = by_n[n].text
        candidates = [text, text.split(": ", 1)[-1]]
        if not any(c in chunk_text or f"- {c}" in chunk_text for c in candidates):
            problems.append(f"[{n}] does not contain: {text[:80]!r}")
    return problems
