"""`FirstPerson`: someone else's signs read as the person's own (triage only)."""

from __future__ import annotations

from pathlib import Path

import yaml

from assistant.triage.first_person import FirstPerson

WORDS = {"he": "I", "his": "my", "he has": "I have", "my husband": "I", "my husband's": "my", "her": ""}


def test_third_person_words_are_read_as_first_person_ones() -> None:
    read = FirstPerson(WORDS)
    assert read("My husband says his groin went numb") == "I says my groin went numb"
    assert read("He has no feeling in his legs") == "I have no feeling in my legs"  # the longest phrase wins


def test_whole_words_only_in_any_case_spacing_and_apostrophe() -> None:
    read = FirstPerson(WORDS)
    assert read("MY  HUSBAND\u2019S legs are weak") == "my legs are weak"
    assert read("the theme of this shell is history") == "the theme of this shell is history"
    assert read("hiss") == "hiss"


def test_a_text_with_nothing_to_read_again_is_returned_as_it_is() -> None:
    text = "I can't feel my legs"
    assert FirstPerson(WORDS)(text) is text
    assert FirstPerson({})(text) is text


def test_an_empty_reading_drops_the_word() -> None:
    assert FirstPerson(WORDS)("I told her my back hurts") == "I told my back hurts"


def test_the_served_list_reads_a_relative_and_a_pronoun() -> None:
    words = yaml.safe_load(
        (Path(__file__).parents[1] / "assistant" / "rules" / "first_person.yaml").read_text(encoding="utf-8")
    )["first_person"]
    read = FirstPerson(words)
    assert read("my mum says she can't feel her bottom") == "I says I can't feel my bottom"
