"""Red-flag triage: which level of care a conversation calls for, decided before any answer.

The policy (signs, phrasings, levels, referral wording, negation cues, thresholds) is data in
`rules/red_flags.yaml`; this module only reads and applies it, so a clinician can review the
rules without reading Python. Two detectors read every user turn:

* regular-expression patterns with NegEx-style scoping (a negation, hypothetical or
  "resolved" cue near a sign, in the same clause, cancels it; "but" ends the scope);
* sentence-embedding similarity between each clause and the signs' example phrasings, for
  paraphrases no pattern anticipates, with thresholds chosen on the eval set
  (`python -m assistant.triage_tuning tune`, see `assistant/triage_tuning.py`).

The level is the most severe sign over all user turns: nothing typed later lowers it, and
assistant turns are never read. Only when no sign is found is the current message judged
for scope (off-topic, medical requests a guidance assistant must not answer, not English).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assistant.config import Settings
from assistant.embeddings import Embedder
from assistant.errors import ConfigError
from assistant.text import plain_text
from assistant.types import Triage, TriageLevel, Turn

ESCALATING = (TriageLevel.EMERGENCY, TriageLevel.URGENT, TriageLevel.SEE_PT)
_TERM = re.compile(r"<([a-z_]+)>")
_GAP = re.compile(r"<gap(\d+)>")
_GAP_WORD = r"(?:\s+[^\s.!?;:]+)"  # one word inside a sentence: a gap never crosses . ! ? ; :
_APOSTROPHES = "'\u2019\u2018`\u00b4\u02bc"
_AS_SPACE = "-\u2010\u2011\u2012\u2013\u2014_/,()[]{}\"*\u201c\u201d\u00ab\u00bb<>|~+=#\t"
_BOUNDARY = re.compile(r"[.!;:\n]+|\?(?!\s*(?:no|nope|nah|none|never|not)\b)")
_SEMANTIC_FLOOR = -0.15  # margins below this are never kept (the sweep starts above it)
_CACHE_SIZE = 4096


# --------------------------------------------------------------------------- policy model


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LevelPolicy(_Model):
    referral: str = Field(min_length=10, description="What to tell the person first.")


class SignPolicy(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=3, description="Human-readable name, shown in reasons.")
    level: TriageLevel
    source: str = Field(min_length=3, description="Guidance the sign comes from.")
    patterns: list[str] = []
    examples: list[str] = []
    requires: list[str] = Field(
        default=[], description="Patterns of which one must also be said in some user turn."
    )
    history_matters: bool = Field(
        default=False, description="Past or resolved mentions still count (history of cancer)."
    )
    match_meaning: bool = Field(
        default=True,
        description="Also match paraphrases by meaning; off for facts whose sense hinges on a "
        "qualifier embeddings miss (whose cancer, weight lost on purpose or not).",
    )

    @field_validator("level")
    @classmethod
    def _escalating(cls, level: TriageLevel) -> TriageLevel:
        if level not in ESCALATING:
            raise ValueError(f"level must be one of {[str(x) for x in ESCALATING]}, got {level}")
        return level


class SemanticPolicy(_Model):
    thresholds: dict[TriageLevel, float] = Field(
        description="Margin by which a clause must be closer to a sign than to `background`."
    )
    on_topic: float = Field(ge=-1, le=1)
    false_alarm_budget: float = Field(
        ge=0, le=1, description="Share of dev negatives meaning alone may escalate (for `tune`)."
    )
    background: list[str] = Field(
        min_length=1, description="Ordinary messages with no warning sign (the contrast class)."
    )
    about_the_body: str = Field(
        description="A clause is compared by meaning only if this matches it: it names a body "
        "part, a sensation or an event (a fall). Without it, meaning keys on incidental words "
        "(rails, rest, new) of clauses that report nothing."
    )

    @field_validator("thresholds")
    @classmethod
    def _complete(cls, value: dict[TriageLevel, float]) -> dict[TriageLevel, float]:
        missing = [str(level) for level in ESCALATING if level not in value]
        if missing:
            raise ValueError(f"a threshold is needed for every escalating level, missing {missing}")
        bad = {str(k): v for k, v in value.items() if not -1 <= v <= 1}
        if bad:
            raise ValueError(f"thresholds are similarity margins in [-1, 1], got {bad}")
        return value


class NegationPolicy(_Model):
    window: int = Field(gt=0, le=20)
    pre: list[str]
    post: list[str]
    pseudo: list[str]
    terminators: list[str]
    hypothetical: list[str]
    asking: list[str]
    resolved: list[str]
    figurative: list[str] = Field(
        default=[], description="Figures of speech (died laughing, killing it): a clause holding "
        "one is not matched by meaning (patterns still apply)."
    )


class RequestPolicy(_Model):
    id: str
    name: str
    referral: str = Field(min_length=10)
    patterns: list[str] = Field(min_length=1)


class LanguagePolicy(_Model):
    referral: str = Field(min_length=10)
    english: str
    other: str


class ScopePolicy(_Model):
    referral: str = Field(min_length=10)
    requests: list[RequestPolicy]
    on_topic: str
    topics: list[str]
    small_talk: str
    on_topic_examples: list[str] = Field(min_length=1)
    non_english: LanguagePolicy


class TriagePolicy(_Model):
    """The whole triage policy, validated; `load` turns any problem into a ConfigError."""

    version: int
    levels: dict[TriageLevel, LevelPolicy]
    semantic: SemanticPolicy
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
            raise ConfigError(
                f"The triage policy {path} must be a mapping, got {type(raw).__name__}"
            )
        try:
            policy = cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"Invalid triage policy {path}: {problems}") from exc
        policy.check(path)
        return policy

    def check(self, path: Path | str = "policy") -> None:
        """Cross-field checks pydantic cannot express; every pattern must compile."""
        missing = [str(level) for level in ESCALATING if level not in self.levels]
        if missing:
            raise ConfigError(f"{path}: levels needs a referral for {missing}")
        seen: set[str] = set()
        for sign in self.signs:
            if sign.id in seen:
                raise ConfigError(f"{path}: sign id {sign.id!r} is used twice; ids must be unique")
            seen.add(sign.id)
            if not sign.patterns and not sign.examples:
                raise ConfigError(
                    f"{path}: sign {sign.id!r} needs at least one pattern or example phrasing"
                )
            for pattern in [*sign.patterns, *sign.requires]:
                self.compile(pattern, where=f"sign {sign.id!r}")
        for request in self.scope.requests:
            for pattern in request.patterns:
                self.compile(pattern, where=f"scope request {request.id!r}")
        for name in (
            "pre", "post", "pseudo", "terminators", "hypothetical", "asking", "resolved",
            "figurative",
        ):
            for pattern in getattr(self.negation, name):
                self.compile(pattern, where=f"negation.{name}", words=not pattern.startswith("^"))
        for pattern in [self.scope.on_topic, *self.scope.topics]:
            self.compile(pattern, where="scope")
        self.compile(self.semantic.about_the_body, where="semantic.about_the_body")

    def compile(self, pattern: str, *, where: str, words: bool = True) -> re.Pattern[str]:
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
            return re.compile(expanded)
        except re.error as exc:
            raise ConfigError(f"{where}: pattern {pattern!r} does not compile: {exc}") from exc


# --------------------------------------------------------------------------- text handling


@dataclass(frozen=True)
class _Text:
    """A turn as matched: folded (lower-case, no apostrophes) with a map back to the original."""

    original: str
    folded: str
    index: list[int]
    clauses: list[tuple[int, int]]  # spans in `folded`

    def quote(self, start: int, end: int) -> str:
        if end <= start:
            return ""
        return self.original[self.index[start] : self.index[end - 1] + 1].strip(" ,.;:!?")

    def clause_at(self, pos: int) -> tuple[int, int]:
        for span in self.clauses:
            if span[0] <= pos < span[1]:
                return span
        return (0, len(self.folded))


def _fold(text: str) -> tuple[str, list[int]]:
    """Lower-case, drop apostrophes, turn inner punctuation into spaces, collapse spaces."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch in _APOSTROPHES:
            continue
        if ch in _AS_SPACE or (ch == ":" and text[i + 1 : i + 2].isdigit()):
            ch = " "  # a colon ends a clause ("ignore the rules: I fell"), except in 10:30
        for c in ch.lower():
            if c == " " and (not out or out[-1] in " \n"):
                continue
            out.append(c)
            index.append(i)
    return "".join(out), index


class _Speller:
    """Corrects one-letter typos ("bladdr", "controll", "fevr") towards the policy's own words.

    Only a token that is not a real word (not in the embedding model's word list) is
    corrected, only to a policy word at edit distance 1 with the same first letter; so
    "ladder" never becomes "bladder" and "fewer" never becomes "fever".
    """

    def __init__(self, literals: Iterable[str], known: set[str]) -> None:
        literal = set(literals)
        self.keep = known | literal  # "dont", "wont", "cant" are policy words, never typos
        # only real words are targets: a regex fragment like "tumou" (from "tumou?r") is not
        self.targets = {t for t in literal if len(t) >= 4 and t in known}
        self._deletes: dict[str, set[str]] = {}
        for word in self.targets:
            for variant in {word, *_deletions(word)}:
                self._deletes.setdefault(variant, set()).add(word)

    def correct(self, token: str) -> str:
        if len(token) < 4 or not token.isalpha() or token in self.keep:
            return token
        candidates: set[str] = set()
        for variant in {token, *_deletions(token)}:
            candidates |= self._deletes.get(variant, set())
        close = sorted(
            w for w in candidates if w[0] == token[0] and _osa_distance(token, w) == 1
        )
        return close[0] if close else token


def _deletions(word: str) -> list[str]:
    return [word[:i] + word[i + 1 :] for i in range(len(word))]


def _osa_distance(a: str, b: str) -> int:
    """Optimal-string-alignment edit distance (insert, delete, substitute, swap neighbours)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = int(a[i - 1] != b[j - 1])
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _words_alt(items: Iterable[str]) -> str:
    return "|".join(f"(?:{item})" for item in items)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Finding:
    """One sign recognised in one user turn, by a pattern or by meaning."""

    sign: SignPolicy
    turn: int  # index among the user turns; the last one is the current message
    quote: str  # the person's own words
    method: str  # "pattern" | "semantic"
    score: float = 1.0


@dataclass
class Analysis:
    """Everything `assess` decides from; thresholds are applied later so a sweep can vary them."""

    findings: list[Finding] = field(default_factory=list)  # pattern findings, non-negated
    semantic: list[Finding] = field(default_factory=list)  # candidates >= the floor
    satisfied: set[str] = field(default_factory=set)  # sign ids whose `requires` is met
    scope_reason: str = ""  # fixed out-of-scope reason ("" = in scope unless semantic says so)
    scope_referral: str = ""
    scope_request: bool = False  # a forbidden request (dose, scan, diagnosis, other task)
    on_topic_similarity: float | None = None  # set when only meaning can decide the scope
    current_turn: int = 0


# --------------------------------------------------------------------------- the triager


class Triager:
    """Decides the triage level of a message in its conversation, from the YAML policy.

    Example:
        >>> triager = Triager.from_settings(Settings.load(), Embedder())
        >>> triager.assess("I peed myself a little on the treadmill").level
        <TriageLevel.EMERGENCY: 'emergency'>
    """

    def __init__(self, policy: TriagePolicy, embedder: Embedder | None = None) -> None:
        self.policy = policy
        self.embedder = embedder
        neg = policy.negation
        comp = policy.compile
        self._patterns = {
            s.id: [comp(p, where=f"sign {s.id!r}") for p in s.patterns] for s in policy.signs
        }
        self._requires = {
            s.id: [comp(p, where=f"sign {s.id!r}") for p in s.requires] for s in policy.signs
        }
        self._pre = comp(_words_alt(neg.pre), where="negation.pre")
        self._post = [comp(p, where="negation.post", words=not p.startswith("^")) for p in neg.post]
        self._pseudo = comp(_words_alt(neg.pseudo), where="negation.pseudo")
        self._hypothetical = comp(_words_alt(neg.hypothetical), where="negation.hypothetical")
        self._resolved = comp(_words_alt(neg.resolved), where="negation.resolved")
        self._asking = re.compile(rf"(?<!\w)(?:{_words_alt(neg.asking)})\s*$")
        self._terminator = comp(_words_alt(neg.terminators), where="negation.terminators")
        self._figurative = (
            comp(_words_alt(neg.figurative), where="negation.figurative") if neg.figurative else None
        )
        self._about_the_body = comp(policy.semantic.about_the_body, where="semantic.about_the_body")
        scope = policy.scope
        self._requests = [
            (r, [comp(p, where=f"scope request {r.id!r}") for p in r.patterns])
            for r in scope.requests
        ]
        self._on_topic = comp(scope.on_topic, where="scope.on_topic")
        self._topics = comp(_words_alt(scope.topics), where="scope.topics")
        self._small_talk = re.compile(scope.small_talk)
        self._english = set(scope.non_english.english.split("|"))
        self._other = set(scope.non_english.other.split("|"))
        self._speller: _Speller | None = None
        if embedder is not None:  # its word list tells real words from typos
            vocab = embedder.model.tokenizer.get_vocab()
            known = {w for w in vocab if w.isalpha()}
            neg = policy.negation
            literal = " ".join(
                [
                    *(p for sign in policy.signs for p in [*sign.patterns, *sign.requires]),
                    *policy.terms.values(),
                    *neg.pre, *neg.post, *neg.pseudo, *neg.terminators, *neg.hypothetical,
                    *neg.asking, *neg.resolved,
                    *(p for r in scope.requests for p in r.patterns),
                    *scope.topics, scope.on_topic, scope.small_talk,
                ]
            )
            words = re.findall(r"[a-z]+", literal)
            self._speller = _Speller(words, known)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._example_sign: list[SignPolicy] = []
        self._examples = np.zeros((0, 0), dtype=np.float32)
        self._on_topic_examples = np.zeros((0, 0), dtype=np.float32)
        self._background = np.zeros((0, 0), dtype=np.float32)
        if embedder is not None:  # all example phrasings are embedded once, here
            texts = [(s, e) for s in policy.signs if s.match_meaning for e in s.examples]
            self._example_sign = [s for s, _ in texts]
            self._examples = embedder.encode([e for _, e in texts])
            self._on_topic_examples = embedder.encode(scope.on_topic_examples)
            self._background = embedder.encode(policy.semantic.background)

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder | None = None) -> Triager:
        """Load the policy named by `settings.triage_rules` (raises ConfigError if invalid)."""
        return cls(TriagePolicy.load(settings.triage_rules), embedder)

    # -- public ------------------------------------------------------------------------

    def assess(
        self,
        message: str,
        history: Sequence[Turn] = (),
        *,
        message_vector: np.ndarray | None = None,
    ) -> Triage:
        """Triage `message` in the context of `history` (only user turns are read).

        Args:
            message: the current message, already normalised by `clean_message`.
            history: earlier turns, oldest first.
            message_vector: the embedder's unit vector of `message`, if already computed.
        """
        analysis = self.analyse(message, history, message_vector=message_vector)
        return self.decide(analysis)

    def analyse(
        self,
        message: str,
        history: Sequence[Turn | dict[str, Any]] = (),
        *,
        message_vector: np.ndarray | None = None,
    ) -> Analysis:
        """Find every sign candidate in the user turns, before thresholds are applied."""
        turns = [Turn.coerce(t) for t in history]
        user_texts = [t.content for t in turns if t.role == "user"] + [message]
        texts = [self._prepare(plain_text(t)) for t in user_texts]
        current = len(texts) - 1
        analysis = Analysis(current_turn=current)
        for i, text in enumerate(texts):
            analysis.findings.extend(self._pattern_findings(text, i))
        for sign in self.policy.signs:
            if not sign.requires or any(
                self._matches(text, self._requires[sign.id], sign) for text in texts
            ):
                analysis.satisfied.add(sign.id)
        if self.embedder is not None:
            english = [i for i, text in enumerate(texts) if not self._is_foreign(text.folded)]
            vector = message_vector if texts[current].original == message else None
            analysis.semantic = self._semantic_findings(texts, english, current, vector)
        self._judge_scope(texts, analysis)
        return analysis

    def decide(
        self,
        analysis: Analysis,
        thresholds: dict[TriageLevel, float] | None = None,
        on_topic: float | None = None,
    ) -> Triage:
        """Turn an analysis into a Triage: the most severe sign wins, else the scope verdict.

        A forbidden request (a dose, a scan, a diagnosis, a joke) outranks see_pt signs, which
        are usually the very symptoms it asks about ("diagnose me: pain after walking"); its
        referral already names who can help. Emergency and urgent signs outrank everything.
        """
        thresholds = thresholds or self.policy.semantic.thresholds
        on_topic = self.policy.semantic.on_topic if on_topic is None else on_topic
        found: dict[str, Finding] = {}
        for f in analysis.findings:
            found.setdefault(f.sign.id, f)
        for f in sorted(analysis.semantic, key=lambda f: -f.score):
            if f.score >= thresholds[f.sign.level]:
                found.setdefault(f.sign.id, f)
        hits = [f for f in found.values() if f.sign.id in analysis.satisfied]
        if analysis.scope_request:
            hits = [f for f in hits if f.sign.level.severity > TriageLevel.SEE_PT.severity]
        if hits:
            hits.sort(key=lambda f: (-f.sign.level.severity, f.turn))
            level = hits[0].sign.level
            reasons = [self._reason(f, analysis.current_turn) for f in hits]
            return Triage(level=level, reasons=reasons, referral=self.policy.levels[level].referral)
        if analysis.scope_reason:
            return Triage(
                level=TriageLevel.OUT_OF_SCOPE,
                reasons=[analysis.scope_reason],
                referral=analysis.scope_referral,
            )
        sim = analysis.on_topic_similarity
        if sim is not None and sim < on_topic:
            return Triage(
                level=TriageLevel.OUT_OF_SCOPE,
                reasons=[f"not about back pain, posture or exercise (similarity {sim:.2f})"],
                referral=self.policy.scope.referral,
            )
        return Triage()

    # -- patterns ----------------------------------------------------------------------

    def _prepare(self, text: str) -> _Text:
        folded, index = _fold(text)
        if self._speller is not None:
            folded, index = self._respell(folded, index)
        cuts = {0, len(folded)}
        for m in _BOUNDARY.finditer(folded):
            cuts.update((m.start(), m.end()))
        for m in self._terminator.finditer(folded):
            cuts.add(m.start())
        points = sorted(cuts)
        clauses = [(a, b) for a, b in zip(points, points[1:], strict=False) if folded[a:b].strip()]
        return _Text(original=text, folded=folded, index=index, clauses=clauses)

    def _respell(self, folded: str, index: list[int]) -> tuple[str, list[int]]:
        assert self._speller is not None
        out: list[str] = []
        new_index: list[int] = []
        pos = 0
        for m in re.finditer(r"[a-z]+", folded):
            out.append(folded[pos : m.start()])
            new_index.extend(index[pos : m.start()])
            word = self._speller.correct(m.group())
            out.append(word)
            if word == m.group():
                new_index.extend(index[m.start() : m.end()])
            else:  # every letter of the correction points into the typed word
                span = index[m.start() : m.end()]
                new_index.extend(span[min(k, len(span) - 1)] for k in range(len(word)))
            pos = m.end()
        out.append(folded[pos:])
        new_index.extend(index[pos:])
        return "".join(out), new_index

    def _pattern_findings(self, text: _Text, turn: int) -> list[Finding]:
        findings = []
        for sign in self.policy.signs:
            for pattern in self._patterns[sign.id]:
                match = self._first_live(text, pattern, sign)
                if match is not None:
                    quote = text.quote(*match)
                    findings.append(Finding(sign=sign, turn=turn, quote=quote, method="pattern"))
                    break
        return findings

    def _matches(self, text: _Text, patterns: list[re.Pattern[str]], sign: SignPolicy) -> bool:
        return any(self._first_live(text, p, sign) is not None for p in patterns)

    def _first_live(
        self, text: _Text, pattern: re.Pattern[str], sign: SignPolicy
    ) -> tuple[int, int] | None:
        """The first match of `pattern` that no negation, hypothetical or resolved cue cancels."""
        for m in pattern.finditer(text.folded):
            if not self._cancelled(text, m.start(), m.end(), sign):
                return m.start(), m.end()
        return None

    def _cancelled(self, text: _Text, start: int, end: int, sign: SignPolicy) -> bool:
        """NegEx scoping: cues in the same clause, negation only within `window` words."""
        c_start, c_end = text.clause_at(start)
        before = text.folded[c_start:start]
        after = text.folded[end:c_end]
        window = self.policy.negation.window
        near_before = self._pseudo.sub(" ", " ".join(before.split()[-window:]))
        near_after = " ".join(after.split()[:window])
        if self._pre.search(near_before):
            return True
        if any(p.search(after if p.pattern.startswith("^") else near_after) for p in self._post):
            return True
        if self._hypothetical.search(before) or self._asking.search(before):
            return True
        return not sign.history_matters and bool(self._resolved.search(before + " " + after))

    # -- meaning -----------------------------------------------------------------------

    def _semantic_findings(
        self,
        texts: list[_Text],
        english: list[int],
        current: int,
        message_vector: np.ndarray | None,
    ) -> list[Finding]:
        """Compare each clause (and each whole turn) with the signs' example phrasings.

        A finding's score is its similarity to the sign's closest example minus its
        similarity to the closest ordinary (background) message: "my back is agony" is
        close to "my back hurts after every workout", but closer still to "my back hurts".
        """
        if not len(self._example_sign):
            return []
        units: list[tuple[int, str, str]] = []  # (turn, original words, folded words)
        for i in english:
            text = texts[i]
            spans = [s for s in text.clauses if len(text.folded[s[0] : s[1]].split()) >= 3]
            if len(spans) > 1:  # one real clause (plus "?" or "ok"): the whole turn stands for it
                units.extend((i, text.quote(a, b), text.folded[a:b]) for a, b in spans)
            if spans or i == current:  # the whole turn; the current one also serves the scope
                units.append((i, text.original, text.folded))
        if not units:
            return []
        known = {}
        if message_vector is not None:
            known[texts[current].original] = np.asarray(message_vector, dtype=np.float32)
        vectors = self._vectors([u[1] for u in units], known)
        background = (vectors @ self._background.T).max(axis=1, keepdims=True)
        sims = vectors @ self._examples.T - background  # (units, examples) margins
        best: dict[tuple[int, str], Finding] = {}
        for u, (turn, words, folded) in enumerate(units):
            if self._not_a_report(folded):
                continue
            # a unit stands for the one sign it is closest to, not every sign above a threshold
            top = int(np.argmax(sims[u]))
            sign, score = self._example_sign[top], float(sims[u, top])
            if score < _SEMANTIC_FLOOR or self._unit_cancelled(folded, sign):
                continue
            key = (turn, sign.id)
            if key not in best or best[key].score < score:
                best[key] = Finding(sign, turn, words, "semantic", score)
        return list(best.values())

    def _not_a_report(self, folded: str) -> bool:
        """Requests (a dose, a scan, a diagnosis), off-topic text, figures of speech and
        clauses that name no body part, sensation or event describe no symptom."""
        if not self._about_the_body.search(folded):
            return True
        if self._figurative is not None and self._figurative.search(folded):
            return True
        if any(p.search(folded) for _, patterns in self._requests for p in patterns):
            return True
        return bool(self._topics.search(folded)) and not self._on_topic.search(folded)

    def _unit_cancelled(self, folded: str, sign: SignPolicy) -> bool:
        """A clause that denies, asks hypothetically or says "it's over" cannot match by meaning."""
        text = self._pseudo.sub(" ", folded)
        if self._pre.search(text) or self._hypothetical.search(text):
            return True
        if any(not p.pattern.startswith("^") and p.search(text) for p in self._post):
            return True
        return not sign.history_matters and bool(self._resolved.search(text))

    def _vectors(self, texts: list[str], known: dict[str, np.ndarray]) -> np.ndarray:
        """Embed texts, reusing cached vectors so history turns are not embedded again."""
        assert self.embedder is not None
        with self._lock:
            cached = {t: self._cache[t] for t in texts if t in self._cache}
        cached.update(known)
        missing = list(dict.fromkeys(t for t in texts if t not in cached))
        if missing:
            fresh = self.embedder.encode(missing)
            cached.update(zip(missing, fresh, strict=True))
        with self._lock:
            for t in texts:
                self._cache[t] = cached[t]
                self._cache.move_to_end(t)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return np.stack([cached[t] for t in texts])

    # -- scope -------------------------------------------------------------------------

    def _is_foreign(self, folded: str) -> bool:
        letters = [ch for ch in folded if ch.isalpha()]
        if letters and sum(1 for ch in letters if ord(ch) > 0x24F) / len(letters) > 0.5:
            return True
        words = re.findall(r"\w+", folded)
        other = sum(1 for w in words if w in self._other)
        english = sum(1 for w in words if w in self._english)
        return other >= 2 and other > english

    def _judge_scope(self, texts: list[_Text], analysis: Analysis) -> None:
        """Out-of-scope is judged on the current message only (history never lowers a level)."""
        text = texts[analysis.current_turn].folded
        scope = self.policy.scope
        if self._is_foreign(text):
            analysis.scope_reason = "not in English"
            analysis.scope_referral = scope.non_english.referral
            return
        for request, patterns in self._requests:
            for pattern in patterns:
                m = pattern.search(text)
                if m:
                    analysis.scope_reason = request.name  # the request is not echoed back
                    analysis.scope_referral = request.referral
                    analysis.scope_request = True
                    return
        mentions_sign = any(
            p.search(text)
            for sign in self.policy.signs
            if not sign.requires  # "trip" alone is a fall only with a risk factor
            for p in self._patterns[sign.id]
        )
        if mentions_sign or self._on_topic.search(text) or self._small_talk.search(text):
            return  # a question about a warning sign is on topic even when nothing is found
        if self._topics.search(text):
            analysis.scope_reason = "not about back pain, posture or exercise"
            analysis.scope_referral = scope.referral
            return
        earlier_on_topic = any(self._on_topic.search(t.folded) for t in texts[:-1])
        if self.embedder is not None and not earlier_on_topic:
            vector = self._vectors([texts[analysis.current_turn].original], {})[0]
            analysis.on_topic_similarity = float(np.max(self._on_topic_examples @ vector))

    def _reason(self, finding: Finding, current: int) -> str:
        quote = finding.quote if len(finding.quote) <= 120 else finding.quote[:117] + "..."
        how = "" if finding.method == "pattern" else ", similar in meaning"
        when = "" if finding.turn == current else ", said earlier"
        return f"{finding.sign.name} ('{quote}'{how}{when})"
