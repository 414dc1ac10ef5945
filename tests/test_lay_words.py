"""`LayWords`: a clause's clinical words read with their everyday companions (triage only)."""

from __future__ import annotations

from assistant.triage.lay_words import LayWords

WORDS = {"perineal": "groin", "saddle anaesthesia": "numb groin and bottom", "anaesthesia": "numbness"}


def test_companions_follow_the_word_and_keep_the_persons_text() -> None:
    lay = LayWords(WORDS)
    assert lay("Reduced PERINEAL sensation.") == "Reduced PERINEAL (groin) sensation."
    assert lay("how do I do a glute bridge?") == "how do I do a glute bridge?"


def test_the_longest_listed_phrase_wins_and_a_negation_still_governs_it() -> None:
    """The companions sit right after the word, inside the scope of a negation before it."""
    assert LayWords(WORDS)("denies saddle anaesthesia") == "denies saddle anaesthesia (numb groin and bottom)"


def test_accents_and_case_are_folded_but_the_text_keeps_them() -> None:
    lay = LayWords({"hypoesthesie": "numbness"})
    assert lay("Hypoesthésie périnéale") == "Hypoesthésie (numbness) périnéale"


def test_only_whole_words_match() -> None:
    assert LayWords({"af": "racing heart"})("after a long walk") == "after a long walk"


def test_words_the_model_learned_are_read_as_written() -> None:
    """`seen` lists the words found in enough training messages; those need no companions."""
    training = ["my sciatica flared", "sciatica again", "perineal numbness"]
    lay = LayWords({**WORDS, "sciatica": "pain down the leg"})
    seen = lay.seen(training, at_least=2)
    assert seen == {"sciatica"}
    assert LayWords({**WORDS, "sciatica": "pain down the leg"}, seen)("sciatica, perineal") == (
        "sciatica, perineal (groin)"
    )


def test_an_empty_list_reads_nothing() -> None:
    lay = LayWords({})
    assert not lay and lay("perineal") == "perineal" and lay.seen(["perineal"], 1) == frozenset()
