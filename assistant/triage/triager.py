"""Red-flag triage of a conversation: patterns first, then the learned model, then one decision.

Every user turn is read (assistant turns never are), so a sign said earlier still counts
and nothing typed later lowers the level.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from assistant.config import Settings
from assistant.text import plain_text
from assistant.triage.corpus import NONE
from assistant.triage.decide import Analysis, decide
from assistant.triage.first_person import FirstPerson
from assistant.triage.lay_words import LayWords
from assistant.triage.model import Scores, Thresholds, TriageModel
from assistant.triage.patterns import PatternMatcher
from assistant.triage.policy import LANGUAGES, TriagePolicy
from assistant.triage.segment import MAX_CONVERSATION_UNITS, WHOLE_CHARS, Unit, units, window
from assistant.triage.typed_words import TypedWords
from assistant.types import Triage, Turn

log = logging.getLogger(__name__)
_CACHE_SIZE = 4096
_EDGE = " \t\n.,;:!?\"'()[]"


class EmbedderLike(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class Triager:
    """Decides the triage level of a message in its conversation.

    Example:
        >>> triager = Triager.from_settings(Settings.load(), Embedder())
        >>> triager.assess("I peed myself a little on the treadmill").level
        <TriageLevel.EMERGENCY: 'emergency'>
    """

    def __init__(
        self,
        policy: TriagePolicy,
        model: TriageModel | None = None,
        embedder: EmbedderLike | None = None,
        known_words: set[str] | None = None,
    ) -> None:
        self.policy = policy
        self.model = model
        self.embedder = embedder
        self.patterns = PatternMatcher(policy, known_words)
        self.lay = LayWords(policy.model.lay_words, model.lay_seen if model is not None else ())
        self.typed = TypedWords(
            policy.model.shorthand,
            [code for code in LANGUAGES if code != "en"],
            model.learned_words() if model is not None else (),
        )
        self.first_person = FirstPerson(policy.model.first_person)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def thresholds(self) -> Thresholds:
        return self.model.thresholds if self.model is not None else Thresholds()

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Any = None) -> Triager:
        """Load the policy and the model trained from the corpus (training it once if needed).

        Raises:
            ConfigError: the policy or the corpus is invalid; the message says what to fix.
        """
        from assistant.triage.train import ensure_model

        policy = TriagePolicy.load(settings.triage_rules)
        model = ensure_model(settings, policy, embedder) if embedder is not None else None
        return cls(policy, model, embedder, known_words(embedder))

    # -- public ------------------------------------------------------------------------

    def assess(
        self,
        message: str,
        history: Sequence[Turn | dict[str, Any]] = (),
        *,
        message_vector: np.ndarray | None = None,
    ) -> Triage:
        """Triage `message` in the context of `history` (only user turns are read).

        Args:
            message: the current message (any length: triage reads it all before limits apply).
            history: earlier turns, oldest first.
            message_vector: the embedder's unit vector of `message`, if already computed.
        """
        return decide(
            self.analyse(message, history, message_vector=message_vector), self.policy, self.thresholds
        )

    def analyse(
        self,
        message: str,
        history: Sequence[Turn | dict[str, Any]] = (),
        *,
        message_vector: np.ndarray | None = None,
    ) -> Analysis:
        """Everything the decision needs: pattern hits and model scores for every user turn."""
        turns = [t if isinstance(t, Turn) else Turn.coerce(t) for t in history]
        texts = [plain_text(t.content) for t in turns if t.role == "user"] + [plain_text(message)]
        current = len(texts) - 1
        analysis = Analysis(current_turn=current)
        analysis.pattern_hits = self.patterns.find(texts)
        analysis.request = self.patterns.request(texts[current])
        analysis.texts = texts
        if self.model is not None and self.embedder is not None:
            try:
                self._score(analysis, texts, message_vector)
            except Exception:  # the patterns' verdict still stands; the referral must survive
                log.exception("the triage model failed; deciding from the backstop patterns alone")
                analysis.units, analysis.scope = [], {}
        return analysis

    # -- internals ---------------------------------------------------------------------

    def _score(self, analysis: Analysis, texts: list[str], message_vector: np.ndarray | None) -> None:
        """The model's scores for every unit of every user turn, and the current message's scope."""
        assert self.model is not None
        current = analysis.current_turn
        pieces = _newest_units(texts)
        whole = texts[current][:WHOLE_CHARS]
        known: dict[str, np.ndarray | None] = {}
        if whole == texts[current]:  # the vector given is the whole message's
            known[whole] = message_vector
            for u in pieces:  # the message itself, bar its closing "?"
                if u.turn == current and u.text == whole.strip(_EDGE):
                    known[u.text] = message_vector
        windows = [window(texts[u.turn], u).text for u in pieces]
        scored = [u.text for u in pieces]
        seen = set(scored)
        names = scored + [w for w in dict.fromkeys([whole, *windows]) if w not in seen]
        turn_of = {u.text: u.turn for u in pieces}
        for w, u in zip(windows, pieces, strict=True):
            turn_of.setdefault(w, u.turn)
        turn_of.setdefault(whole, current)
        scores = self._read_again(
            names,
            [turn_of[n] for n in names],
            analysis.language,
            self.model.score(names, self._vectors(names, known)),
        )
        row = {name: i for i, name in enumerate(names)}
        analysis.units = pieces
        analysis.classes = self.model.classes
        analysis.proba = scores.proba[: len(pieces)]
        analysis.other = scores.other[: len(pieces)]
        analysis.gate = scores.gate[[row[w] for w in windows]] if pieces else np.ones(0)
        # a unit too long to be read with its context is never weighed down by the gate
        analysis.gate[[i for i, u in enumerate(pieces) if len(u.text) > WHOLE_CHARS]] = 1.0
        analysis.gate_weight = self.model.gate_weight
        analysis.scope = scores.scope[row[whole]] if scores.scope else {}

    def _read_again(
        self, names: list[str], turns: list[int], language: Callable[[int], str], scores: Scores
    ) -> Scores:
        """Each text read again as meant.

        * In an English turn, chat shorthand and typos as the words meant (`TypedWords`), and
          someone else's signs as the person's own (`FirstPerson`: "his legs" -> "my legs"): each
          sign's probability is the mean of the two readings'. A second reading is a second
          chance to be read right, and with the larger of the two it was also a second chance
          to cross a threshold: dev's false alarms rose 0.088 -> 0.094, against 0.091 with the
          mean, which keeps most of what it finds (see README).
        * In any turn, clinical words with their everyday companions (`LayWords`), read after
          the typed words: each sign's probability is the larger of the readings', so no
          level's score is lower than without the companions.

        Scope and who is spoken of stay as written."""
        assert self.model is not None
        signs = [k for k, c in enumerate(self.model.classes) if c != NONE]
        typed: dict[int, str] = {}
        for i, (name, turn) in enumerate(zip(names, turns, strict=True)):
            read = self.first_person(self.typed(name))
            if read != name and language(turn) == "en":  # the language is detected only where it matters
                typed[i] = read
        self._combine(scores, typed, signs, lambda mine, again: (mine + again) / 2)
        lay = {i: self.lay(typed.get(i, name)) for i, name in enumerate(names)}
        lay = {i: read for i, read in lay.items() if read != typed.get(i, names[i])}
        self._combine(scores, lay, signs, np.maximum)
        return scores

    def _combine(
        self, scores: Scores, reading: dict[int, str], signs: list[int], how: Callable[[Any, Any], Any]
    ) -> None:
        """Score the texts of `reading` (row -> text) and combine each sign's probability and the
        gate with the row's own by `how`; "no sign" is what the signs leave."""
        assert self.model is not None
        if not reading:
            return
        rows, texts = list(reading), list(reading.values())
        again = self.model.score(texts, self._vectors(texts, {}))
        none = self.model.classes.index(NONE) if len(signs) < len(self.model.classes) else None
        for j, i in enumerate(rows):
            scores.proba[i, signs] = how(scores.proba[i, signs], again.proba[j, signs])
            if none is not None:
                scores.proba[i, none] = max(0.0, 1.0 - float(scores.proba[i, signs].sum()))
            scores.gate[i] = float(how(scores.gate[i], again.gate[j]))

    def _vectors(self, texts: list[str], known: Mapping[str, np.ndarray | None]) -> np.ndarray:
        """Embed texts, reusing cached vectors so history turns are not embedded again."""
        assert self.embedder is not None
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        with self._lock:
            cached = {t: self._cache[t] for t in texts if t in self._cache}
        cached.update({t: np.asarray(v, dtype=np.float32) for t, v in known.items() if v is not None})
        missing = list(dict.fromkeys(t for t in texts if t not in cached))
        if missing:
            cached.update(zip(missing, self.embedder.encode(missing), strict=True))
        with self._lock:
            for t in texts:
                self._cache[t] = cached[t]
                self._cache.move_to_end(t)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return np.stack([cached[t] for t in texts])


def _newest_units(texts: list[str]) -> list[Unit]:
    """The units the model scores: the current message's first, then earlier turns, newest
    first, up to MAX_CONVERSATION_UNITS, so a 5,000-turn history costs no more than a long chat.
    The patterns still read every turn whole."""
    picked: list[Unit] = []
    for turn in range(len(texts) - 1, -1, -1):
        room = MAX_CONVERSATION_UNITS - len(picked)
        if room <= 0:
            break
        picked.extend(units(texts[turn], turn)[:room])
    return sorted(picked, key=lambda u: (u.turn, u.start))


def known_words(embedder: Any) -> set[str] | None:
    """Real words (the embedding model's word list), so the speller never 'fixes' them."""
    path = getattr(embedder, "model_path", None)
    if path is None or not (path / "tokenizer.json").is_file():
        return None
    from tokenizers import Tokenizer

    return {w for w in Tokenizer.from_file(str(path / "tokenizer.json")).get_vocab() if w.isalpha()}
