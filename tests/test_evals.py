"""Tests of the eval suites: metric functions on hand-made inputs, the data files, the
report and compare tools, and the quick subset (retrieval + answers against the
committed baseline report), which fails when the assistant gets worse.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import assistant  # noqa: F401  (offline mode before any model library)
from evals import BASELINE_REPORT, DATA_DIR
from evals.baselines.naive_rag import ARTICLE, compose
from evals.compare import compare, regressions
from evals.feedback import add_feedback, to_case
from evals.metrics import (
    Statement,
    check_answer,
    confusion_matrix,
    contains,
    fact_recall,
    first_relevant_rank,
    hit_rate_at_k,
    mean_reciprocal_rank,
    normalize,
    per_class,
    recall_at_k,
    statements,
)
from evals.results import MetricResult, Report, SuiteResult, apply_thresholds
from evals.schema import (
    AnswerCase,
    ConversationCase,
    FeedbackRecord,
    RetrievalCase,
    SafetyCase,
    TriageCase,
    load_cases,
)

ROOT = Path(__file__).resolve().parent.parent
ARTICLE_MD = ROOT / "knowledge" / "treadmill-back-pain.md"


# -- metrics on tiny hand-made inputs -------------------------------------------
def test_normalize_ignores_markup_quotes_and_list_markers() -> None:
    assert normalize("- 3. **Repeat** 10 times.\n  it’s   fine") == "repeat 10 times. it's fine"
    assert contains("1. Get into tabletop position, with", "get into TABLETOP position")
    assert not contains("anything", "")


def test_hit_rate_mrr_and_recall_by_hand() -> None:
    retrieved = [["x", "has the answer", "y"], ["nothing"], ["answer A here", "answer B"]]
    refs = [["the answer"], ["missing"], ["answer A", "answer B"]]
    ranks = [first_relevant_rank(r, f) for r, f in zip(retrieved, refs, strict=True)]
    assert ranks == [2, None, 1]
    assert hit_rate_at_k(ranks, 1) == pytest.approx(1 / 3)
    assert hit_rate_at_k(ranks, 3) == pytest.approx(2 / 3)
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert recall_at_k(retrieved[2], refs[2], 1) == 0.5
    assert recall_at_k(retrieved[2], refs[2], 2) == 1.0
    assert recall_at_k([], ["a"], 5) == 0.0
    assert hit_rate_at_k([], 1) == 0.0 and mean_reciprocal_rank([]) == 0.0


def test_confusion_matrix_and_per_class() -> None:
    labels = ["self_care", "see_pt", "emergency"]
    expected = ["emergency", "emergency", "self_care", "see_pt", "self_care"]
    predicted = ["emergency", "see_pt", "self_care", "see_pt", "emergency"]
    m = confusion_matrix(expected, predicted, labels)
    assert m == [[1, 0, 1], [0, 1, 0], [0, 1, 1]]
    stats = per_class(m, labels)
    assert stats["emergency"]["recall"] == 0.5
    assert stats["emergency"]["precision"] == 0.5
    assert stats["see_pt"] == {"precision": 0.5, "recall": 1.0, "support": 1}


def test_citation_validity_and_faithfulness() -> None:
    chunks = ["Keep a neutral gaze ahead of you and a neutral spine. Repeat 10 times."]
    answer = (
        "From the sources:\n"
        "- Keep a neutral gaze ahead of you and a neutral spine. [1]\n"
        "- Ben Fung, DPT: Repeat 10 times. [1]\n"
        "- Lift weights daily. [1]\n"
        "- Something cited out of range. [2]\n"
        "An uncited claim.\n"
        "_A disclaimer in italics._"
    )
    assert [s.markers for s in statements(answer)] == [(1,), (1,), (1,), (2,), ()]
    check = check_answer(answer, chunks)
    assert (check.markers, check.valid, check.unresolved) == (4, 2, (2,))
    assert (check.statements, check.supported) == (5, 2)
    policy = check_answer("See a physio soon. Why: pain.\n- Repeat 10 times. [1]", chunks,
                          policy_text=["See a physio soon.", "pain"])
    assert (policy.statements, policy.supported) == (1, 1)


def test_citation_check_reads_structured_claims_without_parsing_text() -> None:
    chunks = ["Keep a neutral gaze ahead of you and a neutral spine. Repeat 10 times."]
    claims = [
        Statement("Keep a neutral gaze ahead of you and a neutral spine.", (1,)),
        Statement("Ben Fung, DPT: Repeat 10 times.", (1,)),
        Statement("Lift weights daily [3].", (1,)),  # a bracket inside a claim is text, not a marker
        Statement("Something cited out of range.", (2,)),
    ]
    check = check_answer(claims, chunks)
    assert (check.markers, check.valid, check.unresolved) == (4, 2, (2,))
    assert (check.statements, check.supported) == (4, 2)


def test_our_answers_report_their_claims_as_fields(bot) -> None:
    from evals.systems import Ours

    ans = Ours(bot).answer("how do I do a bird dog?")
    assert ans.claims and all(c.markers == (1,) for c in ans.claims)
    assert check_answer(ans.claims, ans.citations).supported == len(ans.claims)


def test_fact_recall() -> None:
    assert fact_recall("Repeat 5 times, then switch sides. [1]", ["repeat 5 times", "tabletop"]) == 0.5
    assert fact_recall("anything", []) is None


def test_baseline_composer_cites_each_chunk_once() -> None:
    text = compose("how many glute bridges", ["Glute bridge.\n3. Repeat 10 times.", "Bird dog basics here."])
    assert text.splitlines() == ["3. Repeat 10 times. [1]", "Bird dog basics here. [2]"]


# -- thresholds, reports, compare --------------------------------------------------
def _report(hit: float, chars: float, ms: float) -> Report:
    suite = SuiteResult(
        name="retrieval", systems=["ours", "baseline"], cases=3,
        metrics=[
            MetricResult(name="hit_rate@1", values={"ours": hit, "baseline": 0.5}),
            MetricResult(name="chars_per_question", kind="size", higher_is_better=False,
                         values={"ours": chars, "baseline": 3000.0}),
            MetricResult(name="latency_p50_ms", kind="latency", higher_is_better=False,
                         values={"ours": ms, "baseline": 10.0}),
        ],
    )
    return Report(suites={"retrieval": suite})


def test_thresholds_gate_and_baseline_rule() -> None:
    rules = {"hit_rate@1": {"min": 0.6, "gate": True, "vs_baseline": True},
             "chars_per_question": {"gate": True, "vs_baseline": True}}
    good = apply_thresholds(_report(0.7, 2000, 5).suites["retrieval"], rules)
    assert [m.passed for m in good.metrics] == [True, True, None]
    bad = apply_thresholds(_report(0.55, 3500, 5).suites["retrieval"], rules)
    assert [m.name for m in bad.gate_failures] == ["hit_rate@1", "chars_per_question"]


def test_compare_flags_regressions_and_only_warns_on_latency(tmp_path: Path) -> None:
    old, new = _report(0.80, 2000, 10), _report(0.70, 2500, 30)
    changes = {(c.metric, c.system): c.status for c in compare(old, new, tolerance=0.02)}
    assert changes[("hit_rate@1", "ours")] == "regression"
    assert changes[("chars_per_question", "ours")] == "regression"
    assert changes[("latency_p50_ms", "ours")] == "slower"
    assert changes[("hit_rate@1", "baseline")] == "same"
    assert not regressions(compare(old, _report(0.79, 2000, 10), tolerance=0.02))
    old.save(tmp_path / "a.json")
    assert Report.load(tmp_path / "a.json").suites["retrieval"].metric("hit_rate@1").ours == 0.8


def test_html_report_escapes_payloads(tmp_path: Path) -> None:
    from evals.render import write_html

    report = _report(0.8, 2000, 10)
    report.suites["retrieval"].failures.append({"user_input": "<script>alert(1)</script>"})
    report.suites["triage"] = SuiteResult(
        name="triage", systems=["ours"], cases=1, metrics=[],
        plots={"confusion": {"labels": ["a", "b"], "matrix": [[1, 0], [2, 3]]}},
    )
    report.suites["retrieval"].plots["recall_curve"] = {"ours": [0.5, 0.9], "baseline": [0.4, 0.8]}
    write_html(report, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "<script>alert" not in html and "<svg" in html


def test_terminal_table_shows_bracketed_metric_names() -> None:
    """Per-style metrics are named "cited_hit[plain]": Rich must print the brackets, not read them as markup."""
    from rich.console import Console

    from evals.render import print_report

    report = _report(0.8, 2000, 10)
    report.suites["retrieval"].metrics.append(
        MetricResult(name="cited_hit[plain]", values={"ours": 0.9, "baseline": 0.8})
    )
    console = Console(record=True, width=200)
    print_report(report, console)
    assert "cited_hit[plain]" in console.export_text()


def test_feedback_becomes_cases(tmp_path: Path) -> None:
    chunk = "3. Repeat 10 times.\nHold for a few seconds, engaging your glutes."
    up = FeedbackRecord(user_input="glute bridge reps?", response="- Repeat 10 times. [1]",
                        citations=[{"n": 1, "text": chunk}], rating="up")
    case = to_case(up)
    assert case.key_facts == ["Repeat 10 times."] and case.covered and not case.review
    src = tmp_path / "fb.jsonl"
    src.write_text(
        json.dumps(up.model_dump()) + "\n"
        + json.dumps({"user_input": "knee brace?", "response": "no idea", "citations": [],
                      "rating": -1, "comment": "should say not covered"}) + "\n"
    )
    target = tmp_path / "answers.jsonl"
    assert len(add_feedback(src, target)) == 2
    assert add_feedback(src, target) == []  # idempotent
    drafts = [c for c in load_cases(target, AnswerCase) if c.review]
    assert len(drafts) == 1 and "not covered" in drafts[0].notes


# -- the data files ----------------------------------------------------------------
def test_data_files_validate_and_are_big_enough() -> None:
    assert len(load_cases(DATA_DIR / "retrieval.jsonl", RetrievalCase)) >= 60
    answers = load_cases(DATA_DIR / "answers.jsonl", AnswerCase)
    assert sum(not c.covered for c in answers) >= 10
    assert load_cases(DATA_DIR / "triage.jsonl", TriageCase)
    assert load_cases(DATA_DIR / "safety.jsonl", SafetyCase)
    assert load_cases(DATA_DIR / "conversation.yaml", ConversationCase)


def test_reference_passages_and_key_facts_are_article_text() -> None:
    """The checkable promise: every passage and key fact is in both copies of the article."""
    md, raw = ARTICLE_MD.read_text(), ARTICLE.read_text()
    for case in load_cases(DATA_DIR / "retrieval.jsonl", RetrievalCase):
        for ref in case.reference_contexts:
            assert contains(md, ref) and contains(raw, ref), (case.id, ref)
    for a in load_cases(DATA_DIR / "answers.jsonl", AnswerCase):
        for fact in a.key_facts:
            assert contains(md, fact) and contains(raw, fact), (a.id, fact)


@pytest.mark.parametrize(("folder", "at_least"), [("new_writers", 1000), ("denials", 150)])
def test_new_writers_questions_are_never_fitted_on(folder: str, at_least: int) -> None:
    """The `new_writers` and `denials` suites measure words no model has seen: their questions
    are neither in the questions the coverage model, reranker and triage corpus are fitted on
    (the question corpus included),
    nor among the coverage model's labelled examples; and every expected phrase is article text."""
    import yaml

    from assistant.coverage import EXAMPLES_FILE

    def rows(folder: str) -> list[dict]:
        return [
            json.loads(line)
            for name in ("covered", "uncovered")
            for line in (DATA_DIR / folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]

    from assistant.coverage_tuning import CORPUS_DIR

    new, fitted = rows(folder), rows("questions")
    fitted += [json.loads(line) for p in CORPUS_DIR.glob("*.jsonl") for line in p.read_text().splitlines() if line]
    assert len(new) >= at_least
    examples = yaml.safe_load(EXAMPLES_FILE.read_text(encoding="utf-8"))
    seen = {r["question"].casefold() for r in fitted} | {q.casefold() for q in examples["uncovered"]}
    seen |= {c["question"].casefold() for c in examples["covered"]}
    assert not {r["question"].casefold() for r in new} & seen
    assert not {r["id"] for r in new} & {r["id"] for r in fitted}
    md = ARTICLE_MD.read_text()
    assert all(contains(md, p) for r in new for p in r.get("expect_any", ())), (
        "an expected phrase is not article text"
    )


# -- the quick subset ----------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_systems(tmp_path_factory: pytest.TempPathFactory) -> list:
    from evals.runner import build_systems

    return build_systems(baseline=True, index_dir=tmp_path_factory.mktemp("eval-index"))


@pytest.fixture(scope="module")
def quick_report(quick_systems: list) -> Report:
    from evals.runner import run
    from evals.suites import QUICK

    return run(QUICK, systems=quick_systems)


@pytest.mark.slow
def test_quick_suites_pass_their_gates(quick_report: Report) -> None:
    from evals.render import fmt, rule

    failed = [
        f"{s.name}.{m.name}: "
        + ", ".join(f"{k}={fmt(v, m.unit)}" for k, v in m.values.items())
        + f" (rule {rule(m)})"
        for s in quick_report.suites.values()
        for m in s.gate_failures
    ]
    assert not failed, "gated metrics miss their rule:\n" + "\n".join(failed)


@pytest.mark.slow
def test_quick_suites_do_not_regress_from_committed_report(quick_report: Report) -> None:
    committed = Report.load(BASELINE_REPORT)
    committed.suites = {k: v for k, v in committed.suites.items() if k in quick_report.suites}
    bad = regressions(compare(committed, quick_report, tolerance=0.02))
    assert not bad, "regressions against evals/baseline-report.json: " + ", ".join(
        f"{c.suite}.{c.metric} {c.old:.3f} -> {c.new:.3f}" for c in bad
    )


@pytest.mark.slow
def test_quick_run_is_deterministic(quick_systems: list, quick_report: Report) -> None:
    """Same code and data give the same numbers (latency aside)."""
    from evals.runner import run

    again = run(("retrieval",), systems=quick_systems)
    first, second = quick_report.suites["retrieval"], again.suites["retrieval"]
    for m in first.metrics:
        if m.kind != "latency":
            assert second.metric(m.name).values == m.values, m.name


def test_blind_suite_is_skipped_with_a_message_when_its_folder_is_absent(tmp_path) -> None:
    from evals.suites import blind

    result = blind.run([], data=tmp_path / "nowhere")
    assert result.metrics == [] and result.description.startswith("skipped:")
    assert "absent" in result.description


def test_own_questions_split_dev_test_by_a_stable_hash() -> None:
    from assistant.coverage_tuning import labelled_questions, split_of

    everything = labelled_questions()
    assert all(c.split == "dev" for c in everything if c.source == "corpus")  # fitted on, never scored
    cases = [c for c in everything if c.source != "corpus"]
    assert split_of("qc-001") == split_of("qc-001")
    dev = [c for c in cases if c.split == "dev"]
    assert 0.35 < len(dev) / len(cases) < 0.65
    assert sum(not c.covered for c in dev) >= 30  # in-domain uncovered questions to fit on
    styles = {c.style for c in cases if c.source == "covered"}
    assert len(styles) >= 6


def test_questions_suite_counts_urgent_and_emergency_replies_to_covered_questions_as_false_alarms() -> None:
    """A see-a-PT referral can be right for a covered question ("worse the next day, do I need a
    PT?"); urgent or emergency care never is, and a system without triage is not judged."""
    from evals.suites.questions import score_questions
    from evals.systems import SystemAnswer

    class Scripted:
        name = "ours"

        def __init__(self, levels: dict[str, str | None]) -> None:
            self.levels = levels

        def answer(self, message: str, history=()) -> SystemAnswer:
            return SystemAnswer(response="", citations=[], level=self.levels[message])

    covered = [{"id": f"c{i}", "question": q, "expect_any": ["x"]} for i, q in enumerate("abcd")]
    levels = {"a": "self_care", "b": "see_pt", "c": "urgent", "d": "emergency"}
    result = score_questions([Scripted(levels)], covered, [], [], name="q", description="")
    values = {m.name: m.values["ours"] for m in result.metrics}
    assert values["covered_escalated"] == 0.5
    untriaged = score_questions([Scripted(dict.fromkeys(levels))], covered, [], [], name="q", description="")
    assert {m.name: m.values["ours"] for m in untriaged.metrics}["covered_escalated"] is None


def test_look_alikes_metrics_agree_with_their_records(quick_systems: list, tmp_path) -> None:
    """The triage suites' rates are read back from the per-case records, so a miscounted rate
    (a see-a-PT verdict counted as sent to care, a positive counted as a false alarm) fails.
    Three real look-alike cases through the real assistant; whatever levels it gives."""
    from evals.schema import SEVERITY
    from evals.suites import look_alikes

    rows = [json.loads(line) for line in look_alikes.DATA.read_text(encoding="utf-8").splitlines()]
    picked = [r for r in rows if r["expected_level"] == "self_care"][:2]
    picked += [r for r in rows if r["expected_level"] == "emergency"][:1]
    data = tmp_path / "few.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in picked), encoding="utf-8")
    result = look_alikes.run(quick_systems, data=data)
    records = result.records["ours"]
    negatives = [r for r in records if SEVERITY[r["expected_level"]] == 0]
    assert result.name == "look_alikes" and len(records) == 3
    sent = sum(SEVERITY[r["level"]] >= SEVERITY["urgent"] for r in negatives) / len(negatives)
    alarms = sum(SEVERITY[r["level"]] > 0 for r in negatives) / len(negatives)
    assert result.metric("sent_to_care_rate").values["ours"] == pytest.approx(sent)
    assert result.metric("false_alarm_rate").values["ours"] == pytest.approx(alarms)
    by_kind = result.plots["false_alarms_by_kind"]
    assert set(by_kind) == {r["kind"] for r in negatives}
    assert set(result.plots["recall_by_kind"]) == {r["kind"] for r in records if r not in negatives}
