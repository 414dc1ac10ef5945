"""The labelled corpus the triage model learns from, its splits, and its training units.

Each message names its signs and the exact words (`evidence`) that carry each one, so a
long message teaches the model twice: the sentence with the sign is a positive, the
harmless sentences around it are negatives. Splits come from a hash of the id, so adding
messages never moves old ones between train, dev and test.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import ConfigError
from assistant.triage.segment import Unit, sentence_units, units, window
from assistant.types import TriageLevel

NONE = "none"
OFF_TOPIC = "off_topic"
FORBIDDEN = "forbidden"
SPLITS = {"train": 0.70, "dev": 0.15, "test": 0.15}
_OUT_OF_SCOPE_STYLES = {"forbidden_request": FORBIDDEN}
# Styles that teach only the message-level scope classifier: a context-free follow-up ("how
# common?", "why?") says nothing about signs, but must not look off-topic on its own.
SCOPE_ONLY_STYLES = {"follow_up"}


@dataclass(frozen=True)
class Example:
    """One labelled message of the corpus."""

    id: str
    text: str
    level: TriageLevel
    signs: tuple[str, ...]
    evidence: tuple[str, ...]
    style: str
    lang: str
    subject: str
    source: str  # the file it came from
    history: tuple[str, ...] = field(default=())

    @property
    def split(self) -> str:
        return split_of(self.id)

    @property
    def scope_class(self) -> str:
        """The message-level class when it carries no sign: none, off_topic or forbidden."""
        if self.level is TriageLevel.OUT_OF_SCOPE:
            return _OUT_OF_SCOPE_STYLES.get(self.style, OFF_TOPIC)
        return NONE


def split_of(example_id: str) -> str:
    """train / dev / test, from the first bytes of sha256(id): stable as the corpus grows."""
    bucket = int.from_bytes(hashlib.sha256(example_id.encode()).digest()[:4], "big") / 2**32
    edge = 0.0
    for name, share in SPLITS.items():
        edge += share
        if bucket < edge:
            return name
    return "test"


def load_corpus(folder: Path, sign_ids: Iterable[str]) -> list[Example]:
    """Read every `*.jsonl` in `folder`; a malformed line is a ConfigError naming file and line."""
    known = set(sign_ids)
    files = sorted(Path(folder).glob("*.jsonl"))
    if not files:
        raise ConfigError(f"No triage corpus (*.jsonl) in {folder}; set ASSISTANT_TRIAGE_CORPUS.")
    examples: list[Example] = []
    seen: set[str] = set()
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{n}"
            try:
                raw = json.loads(line)
                example = Example(
                    id=str(raw["id"]),
                    text=str(raw["text"]),
                    level=TriageLevel(raw["level"]),
                    signs=tuple(raw.get("signs", [])),
                    evidence=tuple(raw.get("evidence", [])),
                    style=str(raw.get("style", "")),
                    lang=str(raw.get("lang", "en")),
                    subject=str(raw.get("subject", "self")),
                    source=path.stem,
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"Triage corpus {where}: {exc!r}; fix or remove the line") from exc
            unknown = set(example.signs) - known
            if unknown:
                raise ConfigError(f"Triage corpus {where}: unknown sign(s) {sorted(unknown)}")
            if example.id in seen:
                raise ConfigError(f"Triage corpus {where}: id {example.id!r} is used twice")
            seen.add(example.id)
            examples.append(example)
    return examples


@dataclass
class TrainingUnits:
    """Units with their labels (a sign id, none, off_topic or forbidden) and sample weights."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)  # self/other, for the sign's units only

    def add(self, text: str, label: str, subject: str = "") -> None:
        self.texts.append(text)
        self.labels.append(label)
        self.subjects.append(subject)


def training_units(examples: Iterable[Example]) -> TrainingUnits:
    """Every unit of every message, labelled by the evidence it overlaps.

    A unit that overlaps a sign's evidence is that sign; a unit that overlaps none is
    `none` (or the message's scope class for off-topic and forbidden requests). A unit
    that overlaps two signs' evidence is added once per sign.
    """
    out = TrainingUnits()
    for ex in examples:
        if ex.style in SCOPE_ONLY_STYLES:
            continue
        spans = _evidence_spans(ex)
        for unit in units(ex.text):
            labels = [sign for sign, (a, b) in spans if _overlap(unit, a, b) >= 0.5 * (b - a)]
            if labels:
                for sign in dict.fromkeys(labels):
                    out.add(unit.text, sign, ex.subject)
            elif not any(_overlap(unit, a, b) > 0 for _, (a, b) in spans):
                out.add(unit.text, ex.scope_class)
    return out


def gate_windows(examples: Iterable[Example]) -> tuple[list[str], list[bool]]:
    """The gate's training data: the window around each sentence of every in-scope message,
    True when it holds a sign's evidence. Windows of harmless messages, and the harmless
    windows of long messages with a sign, are the negatives."""
    texts: list[str] = []
    labels: list[bool] = []
    for ex in examples:
        if ex.level is TriageLevel.OUT_OF_SCOPE or ex.style in SCOPE_ONLY_STYLES:
            continue
        spans = _evidence_spans(ex)
        seen: set[str] = set()
        for sentence in sentence_units(ex.text):
            w = window(ex.text, sentence)
            if not w.text or w.text in seen:
                continue
            seen.add(w.text)
            texts.append(w.text)
            labels.append(any(_overlap(w, a, b) >= 0.5 * (b - a) for _, (a, b) in spans))
    return texts, labels


def _evidence_spans(ex: Example) -> list[tuple[str, tuple[int, int]]]:
    spans = []
    for sign, quote in zip(ex.signs, ex.evidence, strict=False):
        start = ex.text.find(quote) if quote else -1
        if start < 0:
            start = ex.text.lower().find(quote.lower()) if quote else -1
        if start < 0:  # no usable evidence: the whole message stands for the sign
            spans.append((sign, (0, len(ex.text))))
        else:
            spans.append((sign, (start, start + len(quote))))
    for sign in ex.signs[len(ex.evidence) :]:
        spans.append((sign, (0, len(ex.text))))
    return spans


def _overlap(unit: Unit, start: int, end: int) -> int:
    return max(0, min(unit.end, end) - max(unit.start, start))
