"""The page's API, driven with gradio_client: `/ask` (the JSON contract) and `/chat`.

The page is `app.build_page` around the session's real Assistant, served on a free
port of 127.0.0.1 in this process; a second page wraps an Assistant that fails,
to check that the failure becomes a friendly reply and the page keeps answering.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import app
from assistant import render
from assistant.feedback import FeedbackStore

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(bot: Any, settings: Any, store: FeedbackStore | None, launch: dict | None = None) -> Iterator[str]:
    page = app.build_page(bot, settings, store)
    opts = launch if launch is not None else app.launch_options()
    _, url, _ = page.launch(
        server_name="127.0.0.1",
        server_port=_free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **opts,
    )
    try:
        yield url
    finally:
        page.close()


@pytest.fixture(scope="module")
def client(bot, settings, tmp_path_factory: pytest.TempPathFactory):
    from gradio_client import Client

    store = FeedbackStore(tmp_path_factory.mktemp("feedback") / "feedback.sqlite3")
    for url in _serve(bot, settings, store):
        yield Client(url, verbose=False)


class FlakyBot:
    """An Assistant that fails on a message containing "boom" and answers otherwise."""

    def __init__(self, bot: Any) -> None:
        self.bot = bot

    def ask(self, message: str, history: Any = ()) -> Any:
        if "boom" in message:
            raise RuntimeError("index went away")
        return self.bot.ask(message, history)


@pytest.fixture(scope="module")
def flaky_client(bot, settings):
    from gradio_client import Client

    for url in _serve(FlakyBot(bot), settings, None):
        yield Client(url, verbose=False)


def _text(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, list):  # Gradio may send [{"type": "text", "text": ...}]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _chat(client: Any, message: str, token: str = "") -> tuple:
    """One message through `/chat`: (box, messages, sources, session token, notice).

    The conversation is the signed token the page returns; the caller (a browser, or this
    test) sends it back with the next message.
    """
    return client.predict(message, token, api_name="/chat")


def test_ask_returns_the_json_contract(client) -> None:
    out = client.predict("Why does my back hurt on incline?", None, api_name="/ask")
    assert {"answer", "triage", "citations"} <= set(out)
    assert out["triage"]["level"] in {"self_care", "see_pt"}
    assert out["citations"], out
    assert "[1]" in out["answer"]
    first = out["citations"][0]
    assert {"n", "chunk_id", "document", "section", "experts", "text"} <= set(first)


def test_ask_follows_up_with_the_history(client) -> None:
    first = client.predict("tell me about the glute bridge", None, api_name="/ask")
    history = [
        {"role": "user", "content": "tell me about the glute bridge"},
        {"role": "assistant", "content": first["answer"]},
    ]
    out = client.predict("how many reps?", history, api_name="/ask")
    assert "Glute Bridge" in out["answer"]
    assert all("Glute Bridge" in c["section"] for c in out["citations"])


def test_ask_reports_the_length_limit(client, settings) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=f"limit is {settings.max_message_chars:,}"):
        client.predict("x" * (settings.max_message_chars + 1), None, api_name="/ask")


def test_ask_triages_an_emergency(client) -> None:
    out = client.predict(
        "I peed myself and can't feel my groin after the treadmill", None, api_name="/ask"
    )
    assert out["triage"]["level"] == "emergency"
    assert out["citations"] == []


def test_chat_endpoint_answers_with_linked_citations_and_sources(client) -> None:
    _, messages, sources, _, _ = _chat(client, "Why does my back hurt on incline?")
    assert [m["role"] for m in messages] == ["user", "assistant"]
    reply = _text(messages[1])
    assert 'class="cite" href="#src-1-1"' in reply
    assert 'id="src-1-1"' in sources and "<mark>" in sources


def test_chat_shows_html_as_text(client) -> None:
    _, messages, sources, _, _ = _chat(client, "<img src=x onerror=alert(1)>")
    assert _text(messages[-2]) == render.escape_user_text("<img src=x onerror=alert(1)>")
    assert "<img" not in _text(messages[-1]) and "<img" not in sources


def test_chat_turns_a_failure_into_a_friendly_reply_and_keeps_working(
    flaky_client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="assistant.app"):
        _, messages, _, _, _ = _chat(flaky_client, "boom")
    assert _text(messages[-1]) == render.ERROR_REPLY
    assert any("failed" in r.getMessage() and r.exc_info for r in caplog.records)
    _, messages, _, _, _ = _chat(flaky_client, "Why does my back hurt on incline?")
    assert "[1]" in _text(messages[-1])


def test_ask_endpoint_hides_internal_errors(flaky_client) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        flaky_client.predict("boom", None, api_name="/ask")
    assert "index went away" not in str(err.value)
    assert "something went wrong" in str(err.value)


def test_too_long_chat_message_is_refused_with_the_limit(client, settings) -> None:
    long = "how should I hold my arms on the treadmill " * (settings.max_message_chars // 30)
    box, messages, _, _, notice = _chat(client, long)
    assert box == long  # given back to shorten
    assert f"the limit is {settings.max_message_chars:,}" in notice
    assert all(_text(m) != render.escape_user_text(long) for m in messages)


def test_pages_keep_separate_conversations(client, settings, tmp_path: Path) -> None:
    from gradio_client import Client

    other = Client(client.src, verbose=False)
    _, messages, _, _, _ = _chat(other, "tell me about the glute bridge")
    assert len(messages) == 2  # a new session starts empty, whatever `client` asked before


# -- client mistakes on /ask: a 400-style error that names the mistake, and no traceback ------


@pytest.mark.parametrize(
    "history",
    ["hello", {"role": "user", "content": "hi"}, ["hello"], [{"role": "user", "content": ["hi"]}],
     [{"role": "system", "content": "hi"}]],
)
def test_ask_names_a_malformed_history_as_the_clients_mistake(client, history, capfd) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict("how do I do a glute bridge?", history, api_name="/ask")
    assert "history could not be read" in str(err.value)
    assert "something went wrong" not in str(err.value)
    assert err.value.title == app.BAD_REQUEST
    assert "Traceback" not in capfd.readouterr().err


def test_ask_refers_a_red_flag_even_with_a_malformed_history(client) -> None:
    out = client.predict("I can't feel my groin since this morning", "hello", api_name="/ask")
    assert out["triage"]["level"] == "emergency"
    assert "could not be read" in out["answer"]


@pytest.mark.parametrize("message", [None, 42, ["why"]])
def test_ask_names_a_message_that_is_not_text(client, message, capfd) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="must be text"):
        client.predict(message, None, api_name="/ask")
    assert "Traceback" not in capfd.readouterr().err


def test_expected_errors_log_no_traceback(client, caplog: pytest.LogCaptureFixture, capfd) -> None:
    from gradio_client.exceptions import AppError

    with caplog.at_level("DEBUG"):
        for bad in ("x" * 5000, "   "):
            with pytest.raises(AppError):
                client.predict(bad, None, api_name="/ask")
    assert not any(r.exc_info for r in caplog.records)
    assert "Traceback" not in capfd.readouterr().err


def test_a_session_over_its_rate_limit_is_refused_with_the_limit_but_still_triaged(bot, settings) -> None:
    from gradio_client import Client

    strict = settings.model_copy(update={"requests_per_minute": 2})
    for url in _serve(bot, strict, None):
        me, other = Client(url, verbose=False), Client(url, verbose=False)
        token = ""
        for _ in range(2):
            _, messages, _, token, notice = _chat(me, "how do I do a glute bridge?", token)
            assert "limit" not in notice
        box, messages, _, token, notice = _chat(me, "how do I do a bird dog?", token)
        assert "2 messages in the last minute" in notice and box == "how do I do a bird dog?"
        assert len(messages) == 4  # the refused message was not answered
        _, messages, _, _, _ = _chat(me, "I can't feel my groin since this morning", token)
        assert "Emergency" in _text(messages[-1]) and "2 messages in the last minute" in _text(messages[-1])
        _, messages, _, _, notice = _chat(other, "how do I do a bird dog?")
        assert "limit" not in notice and len(messages) == 2  # another session is not limited


def test_loading_answers_once_built_and_warms_up_after() -> None:
    import threading

    gate = threading.Event()
    calls: list[str] = []

    class Bot:
        def ask(self, message: str, history: Any = ()) -> str:
            calls.append("ask")
            return f"answer to {message}"

        def warm_up(self) -> None:
            calls.append("warm_up")

    def load() -> Bot:
        gate.wait(10)
        return Bot()

    loading = app.Loading(load)
    with pytest.raises(TimeoutError):
        loading.wait(timeout=0.01)
    gate.set()
    assert loading.ask("hi") == "answer to hi"
    assert loading.warmed.wait(10) and "warm_up" in calls


def test_loading_raises_what_building_raised() -> None:
    from assistant.errors import StoreError

    def load() -> Any:
        raise StoreError("no index")

    loading = app.Loading(load)
    with pytest.raises(StoreError, match="no index"):
        loading.ask("hi")
    assert loading.warmed.wait(10)
