"""Data crossing module boundaries: chunks, citations, triage results and answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal


class TriageLevel(StrEnum):
    """How urgently the person should get care; the order is the order of severity."""

    SELF_CARE = "self_care"
    OUT_OF_SCOPE = "out_of_scope"
    SEE_PT = "see_pt"
    URGENT = "urgent"
    EMERGENCY = "emergency"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {
    TriageLevel.SELF_CARE: 0,
    TriageLevel.OUT_OF_SCOPE: 0,
    TriageLevel.SEE_PT: 1,
    TriageLevel.URGENT: 2,
    TriageLevel.EMERGENCY: 3,
}


@dataclass(frozen=True)
class Turn:
    """One message of the conversation so far."""

    role: Literal["user", "assistant"]
    content: str

    @classmethod
    def coerce(cls, value: Turn | dict[str, Any]) -> Turn:
        if isinstance(value, Turn):
            return value
        if not isinstance(value, dict):
            kind = type(value).__name__
            raise ValueError(f"each history entry must be an object {{role, content}}, got {kind}")
        role = value.get("role")
        if role not in ("user", "assistant"):
            raise ValueError(f"history role must be 'user' or 'assistant', got {role!r}")
        content = value.get("content")
        if not isinstance(content, str):
            raise ValueError("history content must be a string")
        return cls(role=role, content=content)


@dataclass(frozen=True)
class Chunk:
    """A passage of a knowledge document, the unit that is embedded, retrieved and cited."""

    id: str
    text: str
    document: str  # document title
    source: str  # path of the source file, relative to the knowledge folder
    section: str  # heading path inside the document, e.g. "Strength ... > Bird Dog"
    experts: tuple[str, ...] = ()  # "Name, credential" of each expert quoted in the text
    position: int = 0  # order of the chunk inside its document

    def metadata(self) -> dict[str, Any]:
        return {
            "document": self.document,
            "source": self.source,
            "section": self.section,
            "experts": list(self.experts),
            "position": self.position,
        }


@dataclass(frozen=True)
class ScoredChunk:
    """A retrieved chunk with the scores that ranked it."""

    chunk: Chunk
    score: float  # fused score (higher is better)
    similarity: float  # cosine similarity to the query, from the dense retriever
    lexical: float = 0.0  # BM25 score for the query (0 when BM25 did not find it)


@dataclass(frozen=True)
class Citation:
    """The `[n]` an answer sentence points at: which chunk, and its full text."""

    n: int
    chunk_id: str
    document: str
    section: str
    experts: list[str]
    text: str


@dataclass(frozen=True)
class Triage:
    """The triage decision for a message in its conversation."""

    level: TriageLevel = TriageLevel.SELF_CARE
    reasons: list[str] = field(default_factory=list)
    referral: str = ""  # what to tell the person first, from the policy's wording
    language: str = "en"  # ISO 639-1 code of the message the decision rests on

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": str(self.level),
            "reasons": list(self.reasons),
            "referral": self.referral,
            "language": self.language,
        }


@dataclass(frozen=True)
class Statement:
    """One cited statement: a verbatim unit of chunk `n`, and how it is shown.

    `text` is exactly as it stands in the chunk (what the check and the page's highlight
    look for); `prefix` is an attribution the composer adds ("Natalie Niemczyk, DPT: ").
    A language model's sentence is `verbatim=False`: its support was checked (`llm.py`).
    """

    text: str
    n: int
    prefix: str = ""
    style: Literal["bullet", "step", "paragraph"] = "bullet"
    verbatim: bool = True

    def line(self) -> str:
        body = self.text[2:] if self.style == "bullet" and self.text.startswith("- ") else self.text
        shown = f"{self.prefix}{body} [{self.n}]"
        if self.style == "bullet":
            return f"- {shown}"
        if self.style == "paragraph":
            return f"\n{shown}"
        return shown


@dataclass(frozen=True)
class Block:
    """A lead line ("Likely causes, from the sources:", "**Bird Dog**") and its statements."""

    lead: str
    statements: tuple[Statement, ...] = ()

    def lines(self) -> list[str]:
        return ([self.lead] if self.lead else []) + [s.line() for s in self.statements]


def render_text(
    *, referral: str = "", why: str = "", notice: str = "", blocks: Sequence[Block] = (), disclaimer: str = ""
) -> str:
    """The answer as text (CLI, JSON `answer`), rendered from its fields."""
    head = "\n".join(x for x in (referral.strip(), why) if x)
    parts = [head] if head else []
    if notice:
        parts.append(notice)
    parts += ["\n".join(b.lines()) for b in blocks if b.lines()]
    if disclaimer:
        parts.append(disclaimer)
    return "\n\n".join(parts)


@dataclass(frozen=True)
class Answer:
    """What `Assistant.ask` returns; `to_dict` is the JSON contract of `ask --json`.

    The parts (`referral`, `why`, `notice`, `blocks`, `disclaimer`) are what the page, the
    check and the evals read; `answer` is the text rendered from them.
    """

    message: str
    triage: Triage
    answer: str
    citations: list[Citation]
    timings_ms: dict[str, float]
    covered: bool = True  # False when the knowledge base had nothing relevant
    why: str = ""  # "Why: ..." line under a see-a-PT referral
    notice: str = ""  # uncited text: the "not covered" reply, a referral-only reply, a condition's helper
    blocks: tuple[Block, ...] = ()
    disclaimer: str = ""
    missing: tuple[str, ...] = ()  # not covered: the question's words the sources never use
    nearest_topic: str | None = None  # not covered: the closest section the sources do have
    follow_up: bool = False  # resolved against the conversation's topic
    hedged: bool = False  # covered, but the sources may not answer exactly this (`notice` says so)
    backend: str = "extractive"  # who wrote the answer's statements: extractive, openai or ollama
    fallback_reason: str = ""  # why a language model's answer was not used (then backend is extractive)

    @property
    def referral(self) -> str:
        return self.triage.referral

    @property
    def lead(self) -> str:
        return self.blocks[0].lead if self.blocks else ""

    @property
    def statements(self) -> list[Statement]:
        return [s for b in self.blocks for s in b.statements]

    @property
    def units(self) -> list[tuple[str, int]]:
        """(statement, citation n) pairs, in the order shown."""
        return [(s.text, s.n) for s in self.statements]

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "triage": self.triage.to_dict(),
            "answer": self.answer,
            "citations": [asdict(c) for c in self.citations],
            "timings_ms": dict(self.timings_ms),
            "covered": self.covered,
            "lead": self.lead,
            "statements": [{"text": s.text, "n": s.n, "prefix": s.prefix} for s in self.statements],
            "missing": list(self.missing),
            "nearest_topic": self.nearest_topic,
            "follow_up": self.follow_up,
            "hedged": self.hedged,
            "backend": self.backend,
            **({"fallback_reason": self.fallback_reason} if self.fallback_reason else {}),
        }
