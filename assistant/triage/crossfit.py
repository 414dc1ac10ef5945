"""Thresholds chosen on out-of-style scores: what the model does with words it was not trained on.

Thresholds tuned on dev are tuned on the training writers' own words: the model is sure of
them, so dev asks for little. A new writer's signs score lower. Here each style group is
left out of training in turn, its train and dev messages are scored by that model, and the
thresholds are chosen by the policy's costs on all of those scores pooled (bagged as on dev).

The runtime takes, per level, the lower of the dev-tuned threshold and this one (`lowest`),
so it escalates whenever either would. The recall floors are a dev policy and are not
applied here: on out-of-style scores a 0.97 emergency floor pulls that threshold down to
0.05 and doubles the false alarms (README, "Thresholds from words the model has not seen").

    python -m assistant.triage.train crossfit   # about ten minutes: one model per group

The result is stored in `rules/triage_crossfit.yaml` with a digest of what it depends on (the
corpus, and the policy bar its wording); a test fails when the digest is stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from assistant.errors import ConfigError
from assistant.triage.corpus import Example
from assistant.triage.decide import Analysis, decide
from assistant.triage.model import Thresholds
from assistant.triage.policy import ESCALATING, TriagePolicy
from assistant.triage.tuning import tune_thresholds
from assistant.types import Triage, TriageLevel

log = logging.getLogger(__name__)

# Each fold leaves out styles with signs and styles without together, so both the signs and the
# harmless messages of that fold are in words the model has not seen; eight folds keep a run
# near ten minutes. Every style of the corpus must be in exactly one group.
STYLE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("clinical", "negated"),
    ("euphemism", "other_sense"),
    ("typos_sms", "mild_pain", "follow_up"),
    ("third_person", "hypothetical", "posture_complaint"),
    ("lay", "exercise_question"),
    ("buried_long", "resolved_past", "forbidden_request"),
    ("terse", "two_signs", "injection", "normal_exertion", "off_topic"),
    ("own_question", "plain_question"),
)


# a left-out group, its fold model's dev-tuned thresholds, its messages, and their analyses
Fold = tuple[tuple[str, ...], Thresholds, list[Example], list[Analysis]]


# the policy's wording: what a reply says, not what decides its level (left out of the digest,
# so editing a referral does not ask for a ten-minute rerun)
_WORDING: dict[str, Any] = {
    "version": True,
    "levels": True,
    "signs": {"__all__": {"name", "source", "examples", "referral", "referral_other"}},
    "scope": {
        "referral": True,
        "forbidden_referral": True,
        "non_english": True,
        "requests": {"__all__": {"name", "referral"}},
    },
}


def digest(corpus_dir: Path, policy: TriagePolicy) -> str:
    """sha256 over the corpus files and everything in the policy that decides a level (costs,
    model, negation cues, terms, the signs' levels and patterns, the named requests), not its
    wording."""
    h = hashlib.sha256()
    for f in sorted(Path(corpus_dir).glob("*.jsonl")):
        h.update(hashlib.sha256(f.read_bytes()).digest())
    h.update(json.dumps(policy.model_dump(mode="json", exclude=_WORDING), sort_keys=True).encode())
    h.update(repr(STYLE_GROUPS).encode())
    return h.hexdigest()


def check_groups(examples: Sequence[Example]) -> None:
    grouped = [s for g in STYLE_GROUPS for s in g]
    styles = {e.style for e in examples}
    if len(grouped) != len(set(grouped)) or styles - set(grouped):
        raise ConfigError(
            f"Every corpus style must be in exactly one of crossfit.STYLE_GROUPS; "
            f"not grouped: {sorted(styles - set(grouped))}. Add them to a group and rerun "
            "`python -m assistant.triage.train crossfit`."
        )


def crossfit(examples: Sequence[Example], policy: TriagePolicy, embedder: Any) -> tuple[Thresholds, dict]:
    """Thresholds by cost on all out-of-style scores, and the nested measure of the method.

    Nested: each group is decided by its own fold model with, on one side, that fold's
    dev-tuned thresholds and, on the other, the lower of those and thresholds cross-fitted on
    the other seven groups only, so neither the model nor the thresholds saw the group.
    """
    from assistant.triage.train import analyse_all, fit_model

    check_groups(examples)
    no_floors = policy.model_copy(update={"costs": policy.costs.model_copy(update={"min_recall": {}})})
    folds: list[Fold] = []
    for group in STYLE_GROUPS:
        model = fit_model(examples, policy, embedder, train_filter=_without(group))
        held = [e for e in examples if e.style in group and e.split != "test"]
        folds.append((group, model.thresholds, held, analyse_all(model, held, policy, embedder)))
        log.warning("cross-fit: scored %d messages of %s with a model that never saw them", len(held), group)
    thresholds = _tune(folds, no_floors)
    decided: dict[str, list[tuple[Example, Triage]]] = {"dev_tuned": [], "lower_of_both": []}
    by_group = {}
    for group, dev, held, analyses in folds:
        fitted = _tune([f for f in folds if f[0] != group], no_floors)
        row = {}
        for name, t in (("dev_tuned", dev), ("lower_of_both", lowest(dev, fitted))):
            pairs = [(e, decide(a, policy, t)) for e, a in zip(held, analyses, strict=True)]
            decided[name] += pairs
            row[name] = _figures(pairs)
        by_group["+".join(group)] = row
    return thresholds, {"nested": {name: _figures(p) for name, p in decided.items()} | {"by_group": by_group}}


def _figures(pairs: list[tuple[Example, Triage]]) -> dict[str, Any]:
    from assistant.triage.train import metrics

    got = metrics([e for e, _ in pairs], [g for _, g in pairs])
    return {k: v for k, v in got.items() if k in _KEEP}


_KEEP = (
    "n",
    "recall_emergency",
    "recall_urgent_or_higher",
    "recall_see_pt_or_higher",
    "false_alarms_negatives",
)


def _tune(folds: list[Fold], policy: TriagePolicy) -> Thresholds:
    """Thresholds by the policy's costs (bagged) on the pooled out-of-style scores of these folds."""
    return tune_thresholds([a for f in folds for a in f[3]], [e for f in folds for e in f[2]], policy)


def _without(group: tuple[str, ...]) -> Callable[[Example], bool]:
    return lambda e: e.style not in group


def save(path: Path, key: str, thresholds: Thresholds, figures: dict) -> None:
    body = {
        "digest": key,
        "thresholds": {str(k): float(v) for k, v in thresholds.levels.items()}
        | {"out_of_scope": float(thresholds.out_of_scope)},
        **figures,
    }
    header = (
        "# Written by `python -m assistant.triage.train crossfit`; do not edit by hand.\n"
        "# Thresholds chosen by cost on out-of-style scores (assistant/triage/crossfit.py); the\n"
        "# runtime takes, per level, the lower of these and the dev-tuned ones (out of scope: dev's).\n"
        "# nested: each left-out group decided by its fold model with that fold's dev-tuned\n"
        "# thresholds, or with the lower of those and thresholds cross-fitted on the other groups.\n"
    )
    path.write_text(header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True), encoding="utf-8")


def load(path: Path) -> tuple[str, Thresholds] | None:
    """The stored digest and thresholds, or None when there is no file.

    Raises:
        ConfigError: the file is there but not one `save` wrote; the message says how to remake it.
    """
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
        t = body["thresholds"]
        levels = {level: float(t[str(level)]) for level in ESCALATING}
        return str(body["digest"]), Thresholds(levels, float(t["out_of_scope"]))
    except FileNotFoundError:
        return None
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"Cannot read the cross-fitted thresholds in {path} ({exc!r}); remake the file with "
            "`python -m assistant.triage.train crossfit`, or delete it to serve the dev-tuned ones."
        ) from exc


def lowest(dev: Thresholds, crossfitted: Thresholds) -> Thresholds:
    """Per level the lower threshold: escalate whenever either would (never fewer escalations).

    Out of scope stays the dev-tuned one: calling a message out of scope is a refusal, not an
    escalation, and out-of-style scores say little about it (the own questions left out of
    training look off-topic to a model that never saw a question)."""
    levels: dict[TriageLevel, float] = {
        level: min(dev.levels[level], crossfitted.levels[level]) for level in dev.levels
    }
    return Thresholds(levels, dev.out_of_scope)
