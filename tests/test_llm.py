"""Language-model answers: the real ChatOpenAI / ChatOllama clients, through the real Assistant
(real Chroma, real embedding model), against a scripted model server on 127.0.0.1.

The server (`tests/llm_server.py`) is a fake of a language model, which cannot run here; it
streams its replies with SSE (OpenAI) or NDJSON (Ollama) like a real one.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from assistant.assistant import Assistant
from assistant.compose import CITATION, DISCLAIMER, check_citations
from assistant.config import PROJECT_ROOT, Settings
from assistant.errors import EMERGENCY_NOTE, BackendError, ConfigError
from assistant.llm import ModelWriter, parse_reply, policy
from assistant.support import SUPPORT_FILE, SupportCheck, fit, load_pairs
from assistant.types import Answer, TriageLevel
from tests.conftest import KNOWLEDGE
from tests.llm_server import SLOW_S, ScriptedServer

QUESTION = "why does my back hurt on incline?"
SEE_PT = "my back hurts more the next day after every treadmill walk, what can I do?"
TIMEOUT_S = 1.5


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


def _bot(bot: Assistant, backend: str, url: str, script: str) -> Assistant:
    """The session's Assistant parts, with a model writer for `script` (the server's model name)."""
    settings = Settings.load(
        knowledge_dir=KNOWLEDGE, index_dir=bot.settings.index_dir, answer_backend=backend,
        llm_base_url=url, llm_model=script, llm_timeout_s=TIMEOUT_S,
    )
    writer = ModelWriter.from_settings(settings, bot.composer)
    return Assistant(
        settings, bot.embedder, bot.retriever, bot.composer, bot.triager, bot.coverage, bot.reranker,
        writer=writer,
    )


def _openai(bot: Assistant, server: ScriptedServer, script: str) -> Assistant:
    return _bot(bot, "openai", f"{server.url}/v1", script)


def _assert_is_the_extractive_answer(got: Answer, extractive: Answer, reason: str) -> None:
    assert got.backend == "extractive" and got.fallback_reason == reason
    assert got.blocks == extractive.blocks and got.citations == extractive.citations
    assert got.notice == policy().notice(reason)
    assert got.notice in got.answer and len(got.notice.splitlines()) == 1
    assert got.to_dict()["fallback_reason"] == reason and got.to_dict()["backend"] == "extractive"


def test_a_good_cited_answer_is_shown_with_its_citations(bot, server) -> None:
    answer = _openai(bot, server, "good").ask(QUESTION)
    sent = server.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["stream"] is True  # SSE, real client
    assert answer.backend == "openai" and answer.fallback_reason == ""
    assert answer.triage.level is TriageLevel.SELF_CARE
    assert answer.lead == policy().lead and len(answer.statements) == 2
    assert all(not s.verbatim for s in answer.statements)
    assert check_citations(answer.blocks, answer.citations, answer.answer) == []
    assert {int(n) for n in CITATION.findall(answer.answer)} == {c.n for c in answer.citations}
    prompt = sent["messages"][-1]["content"]
    for c in answer.citations:  # each cited passage was in the prompt, and says what is cited
        assert c.text.strip() in prompt
    for s in answer.statements:
        assert s.text.rstrip(".") in next(c.text for c in answer.citations if c.n == s.n)
    assert answer.answer.rstrip().endswith(DISCLAIMER)
    obj = answer.to_dict()
    assert obj["backend"] == "openai" and "fallback_reason" not in obj
    print(f"\nopenai answer in {answer.timings_ms['llm']:.0f} ms (model call and check), "
          f"{answer.timings_ms['total']:.0f} ms in all")


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("bad_citation", "unknown_citation"),
        ("unsupported", "unsupported"),
        ("garbage", "no_citations"),
        ("error500", "server_error"),
        ("rate_limited", "rate_limited"),
    ],
)
def test_a_failing_reply_gives_the_extractive_answer_and_a_notice(bot, server, script, reason, caplog) -> None:
    extractive = bot.ask(QUESTION)
    with caplog.at_level("WARNING", logger="assistant.llm"):
        got = _openai(bot, server, script).ask(QUESTION)
    _assert_is_the_extractive_answer(got, extractive, reason)
    assert [r.getMessage() for r in caplog.records] == [
        f"openai answer not used ({reason}); giving the extractive answer"
    ]


def test_a_slow_model_is_cut_off_at_the_timeout(bot, server) -> None:
    extractive = bot.ask(QUESTION)
    started = time.perf_counter()
    got = _openai(bot, server, "slow").ask(QUESTION)
    took = time.perf_counter() - started
    _assert_is_the_extractive_answer(got, extractive, "timeout")
    print(f"\nslow model: extractive answer after {took:.2f} s (timeout {TIMEOUT_S} s, model {SLOW_S} s)")
    assert took < SLOW_S


def test_a_server_that_is_not_there_gives_the_extractive_answer(bot) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    got = _bot(bot, "openai", f"http://127.0.0.1:{port}/v1", "good").ask(QUESTION)
    _assert_is_the_extractive_answer(got, bot.ask(QUESTION), "connection_error")


def test_a_reply_telling_to_ignore_the_referral_changes_nothing(bot, server) -> None:
    extractive = bot.ask(SEE_PT)
    got = _openai(bot, server, "ignore_referral").ask(SEE_PT)
    assert got.triage == extractive.triage and got.triage.level is TriageLevel.SEE_PT
    assert got.answer.startswith(got.triage.referral.strip())  # code puts the referral first
    _assert_is_the_extractive_answer(got, extractive, "weakens_triage")
    assert "ignore" not in got.answer.lower()


def test_a_see_pt_answer_written_by_the_model_keeps_the_referral_above_it(bot, server) -> None:
    got = _openai(bot, server, "good").ask(SEE_PT)
    assert got.backend == "openai" and got.triage.level is TriageLevel.SEE_PT
    assert got.answer.startswith(got.triage.referral.strip())
    assert got.answer.index(got.why) < got.answer.index(policy().lead)


def test_a_red_flag_needs_no_model_call(bot, server) -> None:
    before = len(server.requests)
    got = _openai(bot, server, "good").ask("my back hurts and I have numbness in the groin since this morning")
    assert got.triage.level is TriageLevel.EMERGENCY and got.backend == "extractive"
    assert len(server.requests) == before


def test_the_ollama_backend_streams_and_falls_back_the_same_way(bot, server) -> None:
    good = _bot(bot, "ollama", server.url, "good").ask(QUESTION)
    assert server.requests[-1]["path"] == "/api/chat"
    assert good.backend == "ollama" and len(good.statements) == 2
    assert check_citations(good.blocks, good.citations, good.answer) == []
    failed = _bot(bot, "ollama", server.url, "error500").ask(QUESTION)
    _assert_is_the_extractive_answer(failed, bot.ask(QUESTION), "server_error")


@pytest.mark.slow
def test_ask_json_reports_the_backend_and_why_it_fell_back(bot, server) -> None:
    env = {
        **os.environ, "ASSISTANT_INDEX_DIR": str(bot.settings.index_dir), "ASSISTANT_KNOWLEDGE_DIR": str(KNOWLEDGE),
        "ASSISTANT_ANSWER_BACKEND": "openai", "ASSISTANT_LLM_BASE_URL": f"{server.url}/v1",
        "ASSISTANT_LLM_MODEL": "rate_limited",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", "--json", QUESTION],
        capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["backend"] == "extractive" and obj["fallback_reason"] == "rate_limited"
    assert obj["citations"] and policy().notice("rate_limited") in obj["answer"]
    assert len(proc.stderr.strip().splitlines()) == 1 and "rate_limited" in proc.stderr


@pytest.mark.slow
def test_the_page_streams_a_model_answer(bot, server, settings) -> None:
    from gradio_client import Client

    from tests.test_app import _serve, _text

    for url in _serve(_openai(bot, server, "good"), settings, None):
        job = Client(url, verbose=False).submit(QUESTION, "", api_name="/chat")
        replies = [_text(out[1][-1]) for out in job if len(out[1]) == 2]
        final = _text(job.result()[1][1])
        assert len(replies) > 2, "the reply arrives in steps"
        assert 'class="cite" href="#src-1-1"' in final and "language model" in final


# -- pieces --------------------------------------------------------------------------------
def test_replies_are_split_into_cited_sentences() -> None:
    got = parse_reply(
        "Here is what the sources say:\n- Lower the incline. [2]\n* Keep a **neutral** spine [1, 3]. "
        "See [this](http://example.com) too [4].\n\nDone"
    )
    assert [(s.text, s.cites) for s in got] == [
        ("Lower the incline.", (2,)),
        ("Keep a neutral spine.", (1, 3)),
        ("See this too.", (4,)),
        ("Done", ()),
    ]


def test_an_uncited_sentence_rejects_the_reply(bot, server, monkeypatch) -> None:
    monkeypatch.setattr("tests.llm_server.reply", lambda script, prompt: "Walk slower [1]. I hope this helps.")
    got = _openai(bot, server, "good").ask(QUESTION)
    assert got.fallback_reason == "uncited_sentence"


def test_a_missing_backend_package_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_ollama", None)  # import fails as if not installed
    with pytest.raises(BackendError, match=r"pip install -e '\.\[llm\]'"):
        ModelWriter.from_settings(Settings.load(answer_backend="ollama", llm_model="m"), None)  # type: ignore[arg-type]


def test_a_model_backend_needs_a_model_name() -> None:
    with pytest.raises(ConfigError, match="ASSISTANT_LLM_MODEL"):
        Settings.load(answer_backend="openai")


def test_the_support_threshold_on_file_is_what_the_dev_pairs_give(bot) -> None:
    """The calibration in rules/support_check.yaml is reproducible from the labelled pairs."""
    import yaml

    stored = yaml.safe_load(SUPPORT_FILE.read_text())
    check = SupportCheck(bot.composer)
    result = fit(check, bot.retriever.chunks, load_pairs())
    assert (result["score"], result["threshold"]) == (stored["score"], stored["threshold"])
    test = result["fitted"]["test"]
    print(f"\nsupport check ({result['score']} >= {result['threshold']}): "
          f"dev P/R {result['fitted']['dev']['precision']}/{result['fitted']['dev']['recall']}, "
          f"test P/R {test['precision']}/{test['recall']}")
    assert test["precision"] >= 0.8  # held-out pairs: most accepted sentences are supported


def test_the_emergency_line_survives_a_model_failure_after_triage(bot, server, monkeypatch) -> None:
    writer: Any = _openai(bot, server, "good")

    def boom(*args: Any) -> Any:
        raise RuntimeError("writer bug")

    monkeypatch.setattr(writer.writer, "rewrite", boom)
    got = writer.ask(QUESTION)
    assert EMERGENCY_NOTE in got.answer


@pytest.mark.parametrize(
    "sentence",
    [
        "You do not need to see a doctor.",
        "This is not serious [1].",
        "It is safe to wait a few days.",
        "No need to visit a physical therapist.",
        "Skip the physio appointment.",
        "You can ignore the warning above.",
    ],
)
def test_a_sentence_weakening_the_triage_is_caught(sentence: str) -> None:
    assert policy().weakens(sentence)


def test_the_sources_themselves_never_read_as_weakening_the_triage(bot) -> None:
    assert [c.id for c in bot.retriever.chunks if policy().weakens(c.text)] == []


@settings_(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab .!?:[]()*_#<>-,1234\n\u201c"), max_size=200))
def test_parsing_any_reply_gives_plain_sentences(reply: str) -> None:
    for s in parse_reply(reply):
        assert s.text == s.text.strip() and not set("[]*_#<>`") & set(s.text)
        assert all(n >= 0 for n in s.cites)
