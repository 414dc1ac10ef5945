"""Retrieval: does the passage that answers the question come back, and how high?

Each case names its answer passages by text (`reference_contexts`); a retrieved
chunk is relevant when it contains one of them. Every system returns a deep
ranking (K_MAX) for the rank metrics and the recall@k curve; the amount of text
and the context recall are measured at each system's operating point (its top_k).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evals import DATA_DIR
from evals.metrics import (
    first_relevant_rank,
    hit_rate_at_k,
    mean,
    mean_reciprocal_rank,
    percentile,
    recall_at_k,
)
from evals.results import MetricResult, SuiteResult
from evals.schema import RetrievalCase, load_cases
from evals.systems import Retriever, timed

DATA = DATA_DIR / "retrieval.jsonl"
K_MAX = 10
WARM_UP = ("warm up", "treadmill back pain", "bird dog")


def run(systems: Sequence[Retriever], data: Path = DATA) -> SuiteResult:
    cases = load_cases(data, RetrievalCase)
    per: dict[str, dict[str, object]] = {}
    records: dict[str, list[dict]] = {}
    failures: list[dict] = []
    for system in systems:
        for q in WARM_UP:  # first queries pay for lazy loading and thread pools
            system.retrieve(q, K_MAX)
    # Systems take turns on each question, so a busy machine slows them alike.
    runs: dict[str, list[tuple[RetrievalCase, list[str], float]]] = {s.name: [] for s in systems}
    for case in cases:
        for system in systems:
            retrieved, ms = timed(system.retrieve, case.user_input, K_MAX)
            runs[system.name].append((case, retrieved, ms))
    for system in systems:
        ranks, chars, latency, rows, context = [], [], [], [], []
        curve: list[list[float]] = [[] for _ in range(K_MAX)]
        for case, retrieved, ms in runs[system.name]:
            rank = first_relevant_rank(retrieved, case.reference_contexts)
            ranks.append(rank)
            at_op = retrieved[: system.top_k]
            chars.append(sum(len(t) for t in at_op))
            context.append(recall_at_k(at_op, case.reference_contexts, system.top_k))
            latency.append(ms)
            for k in range(1, K_MAX + 1):
                curve[k - 1].append(recall_at_k(retrieved, case.reference_contexts, k))
            rows.append(
                {
                    "id": case.id,
                    "user_input": case.user_input,
                    "reference_contexts": case.reference_contexts,
                    "retrieved_contexts": at_op,
                    "rank": rank,
                    "latency_ms": round(ms, 2),
                }
            )
            if system.name == "ours" and (rank is None or rank > 3):
                failures.append(
                    {
                        "id": case.id,
                        "user_input": case.user_input,
                        "rank": rank,
                        "expected": case.reference_contexts,
                        "top": [t[:90] for t in retrieved[:3]],
                    }
                )
        recall_curve = [mean(c) for c in curve]
        per[system.name] = {
            "hit_rate@1": hit_rate_at_k(ranks, 1),
            "hit_rate@3": hit_rate_at_k(ranks, 3),
            "hit_rate@5": hit_rate_at_k(ranks, 5),
            "mrr": mean_reciprocal_rank(ranks),
            "recall@1": recall_curve[0],
            "recall@3": recall_curve[2],
            "recall@5": recall_curve[4],
            "context_recall": mean(context),
            "chars_per_question": mean(chars),
            "latency_p50_ms": percentile(latency, 50),
            "latency_p95_ms": percentile(latency, 95),
            "_curve": recall_curve,
            "_latency": latency,
        }
        records[system.name] = rows

    def metric(name: str, description: str, **kw: object) -> MetricResult:
        return MetricResult(
            name=name,
            description=description,
            values={s: float(v[name]) for s, v in per.items()},  # type: ignore[arg-type]
            **kw,  # type: ignore[arg-type]
        )

    metrics = [
        metric("hit_rate@1", "share of questions whose best chunk holds an answer passage"),
        metric("hit_rate@3", "share with an answer passage in the top 3"),
        metric("hit_rate@5", "share with an answer passage in the top 5"),
        metric("mrr", "mean reciprocal rank of the first chunk holding an answer passage"),
        metric("recall@1", "share of a question's answer passages in the top 1 (mean)"),
        metric("recall@3", "share of a question's answer passages in the top 3 (mean)"),
        metric("recall@5", "share of a question's answer passages in the top 5 (mean)"),
        metric(
            "context_recall",
            "share of answer passages in what the system actually retrieves (its top_k)",
        ),
        metric(
            "chars_per_question",
            "characters retrieved per question at the operating point (top_k)",
            unit="chars",
            kind="size",
            higher_is_better=False,
        ),
        metric(
            "latency_p50_ms",
            "median wall time of one retrieval (query embedding + search)",
            unit="ms",
            kind="latency",
            higher_is_better=False,
        ),
        metric(
            "latency_p95_ms",
            "95th percentile wall time of one retrieval",
            unit="ms",
            kind="latency",
            higher_is_better=False,
        ),
    ]
    return SuiteResult(
        name="retrieval",
        description="Does the passage that answers the question come back, and how high?",
        systems=[s.name for s in systems],
        cases=len(cases),
        metrics=metrics,
        plots={
            "recall_curve": {s: v["_curve"] for s, v in per.items()},
            "latency_ms": {s: v["_latency"] for s, v in per.items()},
            "top_k": {s.name: s.top_k for s in systems},
        },
        records=records,
        failures=failures,
    )
