"""Own questions: the project's covered, uncovered and follow-up questions, scored on the TEST split.

The data (`evals/data/questions/*.jsonl`, written for this project in seven styles:
plain, typos, slang/SMS, very short, long-winded, non-native English, unfamiliar words)
is split dev/test by a SHA-256 hash of each id (`assistant.coverage_tuning.split_of`); the
coverage model is fitted on dev only, so this suite reports test. A covered question is a
hit when a cited passage holds one of its `expect_any` phrases (verbatim, normalised),
as the blind scorer counts it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals import DATA_DIR
from evals.metrics import contains, mean
from evals.results import MetricResult, SuiteResult
from evals.systems import Answerer, SystemAnswer

DATA = DATA_DIR / "questions"


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cited_hit(ans: SystemAnswer, phrases: Sequence[str], first_only: bool = False) -> bool:
    texts = ans.citations[:1] if first_only else ans.citations
    return any(contains(t, p) for t in texts for p in phrases)


def refused(ans: SystemAnswer) -> bool:
    """Answered "not covered" although the question is covered (a triage referral is not a refusal)."""
    return not ans.covered and (ans.level or "self_care") == "self_care"


ALARM_LEVELS = ("urgent", "emergency")


def escalated(ans: SystemAnswer) -> bool:
    """A covered question (no sign in it) sent to urgent or emergency care: a false alarm.

    See-a-PT is left out: "my back is worse the next day, do I need a PT?" is a covered
    question that carries that sign, and the article itself says so."""
    return (ans.level or "self_care") in ALARM_LEVELS


def score_questions(
    systems: Sequence[Answerer],
    covered: Sequence[dict[str, Any]],
    uncovered: Sequence[dict[str, Any]],
    followups: Sequence[dict[str, Any]],
    *,
    name: str,
    description: str,
) -> SuiteResult:
    """The metrics shared by the own-data and the blind suites."""
    values: dict[str, dict[str, float | None]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    failures: list[dict[str, Any]] = []
    styles = sorted({str(c.get("style") or "plain") for c in covered})
    for system in systems:
        rows = []
        hits, firsts, refusals, declined, follow, alarms = [], [], [], [], [], []
        hedged_covered, hedged_uncovered = [], []  # of the answered ones
        by_style: dict[str, list[float]] = {s: [] for s in styles}
        for case in covered:
            ans = system.answer(case["question"])
            hit, first = cited_hit(ans, case["expect_any"]), cited_hit(ans, case["expect_any"], True)
            hits.append(float(hit))
            firsts.append(float(first))
            refusals.append(float(refused(ans)))
            if ans.level is not None:  # systems without triage have no level to judge
                alarms.append(float(escalated(ans)))
            if ans.covered:
                hedged_covered.append(float(ans.hedged))
            by_style[str(case.get("style") or "plain")].append(float(hit))
            rows.append(
                {
                    "id": case["id"],
                    "user_input": case["question"],
                    "response": ans.response,
                    "hit": hit,
                    "first": first,
                    "covered": ans.covered,
                }
            )
        for case in uncovered:
            ans = system.answer(case["question"])
            ok = not ans.covered and (ans.level or "self_care") in ("self_care", "see_pt", "out_of_scope")
            declined.append(float(ok))
            if ans.covered:
                hedged_uncovered.append(float(ans.hedged))
            rows.append(
                {"id": case["id"], "user_input": case["question"], "response": ans.response, "declined": ok}
            )
        for case in followups:
            if not case.get("expect_any"):
                continue
            ans = system.answer(case["message"], case.get("history") or [])
            ok = cited_hit(ans, case["expect_any"])
            follow.append(float(ok))
            rows.append(
                {
                    "id": case["id"],
                    "user_input": case["message"],
                    "response": ans.response,
                    "follow_up_hit": ok,
                }
            )
        values[system.name] = {
            "cited_hit": mean(hits) if hits else None,
            "first_citation_hit": mean(firsts) if firsts else None,
            "covered_refused": float(sum(refusals)) if covered else None,
            "uncovered_declined": mean(declined) if declined else None,
            "covered_escalated": mean(alarms) if alarms else None,
            "follow_up_hit": mean(follow) if follow else None,
            "covered_hedged": mean(hedged_covered) if hedged_covered else None,
            "uncovered_hedged": mean(hedged_uncovered) if hedged_uncovered else None,
            **{f"cited_hit[{s}]": (mean(v) if v else None) for s, v in by_style.items()},
        }
        records[system.name] = rows
        if system.name == "ours":
            failures = [
                {k: v for k, v in r.items() if k != "response"}
                for r in rows
                if r.get("hit") is False or r.get("declined") is False or r.get("follow_up_hit") is False
            ]

    def metric(key: str, description: str, **kw: Any) -> MetricResult:
        return MetricResult(
            name=key, description=description, values={s: v.get(key) for s, v in values.items()}, **kw
        )

    metrics = [
        metric("cited_hit", "share of covered questions where a cited passage holds an expected phrase"),
        metric(
            "first_citation_hit", "share of covered questions whose FIRST citation holds an expected phrase"
        ),
        metric(
            "covered_refused",
            "covered questions answered 'not covered' (count)",
            unit="questions",
            higher_is_better=False,
        ),
        metric("uncovered_declined", "share of in-domain uncovered questions answered 'not covered'"),
        metric(
            "covered_escalated",
            "share of covered questions sent to urgent or emergency care (false alarms)",
            higher_is_better=False,
        ),
        metric("follow_up_hit", "share of follow-ups whose citations hold the passage they refer to"),
        metric(
            "covered_hedged",
            "of the covered questions answered, the share whose answer says the sources may not answer "
            "exactly this",
            higher_is_better=False,
        ),
        metric(
            "uncovered_hedged",
            "of the in-domain uncovered questions answered anyway, the share whose answer says so",
        ),
        *[metric(f"cited_hit[{s}]", f"cited_hit on the '{s}' questions") for s in styles],
    ]
    return SuiteResult(
        name=name,
        description=description,
        systems=[s.name for s in systems],
        cases=len(covered) + len(uncovered) + len(followups),
        metrics=metrics,
        records=records,
        failures=failures,
    )


def test_split(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    from assistant.coverage_tuning import split_of

    return [r for r in rows if split_of(str(r["id"])) == "test"]


def run(systems: Sequence[Answerer], data: Path = DATA) -> SuiteResult:
    return score_questions(
        systems,
        test_split(_rows(data / "covered.jsonl")),
        test_split(_rows(data / "uncovered.jsonl")),
        test_split(_rows(data / "followups.jsonl")),
        name="questions",
        description="Own questions (test split: the coverage model is fitted on dev), by writing style.",
    )


def score_all(systems: Sequence[Answerer], data: Path, *, name: str, description: str) -> SuiteResult:
    """Every covered and uncovered question of a folder no model is fitted on (no dev half, no
    follow-ups): the `new_writers` and `denials` suites."""
    return score_questions(
        systems,
        _rows(data / "covered.jsonl"),
        _rows(data / "uncovered.jsonl"),
        [],
        name=name,
        description=description,
    )
