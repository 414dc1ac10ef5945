"""Choosing the decision thresholds on the dev split: by the policy's costs, then bagged.

A threshold chosen once on one dev split is a noisy estimate. The recall floors are met at the
few lowest-scoring positives, and the cost curves are nearly flat, so the same model tuned on a
bootstrap resample of dev lands one to four grid steps away (standard deviation about 0.06 for
emergency, 0.11 for urgent and 0.23 for out-of-scope). Every change to the corpus then moved the
thresholds more than it moved the model. Each knob is therefore the median over resamples of
dev (bagging, Breiman 1996), with the recall floors checked again on the whole of dev.

A candidate is judged in numpy: `DevScores` holds what the thresholds act on, and `levels`
reproduces `decide` (a test holds them equal), so hundreds of resamples take seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.triage.corpus import Example
from assistant.triage.decide import Analysis, findings, scope_probability
from assistant.triage.model import Thresholds
from assistant.triage.policy import ESCALATING, TriagePolicy
from assistant.types import Triage, TriageLevel

GRID = [round(x, 3) for x in np.arange(0.05, 0.951, 0.025)]
LEVELS = list(TriageLevel)
_INDEX = {level: i for i, level in enumerate(LEVELS)}
_SEVERITY = np.array([level.severity for level in LEVELS])
_ESCALATING_SEVERITY = np.array([level.severity for level in ESCALATING])
_NEVER = Thresholds(dict.fromkeys(ESCALATING, math.inf), math.inf)


def cost(expected: TriageLevel, got: Triage, policy: TriagePolicy) -> float:
    """A miss costs the policy's price for the level missed; a false alarm, per level too high."""
    e, g = expected.severity, got.level.severity
    if e > g:
        return policy.costs.missed[expected]
    if g > e:
        return policy.costs.false_alarm * (g - e)
    if expected is TriageLevel.OUT_OF_SCOPE and got.level is not TriageLevel.OUT_OF_SCOPE:
        return policy.costs.missed_out_of_scope
    if expected is not TriageLevel.OUT_OF_SCOPE and got.level is TriageLevel.OUT_OF_SCOPE:
        return policy.costs.refused_in_scope
    return 0.0


@dataclass(frozen=True)
class DevScores:
    """Per dev message, what the thresholds act on."""

    fixed: np.ndarray  # severity the backstop patterns set whatever the thresholds; -1 for none
    top: np.ndarray  # (n, len(ESCALATING)): the highest unit score for each escalating level
    always_out: np.ndarray  # out of scope whatever the thresholds (no text, a named forbidden request)
    scope: np.ndarray  # P(off-topic) + P(forbidden request) of the current message
    expected: np.ndarray  # the corpus level, as an index into LEVELS

    @classmethod
    def of(cls, analyses: Sequence[Analysis], examples: Sequence[Example], policy: TriagePolicy) -> DevScores:
        fixed, top, always_out, scope = [], [], [], []
        for a in analyses:
            hits = findings(a, policy, _NEVER)  # thresholds out of reach: the patterns' findings only
            fixed.append(max((f.sign.level.severity for f in hits), default=-1))
            p, _ = a.level_scores(policy)
            top.append(p.max(axis=0) if len(p) else np.full(len(ESCALATING), -1.0))
            text = a.texts[a.current_turn] if a.texts else ""
            always_out.append(bool(a.texts) and not any(ch.isalnum() for ch in text) or a.request is not None)
            p_off, p_forbidden = scope_probability(a)
            scope.append(p_off + p_forbidden)
        return cls(
            np.array(fixed),
            np.array(top).reshape(len(analyses), len(ESCALATING)),
            np.array(always_out, dtype=bool),
            np.array(scope, dtype=float),
            np.array([_INDEX[e.level] for e in examples], dtype=int),
        )

    def subset(self, rows: np.ndarray) -> DevScores:
        return DevScores(
            self.fixed[rows], self.top[rows], self.always_out[rows], self.scope[rows], self.expected[rows]
        )

    def levels(self, t: Thresholds) -> np.ndarray:
        """The level `decide` gives each message under `t`, as an index into LEVELS."""
        cut = np.array([t.levels[level] for level in ESCALATING])
        reached = np.where(self.top >= cut, _ESCALATING_SEVERITY, -1).max(axis=1)
        severity = np.maximum(self.fixed, reached)
        out = self.always_out | (self.scope >= t.out_of_scope)
        got = np.full(len(severity), _INDEX[TriageLevel.SELF_CARE])
        got[out] = _INDEX[TriageLevel.OUT_OF_SCOPE]
        for level in ESCALATING:  # a sign found outranks out-of-scope
            got[severity == level.severity] = _INDEX[level]
        return got

    def recall(self, t: Thresholds, level: TriageLevel) -> float:
        return _recall(self.expected, self.levels(t), level)


def _recall(expected: np.ndarray, got: np.ndarray, level: TriageLevel) -> float:
    """Share of the messages of `level` given that level or a more severe one (1 if there are none)."""
    rows = expected == _INDEX[level]
    return float((_SEVERITY[got[rows]] >= level.severity).mean()) if rows.any() else 1.0


def _cost_matrix(policy: TriagePolicy) -> np.ndarray:
    return np.array([[cost(e, Triage(level=g), policy) for g in LEVELS] for e in LEVELS])


def tune_once(scores: DevScores, policy: TriagePolicy) -> Thresholds:
    """Coordinate descent over each level's threshold (then scope's), lowest cost on these messages.

    Thresholds that miss the policy's recall floors (`costs.min_recall`) are passed over while
    any other meets them; then those whose false alarms on negatives exceed the budget; among
    equal costs the middle of the plateau wins.
    """
    costs = _cost_matrix(policy)
    expected_severity = _SEVERITY[scores.expected]
    negatives = expected_severity == 0

    def score(candidate: Thresholds) -> tuple[float, float, float]:
        got = scores.levels(candidate)
        severity = _SEVERITY[got]
        total = float(costs[scores.expected, got].sum())
        alarms = float((severity[negatives] > 0).sum()) / max(1, int(negatives.sum()))
        over = max(0.0, alarms - policy.costs.false_alarm_budget)
        short = sum(
            max(0.0, floor - _recall(scores.expected, got, level))
            for level, floor in policy.costs.min_recall.items()
        )
        return (round(short, 9), round(over, 9), round(total, 9))

    t = Thresholds()
    knobs: list[TriageLevel | str] = [*ESCALATING, "out_of_scope"]
    for _ in range(2):
        for knob in knobs:
            results = [(score(_with(t, knob, value)), value) for value in GRID]
            best = min(r for r, _ in results)
            plateau = [v for r, v in results if r == best]
            t = _with(t, knob, plateau[len(plateau) // 2])
    return t


def tune_thresholds(
    analyses: Sequence[Analysis], examples: Sequence[Example], policy: TriagePolicy
) -> Thresholds:
    """The thresholds for the model whose dev `analyses` these are.

    With `costs.threshold_resamples` = 0, one coordinate descent on dev. Otherwise each knob is
    the median over that many bootstrap resamples of dev (a fixed seed: the same dev gives the
    same thresholds), put on the grid below it; then a level whose recall floor on the whole of
    dev is missed is lowered a step at a time until it is met.
    """
    scores = DevScores.of(analyses, examples, policy)
    draws = policy.costs.threshold_resamples
    if draws == 0 or not len(examples):
        return tune_once(scores, policy)
    rng = np.random.default_rng(0)
    n = len(examples)
    picked = [tune_once(scores.subset(rng.integers(0, n, n)), policy) for _ in range(draws)]
    t = Thresholds(
        {level: _on_grid(np.median([p.levels[level] for p in picked])) for level in ESCALATING},
        _on_grid(np.median([p.out_of_scope for p in picked])),
    )
    for level, floor in policy.costs.min_recall.items():
        while scores.recall(t, level) < floor and t.levels[level] > GRID[0]:
            t = _with(t, level, GRID[GRID.index(t.levels[level]) - 1])
    return t


def _on_grid(value: float) -> float:
    """The largest grid value not above `value` (a lower threshold escalates more)."""
    return max([g for g in GRID if g <= value + 1e-9] or [GRID[0]])


def _with(t: Thresholds, knob: TriageLevel | str, value: float) -> Thresholds:
    levels = dict(t.levels)
    if isinstance(knob, TriageLevel):
        levels[knob] = value
        return Thresholds(levels, t.out_of_scope)
    return Thresholds(levels, value)
