"""Turn the chat page's exported feedback into answer-suite cases.

The page exports JSON Lines with `user_input`, `response`, `citations`,
`rating` and `comment`. A thumbs-up answer becomes a ready case: its cited
statements (verbatim article text) become the key facts a future answer must
keep stating. A thumbs-down answer cannot say what the right answer is, so it
becomes a draft (`review: true`, the comment in `notes`) that the suites skip
until someone writes its key facts and removes the flag.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from evals.metrics import CITATION, contains, normalize, statements
from evals.schema import AnswerCase, FeedbackRecord, load_cases, read_records

MAX_FACTS = 3
_MARKER = re.compile(r"^(?:[-*]\s+|\d+\.\s+)+")  # list bullets and step numbers
_UP = {"up", "+1", "1", "true", "good", "positive", "like", "helpful", "👍", "thumbs_up"}


def is_positive(rating: Any) -> bool:
    if isinstance(rating, bool):
        return rating
    if isinstance(rating, int | float):
        return rating > 0
    return str(rating).strip().lower() in _UP


def _citation_texts(citations: list[Any]) -> list[str]:
    texts = []
    for c in citations:
        if isinstance(c, dict):
            texts.append(str(c.get("text") or c.get("content") or ""))
        else:
            texts.append(str(c))
    return texts


def to_case(record: FeedbackRecord) -> AnswerCase:
    """One feedback record as an answer case (ready when rated up, a draft otherwise)."""
    cid = "fb-" + hashlib.sha256(normalize(record.user_input).encode()).hexdigest()[:10]
    texts = _citation_texts(record.citations)
    positive = is_positive(record.rating)
    facts: list[str] = []
    for st in statements(record.response):
        text = _MARKER.sub("", CITATION.sub("", st.text).strip())
        text = text.split(": ", 1)[-1] if ": " in text else text
        cited = [texts[n - 1] for n in st.markers if 1 <= n <= len(texts)]
        if text and any(contains(t, text) for t in cited) and text not in facts:
            facts.append(text)
    covered = bool(texts) and bool(CITATION.search(record.response))
    return AnswerCase(
        id=cid,
        user_input=record.user_input,
        covered=covered,
        key_facts=facts[:MAX_FACTS] if positive else [],
        forbidden_facts=[],
        reference=record.response if positive else "",
        review=not positive,
        notes=f"from page feedback (rating={record.rating!r}): {record.comment}".strip(),
        tags=["feedback"],
    )


def add_feedback(source: Path, target: Path, *, dry_run: bool = False) -> list[AnswerCase]:
    """Append new cases from a feedback export to an answers data file; returns what was added.

    Questions already in the target (same normalised text) are skipped.
    """
    existing = load_cases(target, AnswerCase) if target.exists() else []
    seen = {normalize(c.user_input) for c in existing} | {c.id for c in existing}
    added: list[AnswerCase] = []
    for row in read_records(source):
        case = to_case(FeedbackRecord.model_validate(row))
        key = normalize(case.user_input)
        if key in seen or case.id in seen:
            continue
        seen |= {key, case.id}
        added.append(case)
    if added and not dry_run:
        with target.open("a", encoding="utf-8") as f:
            for case in added:
                row = case.model_dump(exclude_defaults=True)
                row.setdefault("covered", case.covered)
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return added
