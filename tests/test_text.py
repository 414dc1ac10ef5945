"""Input normalisation: hidden characters and markup cannot hide words from triage."""

from __future__ import annotations

import pytest

from assistant.errors import InputError
from assistant.text import clean_message, normalize, plain_text


def test_zero_width_and_bidi_characters_are_removed() -> None:
    assert normalize("blad\u200bder con\u200dtrol \u202eleak\u202c") == "bladder control leak"


def test_full_width_letters_are_folded() -> None:
    assert normalize("ｇｒｏｉｎ") == "groin"


def test_plain_text_strips_tags_and_entities() -> None:
    assert plain_text("<b>can't</b> feel my <span>groin</span> &amp; legs") == "can't feel my groin & legs"


@pytest.mark.parametrize("raw", ["", "  \n\t ", "\u200b\ufeff", b"   "])
def test_empty_is_refused(raw) -> None:
    with pytest.raises(InputError, match="empty"):
        clean_message(raw, 2000)


def test_limit_and_binary() -> None:
    assert clean_message("x" * 2000, 2000) == "x" * 2000
    with pytest.raises(InputError, match="2,001 characters long; the limit is 2,000"):
        clean_message("x" * 2001, 2000)
    with pytest.raises(InputError, match="binary"):
        clean_message(b"\xff\xfe\x00\x01", 2000)
    with pytest.raises(InputError, match="must be text"):
        clean_message(42, 2000)


def test_other_languages_pass_through() -> None:
    assert clean_message("¿Por qué me duele la espalda?", 2000) == "¿Por qué me duele la espalda?"
