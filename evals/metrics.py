"""Metric functions: pure, deterministic, and small enough to check by hand.

Passages are matched by text, not by chunk id, so the same dataset scores any
chunking (ours, the baseline's 1,000/200 splitter, a future one). Matching is
on `normalize`d text: case, quotes, Markdown emphasis, list markers and
whitespace are ignored, nothing else.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "—": "-", "–": "-", "\u00a0": " "})
_MARKUP = re.compile(r"\*\*|__|(?<!\w)_(?!\w)|`")
_LIST_MARKER = re.compile(r"(?m)^\s*(?:(?:[-*•·]|\d+\.)\s+)+")
_HEADING = re.compile(r"(?m)^\s*#{1,6}\s+")
_SPACE = re.compile(r"\s+")
CITATION = re.compile(r"\[(\d+)\]")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Short function words carry no claim; coverage is measured on the rest.
_STOP = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "for", "with", "by", "from", "as", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "you", "your", "i", "my", "me", "we", "our", "he", "she", "they", "them", "his", "her", "their", "so", "than", "then", "too", "very", "can", "will", "would", "should", "could", "do", "does", "did", "not", "no", "up", "down", "out", "over", "into", "about"]
)


def normalize(text: str) -> str:
    """Lower-cased text with quotes unified and Markdown markup, list markers and runs of space removed."""
    text = text.translate(_QUOTES)
    text = _HEADING.sub("", text)
    text = _LIST_MARKER.sub("", text)
    text = _MARKUP.sub("", text)
    return _SPACE.sub(" ", text).strip().lower()


def contains(haystack: str, needle: str) -> bool:
    """True when `needle` appears in `haystack` after normalising both."""
    n = normalize(needle).strip(" .,;:!?")
    return bool(n) and n in normalize(haystack)


# -- retrieval -----------------------------------------------------------------
def first_relevant_rank(retrieved: Sequence[str], references: Sequence[str]) -> int | None:
    """1-based rank of the first retrieved text containing any reference passage, else None."""
    for rank, text in enumerate(retrieved, start=1):
        if any(contains(text, ref) for ref in references):
            return rank
    return None


def hit_rate_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Share of questions with a relevant passage in the top k."""
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mean_reciprocal_rank(ranks: Sequence[int | None]) -> float:
    """Mean of 1/rank of the first relevant passage (0 when none was retrieved)."""
    if not ranks:
        return 0.0
    return sum(1.0 / r for r in ranks if r is not None) / len(ranks)


def recall_at_k(retrieved: Sequence[str], references: Sequence[str], k: int) -> float:
    """Share of a question's reference passages found in its top k retrieved texts."""
    if not references:
        return 0.0
    top = retrieved[:k]
    return sum(1 for ref in references if any(contains(t, ref) for t in top)) / len(references)


# -- triage --------------------------------------------------------------------
def confusion_matrix(
    expected: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> list[list[int]]:
    """Counts by (expected row, predicted column), rows and columns in `labels` order."""
    from sklearn.metrics import confusion_matrix as sk_confusion

    if not expected:
        return [[0] * len(labels) for _ in labels]
    return sk_confusion(list(expected), list(predicted), labels=list(labels)).tolist()


def per_class(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall and support per label from a confusion matrix (0.0 when undefined)."""
    m = np.asarray(matrix, dtype=float)
    out = {}
    for i, label in enumerate(labels):
        tp, row, col = m[i, i], m[i].sum(), m[:, i].sum()
        out[label] = {
            "precision": float(tp / col) if col else 0.0,
            "recall": float(tp / row) if row else 0.0,
            "support": int(row),
        }
    return out


# -- answers -------------------------------------------------------------------
@dataclass(frozen=True)
class Statement:
    """One line or sentence of an answer and the citation numbers that follow it."""

    text: str
    markers: tuple[int, ...]


def statements(answer: str) -> list[Statement]:
    """Claims of an answer: the text of each line up to each `[n]` marker group it carries.

    A marker covers the text since the previous marker on its line (so a numbered
    step of three sentences ending in `[1]` is one claim); text after the last
    marker, or a line without one, is an uncited claim. Lead-ins ending in ':',
    bold headings and italic notes (`_..._`, the disclaimer convention) are not
    claims and are left out.
    """
    out: list[Statement] = []
    for line in answer.splitlines():
        line = line.strip()
        if not line or line.endswith(":") or re.fullmatch(r"\*\*[^*]+\*\*", line):
            continue
        if re.fullmatch(r"_[^_].*_", line):
            continue
        pieces = re.split(r"((?:\s*\[\d+\])+)", line)
        for text, group in zip(pieces[0::2], [*pieces[1::2], ""], strict=True):
            text = text.strip()
            if re.search(r"[A-Za-z]", text):
                out.append(Statement(text, tuple(int(m) for m in CITATION.findall(group))))
    return out


def _attribution_variants(text: str) -> list[str]:
    """The statement, and the statement without an 'Expert Name, DPT: ' prefix."""
    variants = [text]
    if ": " in text:
        variants.append(text.split(": ", 1)[1])
    return variants


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(normalize(text)) if w not in _STOP]


def coverage(statement: str, source: str) -> float:
    """Share of the statement's content words that occur in the source text."""
    words = content_words(statement)
    if not words:
        return 1.0
    vocab = set(_WORD.findall(normalize(source)))
    return sum(1 for w in words if w in vocab) / len(words)


def is_supported(statement: str, source: str, min_coverage: float = 0.8) -> bool:
    """Supported: the source contains the statement, or ≥ min_coverage of its content words."""
    variants = _attribution_variants(statement)
    if any(contains(source, v) for v in variants):
        return True
    return max(coverage(v, source) for v in variants) >= min_coverage


@dataclass(frozen=True)
class CitationCheck:
    markers: int  # [n] markers in the answer
    valid: int  # markers that resolve and whose chunk contains the sentence
    statements: int  # claims (see `statements`)
    supported: int  # claims supported by one of their cited chunks
    unresolved: tuple[int, ...]  # marker numbers with no citation entry
    failures: tuple[str, ...]  # claims that failed, for the report


def check_answer(
    answer: str | Sequence[Statement],
    citations: Sequence[str],
    min_coverage: float = 0.8,
    policy_text: Sequence[str] = (),
) -> CitationCheck:
    """Citation validity and faithfulness of one answer.

    `answer` is the answer's claims as the system reports them (each statement with the
    citation numbers it carries: `SystemAnswer.claims`), so nothing is parsed back out of
    rendered text. A string (a free-text answer, a stored feedback record) is split into
    claims by `statements`.

    Statements made of the triage policy's own wording (`policy_text`: the referral
    and the reasons, which the assistant puts before the advice) are not claims
    from the knowledge base and are skipped.

    `citations[i]` is the text of citation number i+1. A marker is valid when its
    number resolves and that chunk contains the sentence it follows (verbatim, after
    `normalize`; an expert attribution prefix may be dropped). A statement is
    supported when one of its cited chunks supports it (`is_supported`); an uncited
    statement is unsupported.
    """
    markers = valid = supported = 0
    unresolved: list[int] = []
    failures: list[str] = []
    policy = " ".join(policy_text)
    claims = [
        st for st in (statements(answer) if isinstance(answer, str) else answer)
        if not (policy and not st.markers and coverage(st.text, policy) >= min_coverage)
    ]
    for st in claims:
        ok_support = False
        for n in st.markers:
            markers += 1
            if not 1 <= n <= len(citations):
                unresolved.append(n)
                continue
            source = citations[n - 1]
            if any(contains(source, v) for v in _attribution_variants(st.text)):
                valid += 1
            if is_supported(st.text, source, min_coverage):
                ok_support = True
        supported += ok_support
        if not ok_support:
            failures.append(st.text[:160])
    return CitationCheck(markers, valid, len(claims), supported, tuple(unresolved), tuple(failures))


def words(text: str) -> int:
    """Words a reader sees (citation markers and Markdown left out)."""
    return len(normalize(CITATION.sub("", text)).split())


def fact_recall(response: str, facts: Sequence[str]) -> float | None:
    """Share of key facts stated in the response (None when the case lists none)."""
    if not facts:
        return None
    return sum(1 for f in facts if contains(response, f)) / len(facts)


def stated(response: str, phrases: Sequence[str]) -> list[str]:
    """The phrases (forbidden facts) that the response states."""
    return [p for p in phrases if contains(response, p)]


# -- summaries -----------------------------------------------------------------
def mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100, linear interpolation), 0.0 for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else 0.0
