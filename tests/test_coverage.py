"""The "not covered" signal: questions about things the knowledge base never mentions."""

from __future__ import annotations

import pytest

from assistant.coverage import TermCoverage, _edits_le

NOT_COVERED = [
    "should I wear a knee brace on the treadmill?",
    "what mattress is best for back pain?",
    "does yoga help with sciatica?",
    "is a foam roller good for my lower back?",
    "how much water should I drink during a treadmill workout?",
    "write a python function that sorts a list",
]
COVERED_SHORT = ["what is tech neck", "whats 12 3 30", "what is the posterior chain?", "how many rows per side"]
COVERED_VARIANTS = [
    "glute brige reps?",  # typo
    "how do i do a bird dgo excercise",  # transposition and typo
    "scapula pushup reps",  # prefix and keyword
    "is it ok to hold onto the handrails?",  # curated keyword
]


@pytest.fixture(scope="module")
def coverage(bot) -> TermCoverage:
    assert bot.retriever._coverage is not None
    return bot.retriever._coverage


@pytest.mark.parametrize("question", NOT_COVERED)
def test_questions_about_unknown_things_are_not_covered(bot, coverage, question) -> None:
    assert coverage.unknown_terms(question)
    assert bot.retriever.search(question) == []
    answer = bot.ask(question)
    assert not answer.covered
    if answer.triage.level == "self_care":
        assert "doesn't cover" in answer.answer and answer.citations == []
        assert all(f"“{t}”" in answer.answer for t in coverage.unknown_terms(question)[:3])


@pytest.mark.parametrize("question", COVERED_SHORT + COVERED_VARIANTS)
def test_known_words_in_other_forms_are_covered(bot, coverage, question) -> None:
    assert coverage.unknown_terms(question) == []
    assert bot.retriever.search(question)


def test_generic_words_never_count() -> None:
    from assistant.coverage import GENERIC

    assert {"ok", "best", "should", "does"} <= GENERIC


@pytest.mark.parametrize(
    ("a", "b", "limit", "expected"),
    [("dgo", "dog", 1, True), ("brige", "bridge", 1, True), ("treadmil", "treadmill", 2, True),
     ("brace", "bridge", 2, False), ("yoga", "you", 1, False)],
)
def test_edit_distance(a, b, limit, expected) -> None:
    assert _edits_le(a, b, limit) is expected
