"""The triage policy as validated data: signs, levels, referral wording, backstop patterns, costs.

The policy lives in `rules/red_flags.yaml` so a clinician can review it without reading
Python. This module only reads and checks it; any problem becomes a ConfigError that
names the field and what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import regex
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assistant.errors import ConfigError
from assistant.types import TriageLevel

ESCALATING = (TriageLevel.EMERGENCY, TriageLevel.URGENT, TriageLevel.SEE_PT)
LANGUAGES = ("en", "es", "fr", "de", "pt", "it")
_TERM = re.compile(r"<([a-z_]+)>")
_GAP = re.compile(r"<gap(\d+)>")
_GAP_WORD = r"(?:\s+[^\s.!?;:]+)"  # one word inside a sentence: a gap never crosses . ! ? ; :


class Pattern:
    """A compiled policy pattern whose matching lets other threads run.

    The backstop reads a message whole (up to 100,000 characters) and a conversation's every
    turn; on such text one search takes up to 5 ms. Python's `re` holds the interpreter lock
    for all of it, so every other request of the page waits. The `regex` library matches the
    same syntax and can release the lock while it matches (`concurrent=True`).
    """

    __slots__ = ("_compiled", "pattern")

    def __init__(self, expanded: str) -> None:
        self._compiled = regex.compile(expanded)
        self.pattern = expanded

    def search(self, text: str) -> Any:
        return self._compiled.search(text, concurrent=True)

    def finditer(self, text: str) -> Iterator[Any]:
        return self._compiled.finditer(text, concurrent=True)

    def sub(self, replacement: str, text: str) -> str:
        return str(self._compiled.sub(replacement, text, concurrent=True))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LevelPolicy(_Model):
    referral: str = Field(min_length=10, description="What to tell the person first.")
    referral_other: str = Field(
        min_length=10, description="The same, when the sign is about someone else ('they should...')."
    )
    translations: dict[str, str] = Field(
        default={}, description="The referral in other languages, by ISO 639-1 code."
    )


class SignPolicy(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=3, description="Human-readable name, shown in reasons.")
    level: TriageLevel
    source: str = Field(min_length=3, description="Guidance the sign comes from.")
    patterns: list[str] = Field(
        default=[], description="Reviewed, high-precision backstop patterns (the model does the rest)."
    )
    examples: list[str] = Field(default=[], description="Plain phrasings, for reviewers and tests.")
    requires: list[str] = Field(
        default=[], description="Patterns of which one must also be said in some user turn."
    )
    history_matters: bool = Field(
        default=False, description="Past or resolved mentions still count (history of cancer)."
    )
    referral: str | None = Field(
        default=None, description="Wording that replaces the level's referral (a crisis line)."
    )
    referral_other: str | None = Field(
        default=None,
        description="That wording when the sign is about someone else (my brother talks of ending his life).",
    )

    @field_validator("level")
    @classmethod
    def _escalating(cls, level: TriageLevel) -> TriageLevel:
        if level not in ESCALATING:
            raise ValueError(f"level must be one of {[str(x) for x in ESCALATING]}, got {level}")
        return level


class CostPolicy(_Model):
    """What a mistake costs when the decision thresholds are chosen on the dev split."""

    missed: dict[TriageLevel, float] = Field(
        description="Cost of under-triaging a message of this level by one or more levels."
    )
    false_alarm: float = Field(gt=0, description="Cost of escalating a message with no sign.")
    refused_in_scope: float = Field(
        gt=0, description="Cost of calling an on-topic message out of scope (it gets no answer)."
    )
    missed_out_of_scope: float = Field(
        gt=0, description="Cost of answering an out-of-scope message (retrieval then says 'not covered')."
    )
    false_alarm_budget: float = Field(
        ge=0, le=1, description="Largest share of dev negatives the chosen thresholds may escalate."
    )
    min_recall: dict[TriageLevel, float] = Field(
        default_factory=dict,
        description="Recall floor on dev per level (that level or higher): thresholds that miss it "
        "are passed over while any other meets it, whatever they save in false alarms.",
    )
    threshold_resamples: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Bootstrap resamples of dev whose chosen thresholds are bagged (median per "
        "level); 0 tunes once on dev.",
    )


class ModelPolicy(_Model):
    """Hyper-parameters of the learned sign classifier, chosen on the dev split
    (`python -m assistant.triage.train tune`)."""

    C: float = Field(gt=0, description="Inverse regularisation strength of the logistic regression.")
    embedding_weight: float = Field(gt=0, description="Scale of the sentence embedding next to n-grams.")
    gate_weight: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Exponent of the gate: a unit's score is p_unit^(1-w) * p_window^w, where "
        "p_window = P(the unit's sentence and its neighbours report a sign at all).",
    )
    context_embedding: bool = Field(
        default=False,
        description="Also read the sentence embedding once per context a unit is said in (negated, "
        "and each of `context_cues`), so a denied or hypothetical sign can weigh differently.",
    )
    gate_C: float = Field(default=4.0, gt=0, description="Inverse regularisation of the gate's regression.")
    pattern_veto: float = Field(
        default=0.0,
        ge=0,
        lt=0.1,
        description="A pattern hit is dropped when the model gives the clause that holds it less than "
        "this P(a sign of the pattern's level or worse): only near-certain 'no sign' (0 = never).",
    )
    pattern_veto_in_context: float = Field(
        default=0.0,
        ge=0,
        lt=0.1,
        description="The veto for a hit whose clause is said in one of the `context_cues`' contexts "
        "(hypothetical, historical), which the patterns cannot read and the model can; the larger "
        "of the two applies (0 = no more than `pattern_veto`).",
    )
    class_weight: dict[TriageLevel, float] = Field(
        description="Sample weight of units carrying a sign of this level (a miss costs more)."
    )
    negation_cues: list[str] = Field(
        min_length=1,
        description="Words (regex, folded: no accents or apostrophes) that open a negation scope.",
    )
    negation_terminators: list[str] = Field(
        min_length=1, description="Words that close a negation scope ('but'), besides punctuation."
    )
    negation_window: int = Field(gt=0, le=20, description="Words a negation scope covers at most.")
    context_cues: dict[str, str] = Field(
        default={},
        description="Tag -> regex of cues (folded text) that put a clause in a context "
        "(hypothetical, historical); the clause's words get a tagged copy.",
    )
    lay_words_file: str = Field(
        default="",
        description="A YAML file beside the policy (its `glossary`: clinical word -> everyday "
        "words) read into `lay_words` (`lay_words.LayWords`); empty = none.",
    )
    lay_words_seen: int = Field(
        default=3,
        ge=1,
        description="A listed word found in at least this many training messages is one the model "
        "learned as written: it is not read with everyday words.",
    )
    lay_words: dict[str, str] = Field(
        default={},
        description="Clinical word or phrase -> everyday words read after it (from `lay_words_file`).",
    )
    shorthand_file: str = Field(
        default="",
        description="A YAML file beside the policy (its `shorthand`: chat shorthand -> the words "
        "meant) read into `shorthand` (`typed_words.TypedWords`); empty = none.",
    )
    shorthand: dict[str, str] = Field(
        default={},
        description="Chat shorthand -> the words it stands for ('' drops it), from `shorthand_file`.",
    )
    first_person_file: str = Field(
        default="",
        description="A YAML file beside the policy (its `first_person`: third-person words -> the "
        "first-person words read instead) read into `first_person` (`first_person.FirstPerson`); "
        "empty = none.",
    )
    first_person: dict[str, str] = Field(
        default={},
        description="Someone else's words -> the person's own ('his' -> 'my'), from `first_person_file`.",
    )


class NegationPolicy(_Model):
    window: int = Field(gt=0, le=20)
    pre: list[str]
    post: list[str]
    pseudo: list[str]
    terminators: list[str]
    hypothetical: list[str]
    definition: list[str] = Field(
        default=[], description="Cues after a sign that make its clause a rule about the sign, not a report."
    )
    asking: list[str]
    resolved: list[str]
    governing: list[str] = Field(
        default=[],
        description="Negated auxiliaries that cancel a sign only when said right before its words.",
    )


class RequestPolicy(_Model):
    id: str
    name: str
    referral: str = Field(min_length=10)
    patterns: list[str] = Field(min_length=1)


class LanguagePolicy(_Model):
    """What a message in another language with no warning sign is told, in that language."""

    replies: dict[str, str] = Field(description="By ISO 639-1 code: 'I answer in English' + emergency signs.")


class ScopePolicy(_Model):
    referral: str = Field(min_length=10)
    forbidden_referral: str = Field(
        min_length=10, description="A medical request no pattern names (dose, scan, diagnosis)."
    )
    requests: list[RequestPolicy]
    non_english: LanguagePolicy


class TriagePolicy(_Model):
    """The whole triage policy, validated; `load` turns any problem into a ConfigError."""

    version: int
    levels: dict[TriageLevel, LevelPolicy]
    costs: CostPolicy
    model: ModelPolicy
    negation: NegationPolicy
    terms: dict[str, str]
    signs: list[SignPolicy] = Field(min_length=1)
    scope: ScopePolicy

    @classmethod
    def load(cls, path: Path) -> TriagePolicy:
        """Read, validate and compile-check the YAML policy.

        Raises:
            ConfigError: the file is missing, is not valid YAML, misses a field, or has a
                pattern that does not compile; the message names the sign and what to fix.
        """
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"Cannot read the triage policy {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"The triage policy {path} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"The triage policy {path} must be a mapping, got {type(raw).__name__}")
        _read_word_list(raw, Path(path).parent, "lay_words_file", "glossary", "lay_words")
        _read_word_list(raw, Path(path).parent, "shorthand_file", "shorthand", "shorthand")
        _read_word_list(raw, Path(path).parent, "first_person_file", "first_person", "first_person")
        try:
            policy = cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"Invalid triage policy {path}: {problems}") from exc
        policy.check(path)
        return policy

    def sign(self, sign_id: str) -> SignPolicy:
        for sign in self.signs:
            if sign.id == sign_id:
                return sign
        raise KeyError(sign_id)

    def check(self, path: Path | str = "policy") -> None:
        """Cross-field checks pydantic cannot express; every pattern must compile."""
        missing = [str(level) for level in ESCALATING if level not in self.levels]
        if missing:
            raise ConfigError(f"{path}: levels needs a referral for {missing}")
        missing = [str(level) for level in ESCALATING if level not in self.costs.missed]
        if missing:
            raise ConfigError(f"{path}: costs.missed needs a cost for {missing}")
        seen: set[str] = set()
        for sign in self.signs:
            if sign.id in seen:
                raise ConfigError(f"{path}: sign id {sign.id!r} is used twice; ids must be unique")
            seen.add(sign.id)
            for pattern in [*sign.patterns, *sign.requires]:
                self.compile(pattern, where=f"sign {sign.id!r}")
        for request in self.scope.requests:
            for pattern in request.patterns:
                self.compile(pattern, where=f"scope request {request.id!r}")
        for name, cues in self.negation:  # every cue list, so a new one is checked too
            for pattern in cues if isinstance(cues, list) else ():
                self.compile(pattern, where=f"negation.{name}", words=not pattern.startswith("^"))

    def compile(self, pattern: str, *, where: str, words: bool = True) -> Pattern:
        """Expand `<term>` and `<gapN>` shorthands and compile, matching whole words."""

        def term(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.terms:
                raise ConfigError(
                    f"{where}: pattern {pattern!r} uses <{name}>, which is not defined under "
                    f"`terms` (defined: {sorted(self.terms)})"
                )
            return f"(?:{self.terms[name]})"

        expanded = _TERM.sub(term, _GAP.sub(lambda m: f"{_GAP_WORD}{{0,{m.group(1)}}}", pattern))
        if words:
            expanded = rf"(?<!\w)(?:{expanded})(?!\w)"
        try:
            return Pattern(expanded)
        except regex.error as exc:
            raise ConfigError(f"{where}: pattern {pattern!r} does not compile: {exc}") from exc


def _read_word_list(raw: dict, folder: Path, file_field: str, key: str, into: str) -> None:
    """Fill `model.<into>` from the mapping under `key` in the file `model.<file_field>` names
    (kept apart so it can be reviewed, or shared with the question reader, on its own)."""
    model = raw.get("model")
    if not isinstance(model, dict) or not model.get(file_field):
        return
    path = folder / str(model[file_field])
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"Cannot read {path} (model.{file_field}): {exc}. Fix the file or set {file_field} to ''."
        ) from exc
    words = body.get(key) if isinstance(body, dict) else None
    if not isinstance(words, dict):
        raise ConfigError(f"{path} (model.{file_field}) must hold a mapping `{key}: {{word: words}}`.")
    model[into] = {str(k): "" if v is None else str(v) for k, v in words.items()}
