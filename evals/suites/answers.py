"""Answers: the facts a good answer states, whether its citations hold, and honesty.

Covered questions list `key_facts` (phrases from the article) the answer should
state and `forbidden_facts` it must not; questions the knowledge base cannot
answer (`covered: false`) must get a "not covered" reply, not the least bad
passage. Citation validity and faithfulness check every `[n]` against the text
of the chunk it points at (see `evals.metrics.check_answer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evals import DATA_DIR
from evals.metrics import check_answer, contains, fact_recall, mean, percentile, stated, words
from evals.results import MetricResult, SuiteResult
from evals.schema import AnswerCase, load_cases
from evals.systems import Answerer, SystemAnswer, timed

DATA = DATA_DIR / "answers.jsonl"
# Levels whose reply is a referral with no knowledge-base content: nothing to cite.
REFERRAL_LEVELS = {"emergency", "urgent", "out_of_scope"}


def run(systems: Sequence[Answerer], data: Path = DATA) -> SuiteResult:
    cases = [c for c in load_cases(data, AnswerCase) if not c.review]
    values: dict[str, dict[str, float]] = {}
    records: dict[str, list[dict]] = {}
    latency: dict[str, list[float]] = {}
    failures: list[dict] = []
    for system in systems:
        system.answer("warm up: how do I do a bird dog")
    # Systems take turns on each question, so a busy machine slows them alike.
    runs: dict[str, list[tuple[SystemAnswer, float]]] = {s.name: [] for s in systems}
    for case in cases:
        for system in systems:
            runs[system.name].append(timed(system.answer, case.user_input))
    for system in systems:
        recalls, forbidden_ok, honest, answered, lengths, times = [], [], [], [], [], []
        markers = valid = claims = supported = 0
        rows = []
        for case, (ans, ms) in zip(cases, runs[system.name], strict=True):
            times.append(ms)
            lengths.append(words(ans.response))
            bad = stated(ans.response, case.forbidden_facts)
            forbidden_ok.append(not bad)
            recall = fact_recall(ans.response, case.key_facts) if case.covered else None
            check = None
            # Declining: "not covered", or the out-of-scope referral; either way nothing is made up.
            declined = not ans.covered or ans.level == "out_of_scope"
            if case.covered:
                answered.append(not declined)
                if recall is not None:
                    recalls.append(recall)
            else:
                honest.append(declined)
            if ans.covered and ans.level not in REFERRAL_LEVELS:
                said = ans.claims if ans.claims is not None else ans.response
                check = check_answer(said, ans.citations, policy_text=ans.policy_text)
                markers += check.markers
                valid += check.valid
                claims += check.statements
                supported += check.supported
            rows.append(
                {
                    "id": case.id,
                    "user_input": case.user_input,
                    "response": ans.response,
                    "retrieved_contexts": ans.citations,
                    "reference": case.reference,
                    "covered": not declined,
                    "expected_covered": case.covered,
                    "level": ans.level,
                    "key_fact_recall": recall,
                    "missing_facts": [f for f in case.key_facts if not contains(ans.response, f)],
                    "forbidden_stated": bad,
                    "unsupported": list(check.failures) if check else [],
                    "latency_ms": round(ms, 2),
                }
            )
        values[system.name] = {
            "key_fact_recall": mean(recalls),
            "forbidden_absent": mean([float(x) for x in forbidden_ok]),
            "citation_validity": valid / markers if markers else 0.0,
            "faithfulness": supported / claims if claims else 0.0,
            "not_covered_honesty": mean([float(x) for x in honest]),
            "answered_rate": mean([float(x) for x in answered]),
            "words_mean": mean(lengths),
            "words_p95": percentile(lengths, 95),
            "latency_p50_ms": percentile(times, 50),
            "latency_p95_ms": percentile(times, 95),
        }
        records[system.name] = rows
        latency[system.name] = times
        if system.name == "ours":
            keys = ("id", "user_input", "level", "covered", "expected_covered", "missing_facts",
                    "forbidden_stated", "unsupported")
            failures = [
                {k: r[k] for k in keys}
                for r in rows
                if r["missing_facts"] or r["forbidden_stated"] or r["unsupported"]
                or r["covered"] != r["expected_covered"]
            ]

    def metric(name: str, description: str, **kw: object) -> MetricResult:
        return MetricResult(
            name=name,
            description=description,
            values={s: v[name] for s, v in values.items()},
            **kw,  # type: ignore[arg-type]
        )

    lower = {"higher_is_better": False}
    metrics = [
        metric("key_fact_recall", "share of a covered question's key facts the answer states (mean)"),
        metric("forbidden_absent", "share of answers stating none of the case's forbidden facts"),
        metric("citation_validity", "share of [n] markers that resolve and whose chunk contains the sentence"),
        metric("faithfulness", "share of answer statements supported by a chunk they cite"),
        metric(
            "not_covered_honesty",
            "share of unanswerable questions declined ('not covered' or out of scope)",
        ),
        metric("answered_rate", "share of answerable questions answered, not declined"),
        metric("words_mean", "mean answer length in words", unit="words", kind="size", **lower),
        metric("words_p95", "95th percentile answer length", unit="words", kind="size", **lower),
        metric("latency_p50_ms", "median wall time of one answer", unit="ms", kind="latency", **lower),
        metric("latency_p95_ms", "95th percentile wall time of one answer", unit="ms", kind="latency", **lower),
    ]
    return SuiteResult(
        name="answers",
        description="Key facts stated, citations that hold, honest 'not covered' replies.",
        systems=[s.name for s in systems],
        cases=len(cases),
        metrics=metrics,
        plots={"latency_ms": latency},
        records=records,
        failures=failures,
    )
