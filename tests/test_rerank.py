"""The reranker: which retrieved passage answers, fitted on dev; the first citation is that passage."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.rerank import RERANK_FEATURES, Reranker, fit_weights


def test_the_fit_learns_which_feature_marks_the_answering_passage() -> None:
    """Synthetic questions where only the last feature tells the answering candidate apart."""
    rng = np.random.default_rng(0)
    groups = []
    for _ in range(60):
        x = rng.normal(size=(6, len(RERANK_FEATURES)))
        y = np.zeros(6, dtype=bool)
        y[int(np.argmax(x[:, -1]))] = True
        groups.append((x, y))
    w, top1 = fit_weights(groups, l2=0.01)
    assert int(np.argmax(np.abs(w))) == len(RERANK_FEATURES) - 1 and w[-1] > 0
    assert top1 > 0.9


def test_questions_without_an_answering_candidate_cannot_be_fitted() -> None:
    with pytest.raises(ValueError):
        fit_weights([(np.zeros((3, len(RERANK_FEATURES))), np.zeros(3, dtype=bool))])


def test_the_model_file_says_how_and_why_it_was_fitted() -> None:
    model = Reranker.load()
    assert set(model.weights) == set(RERANK_FEATURES)
    assert model.info["how"].startswith("python -m assistant.coverage_tuning fit-rerank")
    assert model.info["why"] and model.info["dev_top1"] >= model.info["dev_top1_fusion_only"]


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("how far should I lean forward on a steep incline?", "10 degrees"),
        ("is it bad to grip the handrails?", "Holding onto the treadmill"),
        ("how many reps of the glute bridge?", "Repeat 10 times"),
        ("should I stay in bed when my back hurts?", "bed rest or inactivity is not recommended"),
    ],
)
def test_the_first_citation_holds_the_answer(bot, question, answer) -> None:
    got = bot.ask(question)
    assert got.covered and answer in got.citations[0].text, [c.section for c in got.citations]


def test_reranking_keeps_the_candidates_and_only_reorders_them(bot) -> None:
    read = bot.retriever.reader.read("why does my back hurt on the incline?")
    vec = bot.embedder.encode_one(read.text)
    pool = bot.retriever.search(read.search, query_vector=vec, top_k=bot.settings.rerank_pool)
    ranked = bot.reranker.rerank(read, pool, vec, bot.composer.sentence_similarity)
    assert sorted(h.chunk.id for h in ranked) == sorted(h.chunk.id for h in pool)
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)


def test_the_candidates_are_the_fused_pool_and_the_voted_passages_it_left_out(bot) -> None:
    """`Assistant.candidates`: fusion's pool first, as fused, then at most `voted_candidates`
    passages the labelled questions most like this one were answered by, never twice."""
    added_any = False
    for question in (
        "what should my eyes do on the belt?",
        "where do I look when I'm on the hamster wheel?",  # fusion leaves its passage out
        "why does my back hurt on the incline?",
    ):
        read = bot.retriever.reader.read(question)
        vec = bot.embedder.encode_one(read.text)
        pool = bot.retriever.search(read.search, query_vector=vec, top_k=bot.settings.rerank_pool)
        got = bot.candidates(read, vec, bot.settings.rerank_pool)
        ids = [h.chunk.id for h in got]
        assert ids[: len(pool)] == [h.chunk.id for h in pool] and len(set(ids)) == len(ids)
        added = ids[len(pool) :]
        assert len(added) <= bot.settings.voted_candidates
        voted = bot.examples.voted_chunks(bot.embedder, vec, bot.settings.voted_candidates)
        assert added == [c for c in voted if c not in ids[: len(pool)]]
        assert all(h.score == 0.0 and np.isfinite(h.similarity) for h in got[len(pool) :])
        added_any |= bool(added)
    assert added_any  # the mechanism is on: some question gained a candidate fusion missed
