"""Fitting the "not covered" model on the dev split of the project's own questions.

`python -m assistant.coverage_tuning fit` reads labelled questions (covered and in-domain
uncovered ones, see `labelled_questions`), keeps the dev split (a SHA-256 hash of each
id decides, so the split never changes), computes each question's evidence with the
real assistant, fits a logistic regression (scikit-learn) and writes its weights to
`rules/coverage_model.yaml`. `... report` scores a split without fitting. Nothing in
`../shared/evalsets/` is ever read here.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from assistant.config import PROJECT_ROOT
from assistant.coverage import (
    EXAMPLE_FEATURES,
    EXAMPLES_FILE,
    FEATURES,
    MODEL_FILE,
    CoverageModel,
    likeness_features,
    rest,
)
from assistant.question_model import QuestionModel

QUESTIONS_DIR = PROJECT_ROOT / "evals" / "data" / "questions"
ANSWERS_FILE = PROJECT_ROOT / "evals" / "data" / "answers.jsonl"
RETRIEVAL_FILE = PROJECT_ROOT / "evals" / "data" / "retrieval.jsonl"
# Questions written only to be fitted on (`rules/question_corpus/README.md`): every one is in the
# dev split, so the test split of `evals/data/questions` and the held-out suites stay as they were.
CORPUS_DIR = Path(__file__).parent / "rules" / "question_corpus"

# Share of the answered covered dev questions whose answer carries the hedge line: a hedge on one
# answer in ten is a small price for saying so on about half of the answered uncovered ones.
HEDGE_SHARE = 0.10


def split_of(case_id: str) -> str:
    """'dev' or 'test', from a SHA-256 hash of the id (stable across runs and machines)."""
    return "dev" if int(hashlib.sha256(case_id.encode()).hexdigest()[:8], 16) % 2 == 0 else "test"


@dataclass(frozen=True)
class Labelled:
    id: str
    question: str
    covered: bool
    style: str = ""
    expect_any: tuple[str, ...] = ()
    source: str = ""

    @property
    def split(self) -> str:
        """A corpus question is always fitted on (dev); the others split by `split_of`."""
        return "dev" if self.source == "corpus" else split_of(self.id)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _text(row: dict[str, Any]) -> str:
    return str(row.get("question") or row.get("message") or row.get("user_input") or "")


def labelled_questions(questions_dir: Path = QUESTIONS_DIR, corpus_dir: Path = CORPUS_DIR) -> list[Labelled]:
    """The project's own single-turn questions with a covered / not covered label.

    `evals/data/questions/covered.jsonl` and `uncovered.jsonl` when they exist, plus the
    answers and retrieval sets (every retrieval question is answered by the article), plus the
    question corpus (`corpus_dir/*.jsonl`, dev only).
    """
    out: list[Labelled] = []
    for row in _read_jsonl(questions_dir / "covered.jsonl"):
        out.append(
            Labelled(
                str(row["id"]),
                _text(row),
                True,
                str(row.get("style", "")),
                tuple(row.get("expect_any") or ()),
                "covered",
            )
        )
    for row in _read_jsonl(questions_dir / "uncovered.jsonl"):
        out.append(
            Labelled(str(row["id"]), _text(row), False, str(row.get("style", "uncovered")), (), "uncovered")
        )
    for row in _read_jsonl(ANSWERS_FILE):
        out.append(
            Labelled(str(row["id"]), _text(row), bool(row.get("covered", True)), "answers", (), "answers")
        )
    for row in _read_jsonl(RETRIEVAL_FILE):
        out.append(
            Labelled(
                str(row["id"]),
                _text(row),
                True,
                "retrieval",
                tuple(row.get("reference_contexts") or ()),
                "retrieval",
            )
        )
    for path in sorted(corpus_dir.glob("*.jsonl")):
        for row in _read_jsonl(path):
            out.append(
                Labelled(
                    str(row["id"]),
                    _text(row),
                    bool(row["covered"]),
                    str(row.get("style", "")),
                    tuple(row.get("expect_any") or ()),
                    "corpus",
                )
            )
    return [q for q in out if q.question.strip()]


def evidence_matrix(bot: Any, cases: Sequence[Labelled], examples: Sequence[Labelled]) -> np.ndarray:
    """Each case's evidence features (rows in `cases` order, columns in `FEATURES` order).

    The likeness features compare each case with the `examples` (the dev questions) other
    than itself, so a dev question is never judged by its own label.
    """
    from dataclasses import replace

    from assistant.text import plain_text

    ex_vecs = bot.embedder.encode([e.question for e in examples])
    ex_rests = np.asarray([rest(v, bot.sentence_of(v)) for v in ex_vecs], dtype=np.float32)
    ex_cov = np.array([e.covered for e in examples])
    ex_ids = [e.id for e in examples]
    rows = []
    asking = asked_out_of_fold(bot)

    for case in cases:
        text = plain_text(case.question)
        vec = bot.embedder.encode_one(text)
        with bot.examples.without(case.question):  # the reranker's vote, without its own label
            got = bot.retrieve(text, vec)
        read_vec = bot.embedder.encode_one(got.read.embedded) if got.read.changed else vec
        _, sentence = bot.composer.closest_sentence([h.chunk for h in got.hits[:3]], read_vec)
        own_rest = rest(read_vec, sentence) if sentence is not None else np.zeros_like(read_vec)
        sims, rest_sims = ex_vecs @ read_vec, ex_rests @ own_rest
        mask = np.array([i != case.id for i in ex_ids])
        ev = replace(
            got.evidence,
            **likeness_features("", sims[mask & ~ex_cov], sims[mask & ex_cov]),
            **likeness_features("rest_", rest_sims[mask & ~ex_cov], rest_sims[mask & ex_cov]),
            asked_covered=asking(case.question, got.read.search, read_vec, own_rest),
        )
        rows.append(ev.vector())
    return np.asarray(rows, dtype=float)


def asked_out_of_fold(bot: Any, folds: int = 5) -> Callable[[str, str, np.ndarray, np.ndarray], float]:
    """The question model's log-odds for a question, as `Examples.asked` gives it, except that
    a question that is itself a labelled example is scored by a model fitted without its fold
    (a hash of its text decides), so a dev question is never judged by its own label."""
    texts, vectors, rests, covered = bot.examples.labelled(bot.embedder, bot.sentence_of)
    fold = np.array([int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) % folds for t in texts])
    fold_of = dict(zip(texts, fold.tolist(), strict=True))
    models = {
        f: QuestionModel.fit(
            [bot.examples.read(t) for t, k in zip(texts, fold != f, strict=True) if k],
            vectors[fold != f],
            rests[fold != f],
            covered[fold != f],
        )
        for f in range(folds)
    }

    def score(question: str, text: str, vector: np.ndarray, rest_vector: np.ndarray) -> float:
        """`question` as labelled (which fold), `text` as read (what is scored)."""
        if question not in fold_of:
            return bot.examples.asked(bot.embedder, text, vector, rest_vector, bot.sentence_of)
        return models[fold_of[question]].log_odds_one(text, vector, rest_vector)

    return score


def covered_examples(dev: Sequence[Labelled]) -> list[dict[str, Any]]:
    """The covered dev questions, each with the phrases of the sources that answer it (merged
    when a question is listed twice), sorted: what `coverage_examples.yaml` stores."""
    answers: dict[str, list[str]] = {}
    for c in dev:
        if c.covered:
            phrases = answers.setdefault(c.question, [])
            phrases.extend(p for p in c.expect_any if p not in phrases)
    return [{"question": q, "answer": a} if a else {"question": q} for q, a in sorted(answers.items())]


def _cross_validated(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """5-fold cross-validated p(covered): in-sample probabilities are over-confident and would set
    the threshold too high for questions the model has not seen. The folds are shuffled (seeded):
    the files list questions topic by topic, and unshuffled folds would each hold out whole topics
    the likeness features still see."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
    return np.asarray(cross_val_predict(model, z, y, cv=folds, method="predict_proba")[:, 1])


def _threshold(p: np.ndarray, y: np.ndarray, min_answered: float) -> tuple[float, float]:
    """(threshold, balanced accuracy): the best balanced accuracy among thresholds that answer at
    least `min_answered` of the covered questions."""
    best_t, best = 0.02, -1.0
    for t in np.linspace(0.02, 0.8, 79):
        pred = p >= t
        tpr = (pred & (y == 1)).sum() / max((y == 1).sum(), 1)
        tnr = (~pred & (y == 0)).sum() / max((y == 0).sum(), 1)
        if tpr >= min_answered and (tpr + tnr) / 2 > best + 1e-9:
            best_t, best = float(t), float((tpr + tnr) / 2)
    return best_t, best


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def fit(
    x: np.ndarray, y: np.ndarray, info: dict[str, Any] | None = None, min_answered: float = 0.95
) -> CoverageModel:
    """Logistic regression on standardised features; the threshold maximises balanced accuracy
    among those answering at least `min_answered` of the covered dev questions.

    0.95 because the issue's goals ask both at once: covered questions in unfamiliar words
    answered (at least 0.90) and in-domain uncovered ones declined (at least 0.85). On the dev
    split 0.95 meets both (0.947 and 0.866); 0.97 answered more (0.977) but declined 0.67.

    `class_weight="balanced"` because covered questions outnumber uncovered ones; C=1
    (scikit-learn's default) keeps the five weights modest on a few hundred questions.

    A second regression over the features that need no labelled example (`without_examples`)
    decides for a source the examples never saw; its threshold is chosen by the same rule and
    its intercept moved so that threshold falls on the first one's.
    """
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(z, y)
    p = _cross_validated(z, y)
    best_t, best = _threshold(p, y, min_answered)
    # The hedge band: answered covered questions under `hedge_below` get a line saying the sources
    # may not answer exactly this. Set so HEDGE_SHARE of the answered covered dev questions carry
    # it (cross-validated, as the threshold); on dev that band holds about half of the uncovered
    # questions that are answered anyway.
    answered = p[(y == 1) & (p >= best_t)]
    hedge = float(np.quantile(answered, HEDGE_SHARE)) if len(answered) else 0.0
    own = [i for i, f in enumerate(FEATURES) if f not in EXAMPLE_FEATURES]
    alone = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(z[:, own], y)
    alone_t, alone_best = _threshold(_cross_validated(z[:, own], y), y, min_answered)
    without = {FEATURES[i]: round(float(w), 4) for i, w in zip(own, alone.coef_[0], strict=True)}
    without["intercept"] = round(float(alone.intercept_[0]) - _logit(alone_t) + _logit(best_t), 4)
    return CoverageModel(
        weights={f: round(float(w), 4) for f, w in zip(FEATURES, lr.coef_[0], strict=True)},
        intercept=round(float(lr.intercept_[0]), 4),
        mean={f: round(float(v), 4) for f, v in zip(FEATURES, mean, strict=True)},
        scale={f: round(float(v), 4) for f, v in zip(FEATURES, scale, strict=True)},
        threshold=round(best_t, 3),
        hedge_below=round(max(hedge, best_t), 3),
        info={
            **(info or {}),
            "dev_balanced_accuracy": round(best, 3),
            "dev_balanced_accuracy_without_examples": round(alone_best, 3),
            "min_answered": min_answered,
        },
        without_examples=without,
    )


def scores(model: CoverageModel, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from assistant.coverage import Evidence

    p = np.array([model.probability(Evidence(*row)) for row in x])
    pred = p >= model.threshold
    hedged = np.array([model.hedged(v) for v in p])

    def share(of: np.ndarray) -> float:
        return round(float(of.mean()), 3) if len(of) else float("nan")

    return {
        "n": int(len(y)),
        "covered_answered": share(pred[y == 1]),
        "uncovered_declined": share(~pred[y == 0]),
        # of the answered ones: covered answers that carry the hedge, and uncovered ones that do
        "covered_answered_hedged": share(hedged[(y == 1) & pred]),
        "uncovered_answered_hedged": share(hedged[(y == 0) & pred]),
    }


def rerank_groups(bot: Any, cases: Sequence[Labelled]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(candidate features, holds the answer) per covered case with expected phrases.

    The candidates are those the assistant reranks (`Assistant.candidates`); a candidate holds the
    answer when it contains one of the case's expected phrases (as the blind scorer counts).
    """
    from assistant.rerank import candidate_features
    from assistant.text import plain_text
    from evals.metrics import contains

    groups = []
    for case in cases:
        if not case.covered or not case.expect_any:
            continue
        read = bot.retriever.reader.read(plain_text(case.question))
        vec = bot.embedder.encode_one(read.embedded)
        with bot.examples.without(case.question):  # a dev question is judged without its own label
            pool = bot.candidates(read, vec, bot.settings.rerank_pool)
            x = candidate_features(read, pool, vec, bot.composer.sentence_similarity, bot.vote)
        y = np.array([any(contains(h.chunk.text, p) for p in case.expect_any) for h in pool])
        groups.append((x, y))
    return groups


def top1(weights: np.ndarray, groups: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    usable = [(x, y) for x, y in groups if y.any()]
    return round(float(np.mean([y[int(np.argmax(x @ weights))] for x, y in usable])), 3) if usable else 0.0


def fit_rerank(bot: Any, dev: Sequence[Labelled], test: Sequence[Labelled]) -> dict[str, Any]:
    """Fit the reranker on dev (L2 strength chosen by 5-fold cross-validation on dev) and write it."""
    from assistant.rerank import RERANK_FEATURES, RERANK_FILE, Reranker, fit_weights

    groups, held = rerank_groups(bot, dev), rerank_groups(bot, test)
    folds = [groups[i::5] for i in range(5)]
    cv = {}
    for l2 in (0.001, 0.01, 0.05, 0.2, 1.0):
        hits = []
        for i in range(5):
            train = [g for j, f in enumerate(folds) if j != i for g in f]
            w, _ = fit_weights(train, l2)
            hits.append(top1(w, folds[i]) * sum(y.any() for _, y in folds[i]))
        cv[l2] = float(sum(hits) / sum(y.any() for _, y in groups))
    l2 = max(cv, key=lambda k: (round(cv[k], 3), k))  # ties: the stronger penalty
    w, dev_top1 = fit_weights(groups, l2)
    w = w / max(float(np.abs(w).sum()), 1e-12)  # only the direction ranks; shown as shares
    fused = np.eye(len(RERANK_FEATURES))[0]
    model = Reranker(
        {f: round(float(v), 4) for f, v in zip(RERANK_FEATURES, w, strict=True)},
        {
            "fitted": time.strftime("%Y-%m-%d", time.gmtime()),
            "how": "python -m assistant.coverage_tuning fit-rerank (dev split only): conditional logit, "
            "softmax over each question's candidates, target = candidates holding an expected phrase",
            "why": "fusion ranks by where two rankers put a passage, not by whether it answers; these "
            "weights are the ones under which the dev questions' answering passages come first most often",
            "dev_questions": len([g for g in groups if g[1].any()]),
            "l2": float(l2),
            "cv_top1_by_l2": {str(k): round(v, 3) for k, v in cv.items()},
            "dev_top1": round(dev_top1, 3),
            "dev_top1_fusion_only": top1(fused, groups),
        },
    )
    header = (
        "# Written by `python -m assistant.coverage_tuning fit-rerank`: the reranker's weights\n"
        "# (assistant/rerank.py), fitted on the dev split of the project's own questions. Do not\n"
        "# edit by hand; refit instead.\n"
    )
    RERANK_FILE.write_text(header + yaml.safe_dump(model.to_dict(), sort_keys=False), encoding="utf-8")
    return {
        "model": model.to_dict(),
        "test_top1": top1(model.vector(), held),
        "test_top1_fusion_only": top1(fused, held),
    }


# The composer's bonuses fitted on dev, each over these values (coordinate ascent, three rounds).
# `fragment` and `anaphora` are left as set: they make answers read well out of context, which no
# expected phrase measures, so fitting them on phrases would only undo them.
COMPOSE_GRID = {
    "rank": (0.0, 0.02, 0.04, 0.08, 0.15, 0.3),
    "cause": (0.0, 0.06, 0.12, 0.2, 0.3),
    "cause_section": (0.0, 0.04, 0.08, 0.15, 0.3),
    "imperative": (0.0, 0.05, 0.1, 0.15, 0.25),
    "action_cue": (0.0, 0.02, 0.05, 0.1),
    "rare_terms": (0.0, 0.05, 0.1, 0.2, 0.3),
    "rare_terms_general": (0.0, 0.1, 0.2, 0.3, 0.5),
    "lead_passages": (1, 2, 3, 4),
    "vote": (0.0, 0.1, 0.2, 0.3, 0.4),
}


# A value replaces the current one only when it answers at least this many more dev questions
# right (summed over the measures): smaller gains are within what rewording a question or two
# changes, and chasing them fits the dev questions' noise, not how answers should be laid out.
COMPOSE_MIN_GAIN = 3


def compose_cases(bot: Any, cases: Sequence[Labelled]) -> list[tuple[Any, tuple[str, ...]]]:
    """(retrieved, expected phrases) for each covered case the assistant answers on its own evidence."""
    from assistant.text import plain_text

    out = []
    for case in cases:
        if not case.covered or not case.expect_any:
            continue
        text = plain_text(case.question)
        with bot.examples.without(case.question):  # judged without its own label's vote
            got = bot.retrieve(text, bot.embedder.encode_one(text))
        if got.hits and got.p_covered >= bot.coverage.threshold:
            out.append((got, case.expect_any))
    return out


def fact_cases(bot: Any, split: str) -> list[tuple[Any, tuple[str, ...]]]:
    """(retrieved, key facts) for the answers set's covered questions of a split."""
    from assistant.text import plain_text

    out = []
    for row in _read_jsonl(ANSWERS_FILE):
        if split_of(str(row["id"])) != split or not row.get("covered", True) or not row.get("key_facts"):
            continue
        text = plain_text(_text(row))
        with bot.examples.without(_text(row)):
            got = bot.retrieve(text, bot.embedder.encode_one(text))
        if got.hits:
            out.append((got, tuple(row["key_facts"])))
    return out


def compose_score(
    bot: Any, cases: Sequence[tuple[Any, tuple[str, ...]]], facts: Sequence[tuple[Any, tuple[str, ...]]] = ()
) -> tuple[float, float, float, float]:
    """(cited, first, said, facts): shares of cases where a cited passage / the first citation /
    the answer itself holds an expected phrase, and the mean share of key facts the answer states."""
    from assistant.types import render_text
    from evals.metrics import contains, fact_recall

    cited = first = said = 0
    for got, phrases in cases:
        composed = bot.composer.compose(got.read.text, got.hits, got.vector, voted=got.voted)
        texts = [c.text for c in composed.citations]
        cited += any(contains(t, p) for t in texts for p in phrases)
        first += bool(texts) and any(contains(texts[0], p) for p in phrases)
        said += any(contains(render_text(blocks=composed.blocks), p) for p in phrases)
    recall = []
    for got, key_facts in facts:
        composed = bot.composer.compose(got.read.text, got.hits, got.vector, voted=got.voted)
        recall.append(fact_recall(render_text(blocks=composed.blocks), key_facts) or 0.0)
    n = max(len(cases), 1)
    return cited / n, first / n, said / n, float(np.mean(recall)) if recall else 0.0


def fit_compose(bot: Any, dev: Sequence[Labelled], test: Sequence[Labelled]) -> dict[str, Any]:
    """Fit the composer's bonuses on dev (objective: `compose_score`'s hits, each question counted
    once per measure) and write them
    into `rules/answers.yaml` in place (its comments stay)."""
    import re
    from dataclasses import replace

    from assistant.compose import ANSWERS_FILE

    dev_cases, test_cases = compose_cases(bot, dev), compose_cases(bot, test)
    dev_facts, test_facts = fact_cases(bot, "dev"), fact_cases(bot, "test")
    bonus = dict(bot.composer.style.bonus)

    def scored() -> dict[str, tuple[float, float, float, float]]:
        return {
            "dev": compose_score(bot, dev_cases, dev_facts),
            "test": compose_score(bot, test_cases, test_facts),
        }

    start = scored()

    def objective(values: dict[str, float]) -> float:
        """Every question counts once in each measure: a key-facts case as much as a phrase case."""
        bot.composer.style = replace(bot.composer.style, bonus=values)
        cited, first, said, facts = compose_score(bot, dev_cases, dev_facts)
        return len(dev_cases) * (cited + first + said) + len(dev_facts) * facts

    best = objective(bonus)
    for _ in range(3):
        changed = False
        for name, grid in COMPOSE_GRID.items():
            for value in grid:
                trial = {**bonus, name: float(value)}
                score = objective(trial)
                if score >= best + COMPOSE_MIN_GAIN:
                    best, bonus, changed = score, trial, True
        if not changed:
            break
    objective(bonus)
    result = {
        "bonus": {k: bonus[k] for k in COMPOSE_GRID},
        "before": start,
        "after": scored(),
        "columns": ["cited", "first", "said in the answer", "key facts"],
        "dev_cases": len(dev_cases),
        "dev_fact_cases": len(dev_facts),
    }
    text = ANSWERS_FILE.read_text(encoding="utf-8")
    for name in COMPOSE_GRID:
        value = bonus[name]
        shown = str(int(value)) if name == "lead_passages" else f"{value:g}"
        text = re.sub(rf"(?m)^(  {name}:\s*)[-0-9.]+", rf"\g<1>{shown}", text)
    ANSWERS_FILE.write_text(text, encoding="utf-8")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from assistant import Assistant

    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "report"
    bot = Assistant.from_settings(warm=True)
    fitters = {"fit-compose": fit_compose, "fit-rerank": fit_rerank}
    if command in fitters:
        cases = labelled_questions()
        result = fitters[command](
            bot, [c for c in cases if c.split == "dev"], [c for c in cases if c.split == "test"]
        )
        print(json.dumps(result, indent=1))
        return 0
    cases = labelled_questions()
    dev = [c for c in cases if c.split == "dev"]
    test = [c for c in cases if c.split == "test"]
    y_dev = np.array([c.covered for c in dev], dtype=int)
    y_test = np.array([c.covered for c in test], dtype=int)
    x_dev, x_test = evidence_matrix(bot, dev, dev), evidence_matrix(bot, test, dev)
    model = bot.coverage
    if command == "fit":
        model = fit(
            x_dev,
            y_dev,
            {
                "fitted": time.strftime("%Y-%m-%d", time.gmtime()),
                "data": sorted({c.source for c in dev}),
                "dev_cases": len(dev),
                "dev_uncovered": int((y_dev == 0).sum()),
                "how": "python -m assistant.coverage_tuning fit (dev split only)",
            },
        )
        header = (
            "# Written by `python -m assistant.coverage_tuning fit`: a logistic regression over the\n"
            "# evidence features, fitted on the dev split of the project's own questions. Do not edit\n"
            "# by hand; refit instead.\n"
        )
        MODEL_FILE.write_text(header + yaml.safe_dump(model.to_dict(), sort_keys=False), encoding="utf-8")
        EXAMPLES_FILE.write_text(
            "# Written by `python -m assistant.coverage_tuning fit`: the dev-split questions the\n"
            "# coverage model compares new questions with (its like_covered / like_uncovered features),\n"
            "# and the knowledge sources they were labelled against.\n"
            + yaml.safe_dump(
                {
                    "sources": sorted({c.source for c in bot.retriever.chunks}),
                    "covered": covered_examples(dev),
                    "uncovered": sorted({c.question for c in dev if not c.covered}),
                },
                sort_keys=False,
                allow_unicode=True,
                width=200,
            ),
            encoding="utf-8",
        )
    print(
        json.dumps(
            {
                "model": model.to_dict(),
                "dev": scores(model, x_dev, y_dev),
                "test": scores(model, x_test, y_test),
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
