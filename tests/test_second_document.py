"""A second document on another topic, dropped into the knowledge folder, is answered as well as the first.

Nothing in the code knows either article: the questions below are answered from the
rowing document (written for this test), with its sections cited and its expert named.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.compose import check_citations
from tests.conftest import FIXTURES, KNOWLEDGE

ROWING = "Rowing Machine Without the Sore Back: Form Fixes and Two Exercises"


@pytest.fixture(scope="module")
def two_docs_bot(tmp_path_factory: pytest.TempPathFactory, embedder):
    from assistant.assistant import Assistant
    from assistant.compose import Composer
    from assistant.config import Settings
    from assistant.index import Index
    from assistant.retrieval import HybridRetriever
    from assistant.triage import Triager

    root = tmp_path_factory.mktemp("two-docs")
    knowledge = root / "knowledge"
    shutil.copytree(KNOWLEDGE, knowledge)
    for doc in (FIXTURES / "second-document").iterdir():
        shutil.copy(doc, knowledge / doc.name)
    settings = Settings.load(knowledge_dir=knowledge, index_dir=root / "index", data_dir=root / "data")
    index = Index(settings)
    index.ensure(embedder)
    retriever = HybridRetriever.build(index.open(), embedder, settings, index.keywords())
    composer = Composer(embedder, max_words=settings.answer_max_words)
    bot = Assistant(settings, embedder, retriever, composer, Triager.from_settings(settings, embedder))
    bot.warm_up()
    return bot


def test_both_documents_are_indexed(two_docs_bot) -> None:
    assert {c.document for c in two_docs_bot.retriever.chunks} >= {ROWING}
    assert len({c.document for c in two_docs_bot.retriever.chunks}) == 2


@pytest.mark.parametrize(
    ("question", "section", "phrase"),
    [
        ("how do I do the dead bug exercise for my back?", "Dead Bug", "Repeat 8 times on each side."),
        ("hip hinge with a broomstick steps pls", "Hip Hinge With a Dowel", "Repeat 12 times."),
        (
            "why does my back hurt after rowing?",
            "Why Rowing Can Strain Your Back",
            "legs should start every stroke",
        ),
        ("what damper setting should a beginner rower use?", None, "between 3 and 5"),
    ],
)
def test_questions_on_the_second_document_are_answered_from_it(
    two_docs_bot, question, section, phrase
) -> None:
    answer = two_docs_bot.ask(question)
    assert answer.covered, answer.answer
    first = answer.citations[0]
    assert first.document == ROWING, first.section
    if section:
        assert first.section.endswith(section), first.section
    assert any(phrase in c.text for c in answer.citations)
    assert check_citations(answer.blocks, answer.citations, answer.answer) == []


def test_the_second_documents_expert_is_named_with_credentials(two_docs_bot) -> None:
    answer = two_docs_bot.ask("why does my back hurt after rowing?")
    assert "Maria Okafor, PT" in answer.citations[0].experts
    assert "Okafor" in answer.answer


def test_a_follow_up_stays_on_the_second_documents_exercise(two_docs_bot) -> None:
    question = "how do I do the dead bug exercise for my back?"
    first = two_docs_bot.ask(question)
    history = [{"role": "user", "content": question}, {"role": "assistant", "content": first.answer}]
    answer = two_docs_bot.ask("how many reps?", history)
    assert answer.citations[0].section.endswith("Dead Bug")
    assert "Repeat 8 times on each side." in answer.answer


def test_not_covered_reply_lists_what_both_documents_cover(two_docs_bot) -> None:
    # in scope (shoes for a sore back) but in neither document; "shoes for a marathon" alone
    # is off-topic, and triage answers that before coverage is asked
    answer = two_docs_bot.ask("which running shoes are best for my back?")
    assert not answer.covered
    assert (
        "Why Rowing Can Strain Your Back" in answer.answer
        and "When to See a Physical Therapist" in answer.answer
    )


def test_fixture_is_a_real_markdown_document() -> None:
    text = (Path(FIXTURES) / "second-document" / "rowing-machine-posture.md").read_text(encoding="utf-8")
    assert text.startswith("---") and "experts:" in text


def test_the_question_model_speaks_only_for_the_sources_its_examples_were_labelled_against(
    two_docs_bot,
) -> None:
    """Its examples were labelled against the treadmill article: a question answered from the
    rowing document is not judged by what it learned the old sources leave out."""
    import math

    def asked(question: str) -> float:
        return two_docs_bot.retrieve(
            question, two_docs_bot.embedder.encode_one(question)
        ).evidence.asked_covered

    assert math.isnan(asked("what damper setting should a beginner rower use?"))
    assert math.isfinite(asked("why does my back hurt on incline?"))
