"""Cut a message into the units the triage model scores: sentences, long sentences' clauses,
and the whole message when it is short.

A warning sign buried in a long message is one sentence among many; scored as a whole,
the message would look like its harmless majority. Each unit keeps its span, so the
reason shown quotes the person's own words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE = re.compile(r"[^.!?;\n]+[.!?;]*", re.UNICODE)
# inside a long sentence: commas and the conjunctions that start a new thought
_CLAUSE = re.compile(r",|\s(?:but|and then|so|because|though|although|pero|mais|aber|mas|ma)\s", re.I)
LONG_SENTENCE_WORDS = 25
WHOLE_MESSAGE_WORDS = 60
WHOLE_CHARS = 1000  # the scope classifier reads a message's first 1,000 characters
MAX_UNITS = 200  # the patterns still read everything; the model reads this many units of a turn at most
MAX_CONVERSATION_UNITS = 400  # ... and this many over a conversation, newest first


@dataclass(frozen=True)
class Unit:
    """A span of one user turn that the model scores on its own."""

    turn: int
    start: int
    end: int
    text: str


def units(text: str, turn: int = 0) -> list[Unit]:
    """The sentences of `text`, the clauses of its long sentences, and `text` itself when short.

    Repeated units (a pasted block, a message repeated many times) are kept once.
    """
    out: list[Unit] = []
    seen: set[str] = set()

    def add(start: int, end: int) -> None:
        while start < end and not text[start].isalnum():
            start += 1
        while end > start and not text[end - 1].isalnum():
            end -= 1
        piece = text[start:end]
        key = piece.lower()
        if len(piece) >= 2 and key not in seen and len(out) < MAX_UNITS:
            seen.add(key)
            out.append(Unit(turn, start, end, piece))

    sentences = [(m.start(), m.end()) for m in _SENTENCE.finditer(text)]
    if len(text.split()) <= WHOLE_MESSAGE_WORDS:
        add(0, len(text))
    for start, end in sentences:
        add(start, end)
        sentence = text[start:end]
        if len(sentence.split()) > LONG_SENTENCE_WORDS:
            cut = start
            for m in _CLAUSE.finditer(sentence):
                add(cut, start + m.start())
                cut = start + m.start()
            add(cut, end)
    if not out and text.strip():
        add(0, len(text))
    return out


def window(text: str, unit: Unit) -> Unit:
    """The unit's sentence(s) with one sentence either side: the context the gate reads.

    Local on purpose: "almost fell ... but caught myself, zero pain" is judged with its
    own next words, and a sign buried in a long message is not drowned by the rest.
    """
    spans = [(m.start(), m.end()) for m in _SENTENCE.finditer(text)] or [(0, len(text))]
    first = max([i for i, (a, _) in enumerate(spans) if a <= unit.start] or [0])
    last = max([i for i, (a, _) in enumerate(spans) if a < unit.end] or [first])
    start, end = spans[max(0, first - 1)][0], spans[min(len(spans) - 1, last + 1)][1]
    if end - start > WHOLE_CHARS:  # very long sentences: the WHOLE_CHARS around the unit
        centre = (unit.start + unit.end) // 2
        start = max(start, min(centre - WHOLE_CHARS // 2, end - WHOLE_CHARS))
        end = start + WHOLE_CHARS
    return Unit(unit.turn, start, end, text[start:end].strip())


def sentence_units(text: str, turn: int = 0) -> list[Unit]:
    """Each sentence of `text` as a unit (the gate's training windows are built around them)."""
    return [Unit(turn, m.start(), m.end(), m.group()) for m in _SENTENCE.finditer(text) if m.group().strip()]
