"""`TypedWords`: chat shorthand and English typos read as the words meant (triage only)."""

from __future__ import annotations

from assistant.triage.typed_words import TypedWords

SHORTHAND = {"n": "and", "nite": "night", "b4": "before", "lol": "", "cant": "can't"}


def test_shorthand_is_read_as_the_words_it_stands_for_and_empty_ones_are_dropped() -> None:
    typed = TypedWords(SHORTHAND)
    assert typed("cant sleep at nite n lol my back") == "can't sleep at night and my back"
    assert typed("wasnt like this B4") == "wasnt like this before"  # "wasnt" is not listed here


def test_a_text_with_nothing_to_read_again_is_returned_as_it_is() -> None:
    text = "How do I do a bird dog?"
    assert TypedWords(SHORTHAND)(text) is text


def test_words_the_model_learned_are_read_as_written() -> None:
    """"glute" is one edit from "glue"; a model that learned "glute" keeps it."""
    assert TypedWords({})("glute bridge") == "glue bridge"
    assert TypedWords({}, learned={"glute"})("glute bridge") == "glute bridge"


def test_a_rare_word_one_edit_from_a_common_one_is_read_as_it() -> None:
    assert TypedWords({})("cant catch my breth") == "cant catch my breath"


def test_real_words_are_never_corrected() -> None:
    text = "the ladder had fewer steps than the treadmill manual said"
    assert TypedWords({})(text) == text


def test_a_dropped_g_is_read_back_only_where_english_has_the_word() -> None:
    assert TypedWords({})("walkin and stretchin") == "walking and stretching"
    assert TypedWords({})("begin the main train") == "begin the main train"


def test_a_word_of_another_language_served_is_never_made_english() -> None:
    """Without the other languages, Italian "gambe" (legs) would be read as "game"."""
    assert TypedWords({})("gambe") == "game"
    assert TypedWords({}, ["es", "fr", "de", "pt", "it"])("le gambe") == "le gambe"
