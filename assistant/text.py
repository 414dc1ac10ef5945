"""Normalise what people type so that triage and retrieval see the words, not the tricks.

Zero-width and right-to-left control characters, full-width letters and HTML tags
can hide a red flag from a pattern; they are removed here, once, for every shell.
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

import regex

from assistant.errors import InputError

_SPACES = re.compile(r"[ \t\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")
# Format characters (zero-width, bidi controls, BOM, soft hyphen) and control codes but newline
# and tab. The `regex` library knows Unicode categories: one C-level pass, where a loop over
# `unicodedata.category` cost ~0.1 s for a 100,000-character message.
_INVISIBLE = regex.compile(r"[\p{Cf}\p{Cc}--[\n\t]]", regex.V1)


def strip_invisible(text: str) -> str:
    """Drop format characters (zero-width, bidi controls, BOM, soft hyphen) and control codes."""
    return _INVISIBLE.sub("", text)


def looks_binary(text: str) -> bool:
    """True for text that is mostly control or replacement characters (a pasted binary file)."""
    if not text:
        return False
    bad = sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\n\t\r"))
    return "\x00" in text or bad / len(text) > 0.1


def normalize(text: str) -> str:
    """NFKC-normalise, drop invisible characters and collapse runs of spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = strip_invisible(text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


class _Words(HTMLParser):
    """Collects the text of an HTML fragment; script and style bodies are not words."""

    _SKIP = frozenset({"script", "style", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def plain_text(text: str) -> str:
    """The words of a message with HTML tags and entities removed (for analysis, not display).

    A real HTML parser, not a regular expression: "pain < 1 week, groin numb, temp > 38"
    keeps every word, because "< 1" does not open a tag.
    """
    if "<" not in text and "&" not in text:
        return normalize(text)
    parser = _Words()
    parser.feed(text)
    parser.close()
    return normalize("".join(parser.parts))


def as_text(raw: object) -> str:
    """The message as normalised text, of any length (triage reads it all before limits apply).

    Raises:
        InputError: the message is not text, or is binary data.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError("The message is binary data, not text. Please type a question.") from exc
    if not isinstance(raw, str):
        raise InputError(f"The message must be text, got {type(raw).__name__}.")
    if looks_binary(raw):
        raise InputError("The message looks like binary data, not text. Please type a question.")
    # a lone surrogate ("\ud800") cannot be encoded anywhere downstream: replace it
    raw = raw.encode("utf-8", "replace").decode("utf-8")
    return normalize(raw)


def limit_note(length: int, max_chars: int, read: int | None = None) -> str:
    """What an over-long message is told once it has been checked for warning signs."""
    if read is not None and length > read:
        return (
            f"Your message is {length:,} characters long and the limit is {max_chars:,}. I checked "
            f"its first {read:,} characters for warning signs and did not read the rest. Please "
            "send the main question on its own."
        )
    return (
        f"Your message is {length:,} characters long and the limit is {max_chars:,}, so I only "
        "checked it for warning signs. Please send the main question on its own."
    )


def clean_message(raw: object, max_chars: int) -> str:
    """Validate a user message and return it normalised.

    Raises:
        InputError: the message is not text, is empty after removing invisible
            characters, looks like binary data, or is longer than `max_chars`.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                "The message is binary data, not text. Please type a question."
            ) from exc
    if not isinstance(raw, str):
        raise InputError(f"The message must be text, got {type(raw).__name__}.")
    if looks_binary(raw):
        raise InputError("The message looks like binary data, not text. Please type a question.")
    text = normalize(raw)
    if not text:
        raise InputError("The message is empty. Please type a question about your back pain.")
    if len(text) > max_chars:
        raise InputError(
            f"The message is {len(text):,} characters long; the limit is {max_chars:,}. "
            "Please shorten it to the main question."
        )
    return text
