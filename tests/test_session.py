"""The conversation travels with each request as a signed token (`assistant/session.py`).

Two pages in this process stand for two replicas: with the same `session_secret` a
conversation started on one continues on the other (its red flag included); a page with
another secret, or a token that was tampered with, starts afresh and says so.
`tests/test_replicas.py` does the same with two real `app.py` processes under load.
"""

from __future__ import annotations

import base64
import html
import json

import pytest
from pydantic import SecretStr

from assistant import render
from assistant.session import SessionCodec
from assistant.types import TriageLevel
from tests.test_app import _chat, _serve, _text

RED_FLAG = "I can't feel my groin and I wet myself"


def _conversation(bot) -> render.Transcript:
    t = render.Transcript()
    t.add("how do I do a bird dog?", bot.ask("how do I do a bird dog?"))
    t.add(RED_FLAG, bot.ask(RED_FLAG, t.history()))
    t.add("broken", None)
    t.feedback_ids[1] = t.last_feedback = 42
    t.recent = [1_700_000_000.5]
    return t


def test_a_real_conversation_survives_the_round_trip(bot) -> None:
    t = _conversation(bot)
    codec = SessionCodec("one secret")
    back = codec.load(codec.dump(t))
    assert back == t
    assert back is not None and back.exchanges[1].answer.triage.level is TriageLevel.EMERGENCY
    assert back.history() == t.history() and back.sources_html() == t.sources_html()
    assert codec.load("") == render.Transcript()  # no token yet: a new conversation


def test_a_forged_or_foreign_token_is_refused(bot) -> None:
    t = _conversation(bot)
    token = SessionCodec("one secret").dump(t)
    assert SessionCodec("another secret").load(token) is None  # a replica with another secret
    # a client rewriting its row ids (to withdraw someone else's rating) breaks the signature
    payload, _, signature = token.rpartition(".")
    forged = base64.urlsafe_b64encode(json.dumps({"feedback_ids": {"1": 7}}).encode()).decode().rstrip("=")
    assert SessionCodec("one secret").load(f"{forged}.{signature}") is None
    assert SessionCodec("one secret").load("not a token") is None
    with pytest.raises(ValueError, match="must not be empty"):
        SessionCodec("")


@pytest.mark.slow
def test_a_conversation_moves_between_pages_that_share_the_secret(bot, settings) -> None:
    from gradio_client import Client

    shared = settings.model_copy(update={"session_secret": SecretStr("shared")})
    other = settings.model_copy(update={"session_secret": SecretStr("other")})
    for one in _serve(bot, shared, None):
        for two in _serve(bot, shared, None):
            for stranger in _serve(bot, other, None):
                _, _, _, token, _ = _chat(Client(one, verbose=False), RED_FLAG)
                _, messages, _, _, _ = _chat(Client(two, verbose=False), "how do I do a bird dog?", token)
                assert len(messages) == 4 and "Emergency" in _text(messages[-1])  # the red flag came along
                job = Client(stranger, verbose=False).submit("how do I do a bird dog?", token, api_name="/chat")
                notices = [out[4] for out in job if isinstance(out[4], str)]
                assert len(job.result()[1]) == 2  # a fresh conversation, and the page says why
                assert any(html.escape(render.SESSION_LOST) in n for n in notices), notices
