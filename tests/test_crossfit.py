"""Cross-fitted thresholds: chosen on scores of styles the model was not trained on, stored with
a digest of what they depend on, and applied only where they escalate more (`crossfit.py`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.embeddings import Embedder
from assistant.errors import ConfigError
from assistant.triage import ESCALATING, TriagePolicy, crossfit, train
from assistant.triage.corpus import load_corpus
from assistant.triage.model import Thresholds
from assistant.triage.tuning import GRID


@pytest.fixture(scope="module")
def policy() -> TriagePolicy:
    return TriagePolicy.load(Settings.load().triage_rules)


def test_the_stored_thresholds_were_chosen_for_this_corpus_and_policy(policy: TriagePolicy) -> None:
    settings = Settings.load()
    stored = crossfit.load(settings.triage_crossfit)
    assert stored is not None, f"{settings.triage_crossfit} is missing"
    key, thresholds = stored
    assert key == crossfit.digest(settings.triage_corpus, policy), (
        "The corpus or the policy changed since the cross-fitted thresholds were chosen: run "
        "`python -m assistant.triage.train crossfit` (about ten minutes) and commit the file."
    )
    assert all(thresholds.levels[level] in GRID for level in ESCALATING)


def test_every_corpus_style_is_in_one_group(policy: TriagePolicy) -> None:
    corpus = load_corpus(Settings.load().triage_corpus, [s.id for s in policy.signs])
    crossfit.check_groups(corpus)
    stray = [replace(corpus[0], style="brand_new_style")]
    with pytest.raises(ConfigError, match="brand_new_style"):
        crossfit.check_groups(corpus + stray)


def test_lowest_escalates_whenever_either_would_and_keeps_scope_from_dev() -> None:
    dev = Thresholds(dict(zip(ESCALATING, (0.2, 0.35, 0.375), strict=True)), 0.825)
    out = Thresholds(dict(zip(ESCALATING, (0.225, 0.275, 0.3), strict=True)), 0.95)
    got = crossfit.lowest(dev, out)
    assert [got.levels[level] for level in ESCALATING] == [0.2, 0.275, 0.3]
    assert got.out_of_scope == 0.825


def test_the_served_model_uses_the_lower_thresholds(embedder: Embedder, policy: TriagePolicy) -> None:
    settings = Settings.load()
    dev = train._cached_model(settings, policy, embedder).thresholds
    stored = crossfit.load(settings.triage_crossfit)
    assert stored is not None
    served = train.ensure_model(settings, policy, embedder).thresholds
    for level in ESCALATING:
        assert served.levels[level] == min(dev.levels[level], stored[1].levels[level])
    assert served.out_of_scope == dev.out_of_scope


def test_without_a_stored_file_the_dev_thresholds_serve(
    tmp_path: Path, embedder: Embedder, policy: TriagePolicy
) -> None:
    settings = Settings.load(triage_crossfit=tmp_path / "none.yaml")
    assert train.ensure_model(settings, policy, embedder).thresholds == train._cached_model(
        settings, policy, embedder
    ).thresholds


@pytest.mark.slow
def test_crossfit_scores_each_group_with_a_model_that_never_saw_it(
    tmp_path: Path, embedder: Embedder, policy: TriagePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = load_corpus(Settings.load().triage_corpus, [s.id for s in policy.signs])[::20]  # quick
    policy = policy.model_copy(update={"costs": policy.costs.model_copy(update={"threshold_resamples": 5})})
    seen: list[set[str]] = []
    real_fit = train.fit_model

    def spy(examples, policy, embedder, params=None, train_filter=None):  # the real fit, recorded
        seen.append({e.style for e in examples if e.split == "train" and train_filter(e)})
        return real_fit(examples, policy, embedder, params, train_filter)

    monkeypatch.setattr(train, "fit_model", spy)
    thresholds, figures = crossfit.crossfit(corpus, policy, train.MemoEmbedder(embedder))
    assert len(seen) == len(crossfit.STYLE_GROUPS)
    for group, styles in zip(crossfit.STYLE_GROUPS, seen, strict=True):
        assert not styles & set(group)
        held = sum(e.style in group and e.split != "test" for e in corpus)
        nested = figures["nested"]["by_group"]["+".join(group)]
        assert nested["dev_tuned"]["n"] == nested["lower_of_both"]["n"] == held
        for key, value in nested["dev_tuned"].items():  # lower thresholds only ever escalate more
            if key != "n" and value is not None:
                assert nested["lower_of_both"][key] >= value
    path = tmp_path / "crossfit.yaml"
    crossfit.save(path, "k", thresholds, figures)
    assert crossfit.load(path) == ("k", thresholds)


def test_the_digest_sees_what_decides_a_level_not_the_wording(policy: TriagePolicy) -> None:
    corpus = Settings.load().triage_corpus
    key = crossfit.digest(corpus, policy)
    first = policy.signs[0]
    reworded = first.model_copy(update={"referral": "Please call someone.", "name": "renamed sign"})
    assert crossfit.digest(corpus, policy.model_copy(update={"signs": [reworded, *policy.signs[1:]]})) == key
    widened = first.model_copy(update={"patterns": [*first.patterns, "a brand new phrasing"]})
    assert crossfit.digest(corpus, policy.model_copy(update={"signs": [widened, *policy.signs[1:]]})) != key
    cheaper = policy.costs.model_copy(update={"false_alarm": policy.costs.false_alarm + 1})
    assert crossfit.digest(corpus, policy.model_copy(update={"costs": cheaper})) != key


@pytest.mark.parametrize("text", ["thresholds: [0.2]\n", "digest: x\n", ": : :\n"])
def test_a_malformed_file_is_a_config_error_saying_how_to_remake_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "crossfit.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="train crossfit"):
        crossfit.load(path)
