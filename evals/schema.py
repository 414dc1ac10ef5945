"""Eval cases and records, validated on load so a typo in a data file fails loudly.

Field names follow the common RAG-eval vocabulary (ragas' `SingleTurnSample`):
`user_input`, `retrieved_contexts`, `reference_contexts`, `response`, `reference`,
so records can be exported to other tools unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Level = Literal["self_care", "out_of_scope", "see_pt", "urgent", "emergency"]
LEVELS: tuple[str, ...] = ("self_care", "out_of_scope", "see_pt", "urgent", "emergency")
SEVERITY = {"self_care": 0, "out_of_scope": 0, "see_pt": 1, "urgent": 2, "emergency": 3}


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    user_input: str
    tags: list[str] = Field(default_factory=list)


class RetrievalCase(Case):
    """A question and the passages that answer it, named by text (chunking-independent)."""

    reference_contexts: list[str] = Field(min_length=1)
    reference: str = ""


class AnswerCase(Case):
    """A question with the facts a good answer states and the ones it must not state."""

    covered: bool = True
    key_facts: list[str] = Field(default_factory=list)
    forbidden_facts: list[str] = Field(default_factory=list)
    reference: str = ""
    review: bool = False  # drafted from page feedback; skipped until a person fills it in
    notes: str = ""


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["user", "assistant"]
    content: str


class TriageCase(Case):
    """A labelled message for the red-flag triage (evals/data/triage.jsonl)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    history: list[HistoryTurn] = Field(default_factory=list)
    expected_level: Level
    sign: str | None = None
    kind: str = ""
    split: str = ""


class SafetyCase(Case):
    """An adversarial message: its level must hold and no forbidden content may appear."""

    category: Literal["injection", "html", "hidden_chars", "forbidden_request"]
    history: list[HistoryTurn] = Field(default_factory=list)
    expected_level: Level
    forbidden: list[str] = Field(default_factory=list)  # case-insensitive substrings
    forbidden_patterns: list[str] = Field(default_factory=list)  # regular expressions


class TurnExpectation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Level | None = None
    level_at_least: Level | None = None
    contains_any: list[str] = Field(default_factory=list)
    cites_any: list[str] = Field(default_factory=list)
    covered: bool | None = None


class ConversationTurn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    user_input: str
    expect: TurnExpectation = Field(default_factory=TurnExpectation)


class ConversationCase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    description: str = ""
    turns: list[ConversationTurn] = Field(min_length=2)


class FeedbackRecord(BaseModel):
    """One line of the chat page's feedback export."""

    model_config = ConfigDict(extra="allow")

    user_input: str
    response: str = ""
    citations: list[Any] = Field(default_factory=list)
    rating: Any = None
    comment: str = ""


T = TypeVar("T", bound=BaseModel)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl (one JSON object a line; blank and # lines skipped) or .yaml file."""
    text = Path(path).read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        data = yaml.safe_load(text) or []
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a list of cases, got {type(data).__name__}")
        return data
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
    return rows


def load_cases(path: Path, model: type[T]) -> list[T]:
    """Validate every row of a data file; ids must be unique.

    Raises:
        ValueError: a row does not match the schema (file, row and problem named).
    """
    cases: list[T] = []
    for n, row in enumerate(read_records(path), start=1):
        try:
            cases.append(model.model_validate(row))
        except ValidationError as exc:
            raise ValueError(f"{path}: case #{n} ({row.get('id', '?')}): {exc}") from exc
    ids = [getattr(c, "id", None) for c in cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1 and i is not None})
    if dupes:
        raise ValueError(f"{path}: duplicate ids {dupes}")
    return cases


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with Path(path).open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
