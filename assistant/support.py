"""Is a sentence a language model wrote supported by the passage it cites?

A model paraphrases, so the extractive check (the statement is verbatim in its chunk) cannot
apply. Three scores are candidates: the cosine similarity of the sentence to the cited chunk's
closest sentence (the embedding model the index uses), the rarity-weighted share of the
sentence's words found in the chunk, and their mean. Which one is used, and its threshold,
are fitted on the dev split of a labelled set of supported and unsupported sentence/chunk
pairs drawn from the knowledge base (`evals/data/support_pairs.jsonl`) by
`python -m assistant.support fit`, and kept in `rules/support_check.yaml`, not in code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from assistant.compose import Composer
from assistant.config import PACKAGE_DIR, PROJECT_ROOT, Settings
from assistant.coverage import passage_stems, rarity, stem, words
from assistant.coverage_tuning import split_of
from assistant.errors import ConfigError
from assistant.types import Chunk

SUPPORT_FILE = PACKAGE_DIR / "rules" / "support_check.yaml"
PAIRS_FILE = PROJECT_ROOT / "evals" / "data" / "support_pairs.jsonl"
SCORES = ("similarity", "overlap", "mean")
# Precision counts twice as much as recall when the check is fitted (F-beta, beta 0.5): a wrongly
# accepted sentence reaches a person, a wrongly rejected one only costs the extractive answer.
BETA = 0.5


def overlap(sentence: str, chunk: Chunk) -> float:
    """Rarity-weighted share of the sentence's words (by stem) that the chunk uses."""
    found = passage_stems(f"{chunk.section} {chunk.text}")
    weights = [(rarity(w), stem(w) in found) for w in words(sentence) if len(w) > 2]
    total = sum(w for w, _ in weights)
    return sum(w for w, hit in weights if hit) / total if total else 0.0


@dataclass(frozen=True)
class SupportCheck:
    """Scores a sentence against the chunk it cites and accepts it above the fitted threshold."""

    composer: Composer
    score_name: str = "mean"
    threshold: float = 0.6

    @classmethod
    def load(cls, composer: Composer, path: Path = SUPPORT_FILE) -> SupportCheck:
        """The check as fitted (`rules/support_check.yaml`).

        Raises:
            ConfigError: the file is missing or names an unknown score.
        """
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            name, threshold = str(data["score"]), float(data["threshold"])
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"Cannot read the support check {path}: {exc}. Run `python -m assistant.support fit`."
            ) from exc
        if name not in SCORES:
            raise ConfigError(f"{path}: score must be one of {', '.join(SCORES)}, got {name!r}")
        return cls(composer, name, threshold)

    def scores(self, sentence: str, chunk: Chunk, vector: np.ndarray | None = None) -> dict[str, float]:
        """Every candidate score of `sentence` against `chunk` (`vector`: the sentence's, if known)."""
        if vector is None:
            vector = self.composer.embedder.encode_one(sentence)
        sim = self.composer.sentence_similarity(chunk, vector)
        lex = overlap(sentence, chunk)
        return {"similarity": sim, "overlap": lex, "mean": (sim + lex) / 2}

    def score(self, sentence: str, chunk: Chunk, vector: np.ndarray | None = None) -> float:
        return self.scores(sentence, chunk, vector)[self.score_name]

    def supports(self, sentence: str, chunk: Chunk, vector: np.ndarray | None = None) -> bool:
        return self.score(sentence, chunk, vector) >= self.threshold


# -- fitting ---------------------------------------------------------------------------------
def precision_recall(
    scores: Sequence[float], labels: Sequence[bool], threshold: float
) -> tuple[float, float]:
    accepted = [y for s, y in zip(scores, labels, strict=True) if s >= threshold]
    positives = sum(labels)
    precision = sum(accepted) / len(accepted) if accepted else 1.0
    recall = sum(accepted) / positives if positives else 0.0
    return precision, recall


def best_threshold(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float, float]:
    """(threshold, F-beta) with the best F-beta on these pairs; the stricter one on a tie."""
    best = (0.0, -1.0)
    for t in sorted(set(scores)):
        p, r = precision_recall(scores, labels, t)
        f = (1 + BETA**2) * p * r / (BETA**2 * p + r) if p + r else 0.0
        if f >= best[1]:
            best = (t, f)
    return best


def load_pairs(path: Path = PAIRS_FILE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fit(check: SupportCheck, chunks: Sequence[Chunk], pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Score every pair, choose the score and threshold on dev, and report dev and test."""
    rows = []
    for pair in pairs:
        found = [c for c in chunks if pair["chunk"] in c.text]
        if len(found) != 1:
            raise ConfigError(f"pair {pair['id']}: {pair['chunk']!r} matches {len(found)} chunks, not 1")
        rows.append((pair, check.scores(pair["sentence"], found[0])))
    dev = [(p, s) for p, s in rows if split_of(p["id"]) == "dev"]
    test = [(p, s) for p, s in rows if split_of(p["id"]) == "test"]
    fitted = {}
    for name in SCORES:
        t, f = best_threshold([s[name] for _, s in dev], [p["supported"] for p, _ in dev])
        fitted[name] = (f, t)
    name = max(SCORES, key=lambda n: fitted[n][0])
    threshold = round(fitted[name][1] - 1e-6, 6)

    def report(part: list[tuple[dict[str, Any], dict[str, float]]]) -> dict[str, Any]:
        p, r = precision_recall([s[name] for _, s in part], [x["supported"] for x, _ in part], threshold)
        kinds: dict[str, list[bool]] = {}
        for x, s in part:
            kinds.setdefault(x["kind"], []).append(s[name] >= threshold)
        return {
            "pairs": len(part),
            "precision": round(p, 3),
            "recall": round(r, 3),
            "accepted_by_kind": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(kinds.items())},
        }

    return {
        "score": name,
        "threshold": threshold,
        "fitted": {
            "how": "python -m assistant.support fit: on the dev split of evals/data/support_pairs.jsonl, "
            f"the score and threshold with the best F-beta (beta {BETA}: precision counts double)",
            "dev_f_beta_by_score": {n: round(fitted[n][0], 3) for n in SCORES},
            "dev": report(dev),
            "test": report(test),
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m assistant.support fit` writes rules/support_check.yaml; `report` only prints."""
    from assistant.embeddings import Embedder
    from assistant.knowledge import load_chunks

    args = list(sys.argv[1:] if argv is None else argv)
    if args not in (["fit"], ["report"]):
        sys.exit("usage: python -m assistant.support fit|report")
    settings = Settings.load()
    _, chunks = load_chunks([settings.knowledge_dir], settings.chunk_size)
    check = SupportCheck(Composer(Embedder.from_settings(settings)))
    result = fit(check, chunks, load_pairs())
    print(json.dumps(result, indent=2))
    if args == ["fit"]:
        header = (
            "# Which score decides that a model's sentence is supported by the chunk it cites, and its\n"
            "# threshold (assistant/support.py). Written by `python -m assistant.support fit`; do not edit.\n"
        )
        SUPPORT_FILE.write_text(header + yaml.safe_dump(result, sort_keys=False), encoding="utf-8")


if __name__ == "__main__":
    main()
