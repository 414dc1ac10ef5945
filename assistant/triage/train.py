"""Train the triage model on the corpus, tune its thresholds on dev, and report honestly.

    python -m assistant.triage.train report   # dev and test figures, per style and language,
                                              # and leave-one-style-out recall
    python -m assistant.triage.train tune     # choose C and the embedding weight on dev
    python -m assistant.triage.train crossfit # thresholds from out-of-style scores (crossfit.py)

The model is fitted on the train split only; decision thresholds are chosen on dev by the
policy's costs (a missed emergency costs far more than a false alarm); test is only reported.
`ensure_model` caches the trained model under `cache_dir`, keyed by a hash of the corpus,
the policy and this package's code, so it is trained once (at `make setup`) and reloaded.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.triage import crossfit
from assistant.triage.corpus import Example, gate_windows, load_corpus, training_units
from assistant.triage.decide import Analysis, decide
from assistant.triage.lay_words import LayWords
from assistant.triage.model import TriageModel, fingerprint
from assistant.triage.policy import ModelPolicy, TriagePolicy
from assistant.triage.segment import WHOLE_CHARS
from assistant.triage.tuning import cost, tune_thresholds
from assistant.types import Triage, TriageLevel

log = logging.getLogger(__name__)
POSITIVE_STYLES = (
    "terse",
    "lay",
    "euphemism",
    "typos_sms",
    "third_person",
    "clinical",
    "buried_long",
    "two_signs",
    "injection",
)
KEEP_MODELS = 4  # cached models kept, newest first
# the modules whose code the trained model and its tuned thresholds depend on
_CODE = (
    "corpus.py",
    "decide.py",
    "first_person.py",
    "lay_words.py",
    "model.py",
    "patterns.py",
    "segment.py",
    "train.py",
    "triager.py",
    "tuning.py",
    "typed_words.py",
    "../spelling.py",
)


# --------------------------------------------------------------------------- building


class MemoEmbedder:
    """Embeds each text once per training run (reports retrain the model several times)."""

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder
        self._memo: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            self._memo.update(zip(missing, self._embedder.encode(missing), strict=True))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])


def ensure_model(settings: Settings, policy: TriagePolicy, embedder: Any) -> TriageModel:
    """The cached model for this corpus, policy and code (trained once if missing), with its
    thresholds lowered to the cross-fitted ones where those are lower (`crossfit.py`)."""
    model = _cached_model(settings, policy, embedder)
    stored = crossfit.load(settings.triage_crossfit)
    if stored is None:
        log.warning("No cross-fitted thresholds in %s; using the dev-tuned ones.", settings.triage_crossfit)
        return model
    key, thresholds = stored
    if key != crossfit.digest(settings.triage_corpus, policy):
        log.warning(
            "The cross-fitted thresholds in %s were chosen for another corpus or policy; rerun "
            "`python -m assistant.triage.train crossfit` (about ten minutes). Using them meanwhile.",
            settings.triage_crossfit,
        )
    return replace(model, thresholds=crossfit.lowest(model.thresholds, thresholds))


def _cached_model(settings: Settings, policy: TriagePolicy, embedder: Any) -> TriageModel:
    """The cached model for this corpus, policy and code; trained (about a minute) if missing."""
    from filelock import FileLock

    corpus_files = sorted(Path(settings.triage_corpus).glob("*.jsonl"))
    here = Path(__file__).parent
    key = fingerprint(
        *(f.read_bytes() for f in corpus_files),
        Path(settings.triage_rules).read_bytes(),
        json.dumps(policy.model.lay_words, sort_keys=True).encode(),  # read from files beside it
        json.dumps(policy.model.shorthand, sort_keys=True).encode(),
        json.dumps(policy.model.first_person, sort_keys=True).encode(),
        *((here / name).read_bytes() for name in _CODE),
        str(getattr(embedder, "model_id", "")).encode(),
    )
    path = Path(settings.cache_dir) / "triage" / f"model-{key[:16]}.joblib"
    model = TriageModel.load(path, key)
    if model is not None:
        return model
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        model = TriageModel.load(path, key)  # another process may have trained it meanwhile
        if model is not None:
            return model
        log.warning(
            "Training the triage model from %s (once; cached in %s).", settings.triage_corpus, path.parent
        )
        examples = load_corpus(settings.triage_corpus, [s.id for s in policy.signs])
        model = fit_model(examples, policy, MemoEmbedder(embedder))
        model.fingerprint = key
        model.save(path)
        # keep a few recent models (other checkouts may share the cache), drop older ones
        older = sorted(path.parent.glob("model-*.joblib"), key=lambda f: f.stat().st_mtime, reverse=True)
        for old in older[KEEP_MODELS:]:
            old.unlink(missing_ok=True)
            Path(str(old) + ".lock").unlink(missing_ok=True)
    return model


def fit_model(
    examples: Sequence[Example],
    policy: TriagePolicy,
    embedder: Any,
    params: ModelPolicy | None = None,
    train_filter: Callable[[Example], bool] | None = None,
) -> TriageModel:
    """Fit on the train split (optionally filtered), then choose thresholds on dev."""
    train = [e for e in examples if e.split == "train" and (train_filter is None or train_filter(e))]
    units = training_units(train)
    whole = [e.text[:WHOLE_CHARS] for e in train]
    windows, holds = gate_windows(train)
    model = TriageModel.fit(
        units,
        embedder.encode(units.texts),
        policy,
        params,
        messages=(train, embedder.encode(whole)),
        gate=(windows, holds, embedder.encode(windows)),
    )
    model.lay_seen = LayWords(policy.model.lay_words).seen(
        [e.text for e in train], policy.model.lay_words_seen
    )
    dev = [e for e in examples if e.split == "dev"]
    model.thresholds = tune_thresholds(analyse_all(model, dev, policy, embedder), dev, policy)
    return model


def analyse_all(
    model: TriageModel, examples: Sequence[Example], policy: TriagePolicy, embedder: Any
) -> list[Analysis]:
    from assistant.triage.triager import Triager, known_words

    triager = Triager(policy, model, embedder, known_words(embedder))
    return [triager.analyse(e.text) for e in examples]


# --------------------------------------------------------------------------- reporting


def metrics(examples: Sequence[Example], got: Sequence[Triage]) -> dict[str, Any]:
    """Recall by level (exact for emergency, 'or higher' for the others), false alarms, scope."""
    pairs = list(zip(examples, got, strict=True))

    def share(items: list[bool]) -> float | None:
        return round(sum(items) / len(items), 3) if items else None

    out: dict[str, Any] = {"n": len(pairs)}
    out["recall_emergency"] = share(
        [g.level is TriageLevel.EMERGENCY for e, g in pairs if e.level is TriageLevel.EMERGENCY]
    )
    for level in (TriageLevel.URGENT, TriageLevel.SEE_PT):
        out[f"recall_{level}_or_higher"] = share(
            [g.level.severity >= level.severity for e, g in pairs if e.level is level]
        )
    out["false_alarms_negatives"] = share(
        [g.level.severity > 0 for e, g in pairs if e.level is TriageLevel.SELF_CARE]
    )
    out["out_of_scope_recognised"] = share(
        [g.level is TriageLevel.OUT_OF_SCOPE for e, g in pairs if e.level is TriageLevel.OUT_OF_SCOPE]
    )
    out["self_care_called_out_of_scope"] = share(
        [g.level is TriageLevel.OUT_OF_SCOPE for e, g in pairs if e.level is TriageLevel.SELF_CARE]
    )
    by_style: dict[str, list[bool]] = defaultdict(list)
    by_lang: dict[str, list[bool]] = defaultdict(list)
    for e, g in pairs:
        ok = g.level.severity >= e.level.severity if e.level.severity else g.level.severity == 0
        by_style[e.style].append(ok)
        by_lang[e.lang].append(ok)
    out["right_by_style"] = {k: share(v) for k, v in sorted(by_style.items())}
    out["right_by_language"] = {k: share(v) for k, v in sorted(by_lang.items())}
    return out


def report(settings: Settings, *, loso: bool = True) -> dict[str, Any]:
    """Dev and test figures of the model `ensure_model` serves, and leave-one-style-out recall."""
    from assistant.embeddings import Embedder

    embedder = MemoEmbedder(Embedder.from_settings(settings))
    policy = TriagePolicy.load(settings.triage_rules)
    examples = load_corpus(settings.triage_corpus, [s.id for s in policy.signs])
    model = ensure_model(settings, policy, embedder)
    out: dict[str, Any] = {
        "corpus": {split: sum(e.split == split for e in examples) for split in ("train", "dev", "test")},
        "thresholds": {str(k): v for k, v in model.thresholds.levels.items()}
        | {"out_of_scope": model.thresholds.out_of_scope},
    }
    for split in ("dev", "test"):
        part = [e for e in examples if e.split == split]
        got = [decide(a, policy, model.thresholds) for a in analyse_all(model, part, policy, embedder)]
        out[split] = metrics(part, got)
    if loso:
        out["leave_one_style_out"] = {}
        for style in POSITIVE_STYLES:
            held = [e for e in examples if e.style == style]
            if not held:
                continue
            m = fit_model(examples, policy, embedder, train_filter=_without_style(style))
            got = [decide(a, policy, m.thresholds) for a in analyse_all(m, held, policy, embedder)]
            out["leave_one_style_out"][style] = {
                k: v for k, v in metrics(held, got).items() if k.startswith("recall") or k == "n"
            }
    return out


def _without_style(style: str) -> Callable[[Example], bool]:
    return lambda e: e.style != style


def tune(settings: Settings) -> list[dict[str, Any]]:
    """Try a small grid of C and embedding weights; rank by dev cost (never test)."""
    from assistant.embeddings import Embedder

    embedder = MemoEmbedder(Embedder.from_settings(settings))
    policy = TriagePolicy.load(settings.triage_rules)
    examples = load_corpus(settings.triage_corpus, [s.id for s in policy.signs])
    dev = [e for e in examples if e.split == "dev"]
    rows = []
    for c in (0.5, 2.0, 8.0, 32.0):
        for w in (0.5, 1.0, 2.0):
            params = policy.model.model_copy(update={"C": c, "embedding_weight": w})
            m = fit_model(examples, policy, embedder, params)
            got = [decide(a, policy, m.thresholds) for a in analyse_all(m, dev, policy, embedder)]
            total = sum(cost(e.level, g, policy) for e, g in zip(dev, got, strict=True))
            rows.append({"C": c, "embedding_weight": w, "dev_cost": total} | metrics(dev, got))
            print(json.dumps(rows[-1]), file=sys.stderr)
    rows.sort(key=lambda r: r["dev_cost"])
    return rows


def audit_patterns(settings: Settings) -> list[dict[str, Any]]:
    """Backstop patterns that fire on train or dev messages without that sign (never test).

    A reviewer reads this list to keep the backstop high-precision: a pattern that fires on
    harmless messages is narrowed or removed, and the model covers its phrasings instead.
    """
    from assistant.triage.patterns import PatternMatcher

    policy = TriagePolicy.load(settings.triage_rules)
    matcher = PatternMatcher(policy)
    examples = load_corpus(settings.triage_corpus, [s.id for s in policy.signs])
    wrong = []
    for e in examples:
        if e.split == "test":
            continue
        for hit in matcher.find([e.text]):
            if hit.sign.id not in e.signs and hit.sign.level.severity > e.level.severity:
                wrong.append({"id": e.id, "sign": hit.sign.id, "quote": hit.quote, "text": e.text[:160]})
    return wrong


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    settings = Settings.load()
    logging.basicConfig(level=logging.WARNING)
    if args[:1] == ["build"]:  # `make setup`: train once, or find the cached model
        from assistant.embeddings import Embedder

        policy = TriagePolicy.load(settings.triage_rules)
        ensure_model(settings, policy, Embedder.from_settings(settings))
        return 0
    if args[:1] == ["crossfit"]:  # thresholds from out-of-style scores (about ten minutes)
        from assistant.embeddings import Embedder

        policy = TriagePolicy.load(settings.triage_rules)
        examples = load_corpus(settings.triage_corpus, [s.id for s in policy.signs])
        thresholds, figures = crossfit.crossfit(
            examples, policy, MemoEmbedder(Embedder.from_settings(settings))
        )
        key = crossfit.digest(settings.triage_corpus, policy)
        crossfit.save(settings.triage_crossfit, key, thresholds, figures)
        print(f"wrote {settings.triage_crossfit}: {thresholds}")
        return 0
    if args[:1] == ["audit"]:
        for row in audit_patterns(settings):
            print(json.dumps(row, ensure_ascii=False))
        return 0
    if args[:1] == ["tune"]:
        rows = tune(settings)
        print(json.dumps(rows[:3], indent=1))
        return 0
    if args[:1] in (["report"], []):
        out = report(settings, loso="--no-loso" not in args)
        print(json.dumps(out, indent=1))
        if "--out" in args:
            Path(args[args.index("--out") + 1]).write_text(json.dumps(out, indent=1) + "\n")
        return 0
    print(
        "usage: python -m assistant.triage.train"
        " [build | report [--no-loso] [--out FILE] | tune | audit | crossfit]",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
