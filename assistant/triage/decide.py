"""The one decision: from what was found in a conversation to a triage level and its wording.

Both the runtime (`Triager.assess`) and threshold tuning (`train.py`) call `decide`, so the
thresholds tuned are the thresholds applied. The most severe sign over every user turn
wins; out-of-scope is judged on the current message only and never outranks a sign, so
nothing typed later lowers a level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from assistant.triage.corpus import FORBIDDEN, OFF_TOPIC
from assistant.triage.language import detect_language
from assistant.triage.model import Thresholds, contexts
from assistant.triage.patterns import PatternHit
from assistant.triage.policy import ESCALATING, SignPolicy, TriagePolicy
from assistant.triage.segment import Unit
from assistant.types import Triage, TriageLevel

QUOTE_CHARS = 120
OTHER_PERSON = 0.5


@dataclass
class Analysis:
    """Everything `decide` needs, computed once per conversation; thresholds come later."""

    pattern_hits: list[PatternHit] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    proba: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    classes: list[str] = field(default_factory=list)
    other: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gate: np.ndarray = field(default_factory=lambda: np.ones(0))  # P(the unit's window reports a sign)
    gate_weight: float = 0.0
    request: str | None = None  # a forbidden request a pattern names in the current message
    scope: dict[str, float] = field(default_factory=dict)  # P(off_topic), P(forbidden) of the message
    texts: list[str] = field(default_factory=list)  # the user turns, oldest first
    _languages: dict[int, str] = field(default_factory=dict)  # detected on demand: see `language`
    current_turn: int = 0
    _levels: tuple[np.ndarray, np.ndarray] | None = None  # derived once: see `level_scores`

    def language(self, turn: int) -> str:
        """The language of one user turn, detected when first asked (a long history is not
        run through the detector turn by turn)."""
        if turn not in self._languages:
            self._languages[turn] = detect_language(self.texts[turn]) if 0 <= turn < len(self.texts) else "en"
        return self._languages[turn]

    def level_scores(self, policy: TriagePolicy) -> tuple[np.ndarray, np.ndarray]:
        """Per unit and escalating level: P(a sign of that level or worse), weighed by the gate
        (do the unit's sentence and its neighbours report a sign at all), and the likeliest sign of
        exactly that level (the reason shown when that level's threshold is reached).

        Derived from `proba` once, so tuning can try many thresholds cheaply.
        """
        if self._levels is None:
            by_id = {s.id: s for s in policy.signs}
            p = np.zeros((len(self.units), len(ESCALATING)))
            best = np.full((len(self.units), len(ESCALATING)), -1)
            for k, level in enumerate(ESCALATING):
                cols = [
                    i
                    for i, c in enumerate(self.classes)
                    if c in by_id and by_id[c].level.severity >= level.severity
                ]
                exact = [i for i in cols if by_id[self.classes[i]].level is level]
                if exact and len(self.units):
                    p[:, k] = self.proba[:, cols].sum(axis=1)
                    best[:, k] = np.asarray(exact)[self.proba[:, exact].argmax(axis=1)]
            if self.gate_weight > 0 and len(self.gate) == len(self.units):
                p = p ** (1 - self.gate_weight) * self.gate[:, None] ** self.gate_weight
            self._levels = (p, best)
        return self._levels


@dataclass(frozen=True)
class Finding:
    sign: SignPolicy
    turn: int
    quote: str
    method: str  # "pattern" | "model"
    other: bool = False
    score: float = 1.0


def findings(analysis: Analysis, policy: TriagePolicy, thresholds: Thresholds) -> list[Finding]:
    """Pattern hits, plus every unit whose P(sign of level L or worse) reaches L's threshold."""
    found: list[Finding] = []
    p, best = analysis.level_scores(policy)
    scored = len(analysis.classes) > 0 and analysis.proba.shape[0] == len(analysis.units)
    for hit in analysis.pattern_hits:  # the reviewed backstop
        held = _holding(analysis, hit) if scored else None
        if held is not None and _vetoed(p[held], hit.sign.level, _veto(analysis.units[held].text, policy)):
            continue
        other = held is not None and len(analysis.other) > 0 and bool(analysis.other[held] >= OTHER_PERSON)
        found.append(Finding(hit.sign, hit.turn, hit.quote, "pattern", other))
    if not len(analysis.units):
        return found
    by_id = {s.id: s for s in policy.signs}
    cut = np.array([thresholds.levels[level] for level in ESCALATING])
    for u in np.flatnonzero((p >= cut).any(axis=1)):
        k = int(np.argmax(p[u] >= cut))  # the most severe level reached (ESCALATING is most severe first)
        unit = analysis.units[u]
        other = bool(analysis.other[u] >= OTHER_PERSON) if len(analysis.other) else False
        sign = by_id[analysis.classes[int(best[u, k])]]
        found.append(Finding(sign, unit.turn, unit.text, "model", other, float(p[u, k])))
    return found


def _veto(clause: str, policy: TriagePolicy) -> float:
    """How sure the model must be that a pattern's clause holds no sign to drop the hit: surer
    (`pattern_veto`) unless the clause is said in a hypothetical or historical context ("if both
    legs ever go numb..."), which the patterns cannot read (`pattern_veto_in_context`)."""
    model = policy.model
    if model.pattern_veto_in_context > model.pattern_veto and contexts(clause, model.context_cues):
        return model.pattern_veto_in_context
    return model.pattern_veto


def _vetoed(scores: np.ndarray, level: TriageLevel, veto: float) -> bool:
    """The model is near-certain that the clause holding a pattern's words reports no sign of
    that level ("my phone fell off the treadmill"): the one case where it overrules a pattern.

    `veto` is tiny (the policy's `pattern_veto`, chosen where no true hit on dev or in any
    leave-one-style-out fold is dropped), so a pattern still catches every sign the model
    merely underrates."""
    return veto > 0 and level in ESCALATING and float(scores[ESCALATING.index(level)]) < veto


def _holding(analysis: Analysis, hit: PatternHit) -> int | None:
    """The smallest unit that holds a pattern's quote, if the model scored one."""
    holding = [
        u
        for u, unit in enumerate(analysis.units)
        if unit.turn == hit.turn and hit.quote.lower() in unit.text.lower()
    ]
    return min(holding, key=lambda u: len(analysis.units[u].text)) if holding else None


def decide(analysis: Analysis, policy: TriagePolicy, thresholds: Thresholds) -> Triage:
    """The most severe finding wins; with none, the scope and language of the current message."""
    found = findings(analysis, policy, thresholds)
    current = analysis.current_turn
    if found:
        level = max((f.sign.level for f in found), key=lambda lv: lv.severity)
        top = [f for f in found if f.sign.level is level]
        top.sort(key=lambda f: (f.method != "pattern", -f.score, len(f.quote)))
        lead = top[0]
        reasons = _reasons(found, current)
        # the decisive finding speaks of someone else ("my husband can't feel his groin")
        if lead.sign.referral:
            referral = (lead.other and lead.sign.referral_other) or lead.sign.referral
        else:
            referral = policy.levels[level].referral_other if lead.other else policy.levels[level].referral
        language = analysis.language(lead.turn)
        translated = policy.levels[level].translations.get(language)
        if translated and not lead.sign.referral:
            referral = f"{translated}\n\n{referral}"
        return Triage(level=level, reasons=reasons, referral=referral, language=language)
    language = analysis.language(current)
    if analysis.texts and not any(ch.isalnum() for ch in analysis.texts[current]):
        # nothing to answer (empty, or only symbols): not a back-pain question either
        return Triage(TriageLevel.OUT_OF_SCOPE, ["no question to answer"], policy.scope.referral, language)
    if analysis.request is not None:
        request = next(r for r in policy.scope.requests if r.id == analysis.request)
        return Triage(TriageLevel.OUT_OF_SCOPE, [request.name], request.referral, language)
    p_off, p_forbidden = scope_probability(analysis)
    if p_off + p_forbidden >= thresholds.out_of_scope:
        if p_forbidden > p_off:
            return Triage(
                TriageLevel.OUT_OF_SCOPE,
                ["asks for medical advice a guidance assistant cannot give"],
                policy.scope.forbidden_referral,
                language,
            )
        return Triage(
            TriageLevel.OUT_OF_SCOPE,
            ["not about back pain, posture or exercise"],
            policy.scope.referral,
            language,
        )
    if language != "en":
        reply = policy.scope.non_english.replies.get(language, policy.scope.non_english.replies["en"])
        return Triage(TriageLevel.SELF_CARE, [f"written in another language ({language})"], reply, language)
    return Triage()


def scope_probability(analysis: Analysis) -> tuple[float, float]:
    """P(off-topic), P(forbidden request) of the current message, from the scope classifier."""
    return analysis.scope.get(OFF_TOPIC, 0.0), analysis.scope.get(FORBIDDEN, 0.0)


def _reasons(found: list[Finding], current: int) -> list[str]:
    """One line per sign, most severe first: its name and the person's own words."""
    best: dict[str, Finding] = {}
    for f in sorted(found, key=lambda f: (-f.sign.level.severity, f.method != "pattern", len(f.quote))):
        best.setdefault(f.sign.id, f)
    lines = []
    for f in best.values():
        quote = f.quote if len(f.quote) <= QUOTE_CHARS else f.quote[: QUOTE_CHARS - 3] + "..."
        when = "" if f.turn == current else ", said earlier"
        lines.append(f"{f.sign.name} ('{quote}'{when})")
    return lines
