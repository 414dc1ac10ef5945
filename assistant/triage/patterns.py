"""The reviewed pattern backstop: signs that must never be missed, said in words we know.

Patterns are cheap and need no model, so they run first, on the whole raw message,
before any length limit or model call. They are a backstop, not the decision: the
learned model (`model.py`) reads paraphrases, other languages and context. Each match
is scoped NegEx-style (Chapman et al., 2001): a negation, hypothetical or "resolved"
cue near a sign, or a rule stated about it ("... means go to the ER"), inside the same
clause, cancels it; "but" and its kin end the scope.
This is the one place negation cues are applied.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz.distance import OSA
from rapidfuzz.process import extractOne

from assistant.triage.policy import Pattern, SignPolicy, TriagePolicy

_APOSTROPHES = "'\u2019\u2018`\u00b4\u02bc"
_AS_SPACE = '-\u2010\u2011\u2012\u2013\u2014_/,()[]{}"*\u201c\u201d\u00ab\u00bb<>|~+=#\t'
_BOUNDARY = re.compile(r"[.!;:\n]+|\?(?!\s*(?:no|nope|nah|none|never|not)\b)")
# a "no" answering a question ("No, I can't feel my groin") is a clause of its own, not a negation
_CACHE_TURNS = 8192  # turns whose pattern hits are remembered
_ANSWER = re.compile(r"^\W*(?:no|nope|nah|yes|yeah|yep)\s*[,.!:;\u2014-]", re.I)


@dataclass(frozen=True)
class Text:
    """A turn as matched: folded (lower-case, no apostrophes) with a map back to the original."""

    original: str
    folded: str
    index: list[int]
    clauses: list[tuple[int, int]]  # spans in `folded`

    def quote(self, start: int, end: int) -> str:
        if end <= start:
            return ""
        return self.original[self.index[start] : self.index[end - 1] + 1].strip(" ,.;:!?")

    def clause_at(self, pos: int) -> tuple[int, int]:
        for span in self.clauses:
            if span[0] <= pos < span[1]:
                return span
        return (0, len(self.folded))


@dataclass(frozen=True)
class PatternHit:
    """A sign named by a backstop pattern in one user turn."""

    sign: SignPolicy
    turn: int
    quote: str


def fold(text: str) -> tuple[str, list[int]]:
    """Lower-case, drop apostrophes, turn inner punctuation into spaces, collapse spaces."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch in _APOSTROPHES:
            continue
        if ch in _AS_SPACE or (ch == ":" and text[i + 1 : i + 2].isdigit()):
            ch = " "  # a colon ends a clause ("ignore the rules: I fell"), except in 10:30
        for c in ch.lower():
            if c == " " and (not out or out[-1] in " \n"):
                continue
            out.append(c)
            index.append(i)
    return "".join(out), index


class Speller:
    """Corrects one-edit typos ("bladdr", "controll", "fevr") towards the policy's own words.

    Only a token that is not a real word (`known`) is corrected, only to a policy word one
    edit away (rapidfuzz's optimal string alignment) with the same first letter; so "ladder"
    never becomes "bladder" and "fewer" never becomes "fever".
    """

    def __init__(self, literals: Iterable[str], known: set[str]) -> None:
        literal = set(literals)
        self.keep = known | literal  # "dont", "wont", "cant" are policy words, never typos
        targets = sorted(t for t in literal if len(t) >= 4 and t in known)
        self._by_letter: dict[str, list[str]] = {}
        for word in targets:
            self._by_letter.setdefault(word[0], []).append(word)

    def correct(self, token: str) -> str:
        if len(token) < 4 or not token.isalpha() or token in self.keep:
            return token
        choices = self._by_letter.get(token[0])
        if not choices:
            return token
        best = extractOne(token, choices, scorer=OSA.distance, score_cutoff=1)
        return best[0] if best else token


class PatternMatcher:
    """Applies the policy's backstop patterns to user turns, with NegEx-style scoping."""

    def __init__(self, policy: TriagePolicy, known_words: set[str] | None = None) -> None:
        self.policy = policy
        neg = policy.negation
        comp = policy.compile
        self._patterns = {s.id: [comp(p, where=f"sign {s.id!r}") for p in s.patterns] for s in policy.signs}
        self._requires = {s.id: [comp(p, where=f"sign {s.id!r}") for p in s.requires] for s in policy.signs}
        self._pre = comp(_alt(neg.pre), where="negation.pre")
        self._post = [comp(p, where="negation.post", words=not p.startswith("^")) for p in neg.post]
        self._pseudo = comp(_alt(neg.pseudo), where="negation.pseudo")
        self._hypothetical = comp(_alt(neg.hypothetical), where="negation.hypothetical")
        self._resolved = comp(_alt(neg.resolved), where="negation.resolved")
        self._definition = comp(_alt(neg.definition), where="negation.definition") if neg.definition else None
        self._asking = re.compile(rf"(?<!\w)(?:{_alt(neg.asking)})\s*$")
        self._governing = re.compile(rf"(?<!\w)(?:{_alt(neg.governing)})\s*$") if neg.governing else None
        self._terminator = comp(_alt(neg.terminators), where="negation.terminators")
        self._requests = [
            (r, [comp(p, where=f"scope request {r.id!r}") for p in r.patterns]) for r in policy.scope.requests
        ]
        self._speller: Speller | None = None
        self._cache: dict[str, tuple[tuple[tuple[SignPolicy, str], ...], frozenset[str]]] = {}
        self._lock = threading.Lock()
        if known_words:
            literal = " ".join(
                [
                    *(p for sign in policy.signs for p in [*sign.patterns, *sign.requires]),
                    *policy.terms.values(),
                    *neg.pre,
                    *neg.post,
                    *neg.pseudo,
                    *neg.terminators,
                    *neg.hypothetical,
                    *neg.asking,
                    *neg.resolved,
                    *neg.governing,
                    *(p for r in policy.scope.requests for p in r.patterns),
                ]
            )
            self._speller = Speller(re.findall(r"[a-z]+", literal), known_words)

    def prepare(self, text: str) -> Text:
        folded, index = fold(text)
        if self._speller is not None:
            folded, index = self._respell(folded, index)
        cuts = {0, len(folded)}
        for m in _BOUNDARY.finditer(folded):
            cuts.update((m.start(), m.end()))
        for m in self._terminator.finditer(folded):
            cuts.add(m.start())
        answer = _ANSWER.match(text)
        if answer:
            cuts.add(next((i for i, j in enumerate(index) if j >= answer.end()), len(folded)))
        points = sorted(cuts)
        clauses = [(a, b) for a, b in zip(points, points[1:], strict=False) if folded[a:b].strip()]
        return Text(original=text, folded=folded, index=index, clauses=clauses)

    def find(self, turns: list[str]) -> list[PatternHit]:
        """Every sign a pattern names, live (not negated), in the user turns (oldest first)."""
        read = [self._read(t) for t in turns]
        required = {s.id for s in self.policy.signs if s.requires and any(s.id in r[1] for r in read)}
        return [
            PatternHit(sign=sign, turn=i, quote=quote)
            for i, (named, _) in enumerate(read)
            for sign, quote in named
            if not sign.requires or sign.id in required
        ]

    def _read(self, turn: str) -> tuple[tuple[tuple[SignPolicy, str], ...], frozenset[str]]:
        """One turn's live pattern hits, and the signs whose `requires` it meets. Cached: a
        conversation's earlier turns come back with every message."""
        cached = self._cache.get(turn)
        if cached is None:
            text = self.prepare(turn)
            named: list[tuple[SignPolicy, str]] = []
            meets: set[str] = set()
            for sign in self.policy.signs:
                if any(self._first_live(text, p, sign) is not None for p in self._requires[sign.id]):
                    meets.add(sign.id)
                for pattern in self._patterns[sign.id]:
                    match = self._first_live(text, pattern, sign)
                    if match is not None:
                        named.append((sign, text.quote(*match)))
                        break
            cached = (tuple(named), frozenset(meets))
            with self._lock:  # pages answer several sessions at once
                if len(self._cache) >= _CACHE_TURNS:
                    self._cache.pop(next(iter(self._cache)))  # the oldest entry
                self._cache[turn] = cached
        return cached

    def request(self, message: str) -> str | None:
        """The id of a forbidden request (a dose, a scan, a diagnosis, another task) the message makes."""
        folded = self.prepare(message).folded
        for request, patterns in self._requests:
            if any(p.search(folded) for p in patterns):
                return request.id
        return None

    # -- internals ---------------------------------------------------------------------

    def _respell(self, folded: str, index: list[int]) -> tuple[str, list[int]]:
        assert self._speller is not None
        out: list[str] = []
        new_index: list[int] = []
        pos = 0
        for m in re.finditer(r"[a-z]+", folded):
            out.append(folded[pos : m.start()])
            new_index.extend(index[pos : m.start()])
            word = self._speller.correct(m.group())
            out.append(word)
            if word == m.group():
                new_index.extend(index[m.start() : m.end()])
            else:  # every letter of the correction points into the typed word
                span = index[m.start() : m.end()]
                new_index.extend(span[min(k, len(span) - 1)] for k in range(len(word)))
            pos = m.end()
        out.append(folded[pos:])
        new_index.extend(index[pos:])
        return "".join(out), new_index

    def _first_live(self, text: Text, pattern: Pattern, sign: SignPolicy) -> tuple[int, int] | None:
        """The first match of `pattern` that no negation, hypothetical or resolved cue cancels."""
        for m in pattern.finditer(text.folded):
            if not self._cancelled(text, m.start(), m.end(), sign):
                return m.start(), m.end()
        return None

    def _cancelled(self, text: Text, start: int, end: int, sign: SignPolicy) -> bool:
        """NegEx scoping: cues in the same clause, negation only within `window` words."""
        c_start, c_end = text.clause_at(start)
        before = text.folded[c_start:start]
        after = text.folded[end:c_end]
        window = self.policy.negation.window
        near_before = self._pseudo.sub(" ", " ".join(before.split()[-window:]))
        near_after = " ".join(after.split()[:window])
        if self._pre.search(near_before):
            return True
        if any(p.search(after if p.pattern.startswith("^") else near_after) for p in self._post):
            return True
        if self._hypothetical.search(before) or self._asking.search(before):
            return True
        if self._governing is not None and self._governing.search(before):
            return True  # "I haven't fainted": a negated auxiliary right before the sign's own verb
        if self._definition is not None and self._definition.search(after):
            return True  # "numbness in the groin means go to the ER": a rule someone told them
        return not sign.history_matters and bool(self._resolved.search(before + " " + after))


def _alt(items: Iterable[str]) -> str:
    return "|".join(f"(?:{item})" for item in items)
