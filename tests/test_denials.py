"""Denied warning signs are left out of the question retrieval reads, and nothing else is.

Real parts: the assistant's own embedder, the triage policy's cues and sign phrases, and the
knowledge base's vocabulary.
"""

from __future__ import annotations

import pytest

from assistant.types import TriageLevel


@pytest.mark.parametrize(
    ("message", "denied", "kept"),
    [
        (
            "no leg pain, no bladder issues, just a stiff lower back after incline walking: what exercises help?",
            "bladder",
            "stiff lower back after incline walking",
        ),
        (
            "my back is sore after the 12-3-30 but no numbness or tingling. how do i fix my posture?",
            "numbness",
            "posture",
        ),
        (
            "Never had any fever or night sweats, only sore after the treadmill. Why?",
            "fever",
            "sore after the treadmill",
        ),
        (  # someone else's denial, misspelt: read as the backstop patterns read it
            "Grandad's back aches after his walk. He has no numbnes or tingling. Should he lower the incline?",
            "numbnes",
            "lower the incline",
        ),
    ],
)
def test_a_denied_sign_is_not_read_as_the_question(bot, message: str, denied: str, kept: str) -> None:
    read = bot.denials.read(message)
    assert any(denied in p.lower() for p in read.phrases)
    assert denied not in read.text.lower() and kept in read.text


@pytest.mark.parametrize(
    "message",
    [
        "no dumbbells at home, can i do rows another way",  # no warning sign: maybe the ask
        "should i walk with no shoes on the treadmill",
        "no warm-up needed?",
        "I have no idea why my back hurts on the incline",
        "no numbness?",  # nothing else would be left to read
        "no incline at all, just flat walking: better for my back?",  # what is asked about
        "Which organisation says not to rest in bed for a bad back?",  # a cue inside the ask
    ],
)
def test_what_is_not_a_denied_sign_stays_in_the_question(bot, message: str) -> None:
    read = bot.denials.read(message)
    assert read.text == message and not read.phrases


def test_a_question_with_denials_is_answered_and_triage_still_reads_them(bot) -> None:
    """Before, this was declined as "nothing about 'bladder' or 'stiff'"; triage reads the
    whole message, denial and all, and is not lowered or raised by this module."""
    message = (
        "no leg pain, no bladder issues, just a stiff lower back after incline walking - what exercises help?"
    )
    answer = bot.ask(message)
    assert answer.covered and answer.citations
    assert answer.triage.level is TriageLevel.SELF_CARE
    # a sign that is reported, not denied, still escalates whatever else is denied
    reported = bot.ask("no fever, but I can't feel my groin since the incline walk. what exercises help?")
    assert reported.triage.level is TriageLevel.EMERGENCY
