"""Read the conversation a client sends, whatever shape it arrives in.

A history is a list of `{"role": "user"|"assistant", "content": "..."}` objects. Clients get
it wrong (a string, a dict, entries that are not objects, other roles, content as a list of
parts, thousands of turns); triage must still read every user word it can before the request
is refused, because a warning sign said earlier must not be lost to a formatting mistake.
So reading never raises: it returns the turns it could read and the problems it found, and
`Assistant.ask` decides (a referral when triage escalates, else a clear error).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.types import Turn

SHAPE = 'a list of {"role": "user" or "assistant", "content": "..."} objects'
_MAX_PROBLEMS = 3  # an error names the first few problems, not five thousand


@dataclass
class History:
    """What could be read from a client's history, oldest first.

    `turns` are the well-formed turns; `triage_texts` are the words of every user turn that
    could be read at all (also from malformed entries), however old, newest last;
    `problems` say what was wrong, by entry number (1-based).
    """

    turns: list[Turn] = field(default_factory=list)
    triage_texts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def problem(self) -> str:
        """One sentence naming what was wrong and what shape is expected."""
        shown = self.problems[:_MAX_PROBLEMS]
        more = len(self.problems) - len(shown)
        extra = f" (and {more} more)" if more > 0 else ""
        return (
            f"The conversation history could not be read: {'; '.join(shown)}{extra}. "
            f"Send history as {SHAPE}."
        )


def _text_of(content: Any) -> str | None:
    """The text of a content field: a string, or a list of strings / {"text": ...} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        parts = [
            p if isinstance(p, str) else p.get("text") if isinstance(p, Mapping) else None for p in content
        ]
        texts = [p for p in parts if isinstance(p, str)]
        return " ".join(texts) if texts else None
    return None


def read_history(raw: Any, *, max_turns: int, max_chars: int) -> History:
    """Read `raw` leniently.

    Well-formed turns are kept for answering (the last `max_turns`, and no more of them than
    fit in `max_chars`); the text of every user
    turn that can be read, also from a malformed entry, goes to triage, however old: the
    limits bound what is answered, never what is checked for warning signs. Assistant turns
    are never triaged (our own replies name warning signs).
    """
    out = History()
    if raw is None:
        return out
    if isinstance(raw, str | bytes | bytearray):
        out.problems.append(f"history is {type(raw).__name__}, not a list")
        return out
    if isinstance(raw, Mapping):
        out.problems.append("history is a single object, not a list")
        entries: list[Any] = [raw]
    elif isinstance(raw, Sequence):
        entries = list(raw)
    else:
        out.problems.append(f"history is {type(raw).__name__}, not a list")
        return out

    user_texts: list[str] = []
    for i, entry in enumerate(entries, start=1):
        if isinstance(entry, Turn):
            out.turns.append(entry)
            if entry.role == "user":
                user_texts.append(entry.content)
            continue
        if not isinstance(entry, Mapping):
            out.problems.append(f"entry {i} is {_kind(entry)}, not an object")
            continue
        role, content = entry.get("role"), entry.get("content")
        text = _text_of(content)
        if role == "user" and text is not None:
            user_texts.append(text)
        if role not in ("user", "assistant"):
            out.problems.append(f"entry {i} has role {str(role)[:40]!r}, not 'user' or 'assistant'")
        elif not isinstance(content, str):
            out.problems.append(f"entry {i} has content that is {_kind(content)}, not a string")
        else:
            out.turns.append(Turn(role=role, content=content))
    kept_turns: list[Turn] = []
    room = max_chars
    for turn in reversed(out.turns[-max_turns:] if max_turns > 0 else []):
        room -= len(turn.content)
        if room < 0:
            break
        kept_turns.append(turn)
    out.turns = kept_turns[::-1]

    out.triage_texts = user_texts  # all: a sign said long ago still counts (triage bounds its cost)
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {str: "a string", list: "a list", dict: "an object", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )
