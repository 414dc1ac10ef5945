"""The index on a real Chroma server (`chroma run` from the installed package, on 127.0.0.1).

Ingest switches generations atomically and stays incremental; ask answers with citations;
a server that goes away mid-session gives a clear CLI error and a friendly reply that keeps
the emergency line, and answering recovers on the same `Assistant` once it is back.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from gradio_client import Client as GradioClient

from assistant.assistant import UNREACHABLE, Assistant
from assistant.cli import cli
from assistant.config import Settings
from assistant.errors import EMERGENCY_NOTE, ConfigError, StoreError
from assistant.index import Index
from assistant.store import ChromaServer, server_address
from assistant.types import TriageLevel
from tests.servers import chroma_server, free_port
from tests.test_app import _serve, _text

QUESTION = "why does my back hurt on incline?"
EMERGENCY = "I suddenly can't control my bladder and both legs are numb"


def _collections(server_url: str) -> list[str]:
    return sorted(ChromaServer(server_url).collections("knowledge__"))


def _cited(answer) -> None:
    """A covered answer whose every [n] resolves to a citation."""
    assert answer.covered and answer.citations, answer.answer
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
    assert markers and markers <= {c.n for c in answer.citations}


@pytest.mark.slow
def test_ingest_switches_generations_and_ask_answers_from_the_server(
    tmp_path: Path, knowledge_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with chroma_server(tmp_path) as server:
        monkeypatch.setenv("ASSISTANT_CHROMA_URL", server.url)
        monkeypatch.setenv("ASSISTANT_KNOWLEDGE_DIR", str(knowledge_copy))
        runner = CliRunner()

        started = time.perf_counter()
        first = runner.invoke(cli, ["ingest", "--json"])
        assert first.exit_code == 0, first.output
        report = json.loads(first.output)
        print(f"\nfirst ingest into the server: {report['chunks']} chunks, "
              f"{time.perf_counter() - started:.1f} s (CLI, model load included)")
        assert report["added"] == report["chunks"] > 0
        assert not (tmp_path / "index").exists()  # nothing written beside the server
        assert "up to date" in runner.invoke(cli, ["ingest"]).output  # the manifest is on the server
        (gen1,) = [c for c in _collections(server.url) if "__gen-" in c]

        # a changed document: a new generation, only the changed chunks embedded; while it is
        # being built, a reader opening the index sees the old generation, whole
        doc = next(knowledge_copy.glob("*.md"))
        doc.write_text(doc.read_text() + "\n\n## Cooling down\n\nWalk slowly on a flat belt for five minutes.\n")
        settings = Settings.load()
        old_ids = Index(settings).open().ids()
        seen: list[set[str]] = []
        real_add = Index._embed_and_add

        def add_then_read(self, store, embedder, new, progress):  # noqa: ANN001
            real_add(self, store, embedder, new, progress)
            seen.append(Index(settings).open().ids())

        monkeypatch.setattr(Index, "_embed_and_add", add_then_read)
        second = json.loads(runner.invoke(cli, ["ingest", "--json"]).output)
        assert 0 < second["added"] < second["chunks"] and second["unchanged"] > 0
        assert seen == [old_ids] != [Index(settings).open().ids()]  # never the half-built generation
        gens = [c for c in _collections(server.url) if "__gen-" in c]
        assert gen1 in gens and len(gens) == 2  # the replaced generation is kept for open readers

        # an interrupted ingest leaves the pointer and the current generation as they were
        def interrupted(self, store, embedder, new, progress):  # noqa: ANN001
            real_add(self, store, embedder, new[:1], progress)
            raise KeyboardInterrupt

        monkeypatch.setattr(Index, "_embed_and_add", interrupted)
        before = Index(settings).manifest()
        assert runner.invoke(cli, ["ingest", "--rebuild"]).exit_code != 0
        assert Index(settings).manifest() == before
        assert sorted(c for c in _collections(server.url) if "__gen-" in c) == sorted(gens)

        monkeypatch.setattr(Index, "_embed_and_add", real_add)
        third = json.loads(runner.invoke(cli, ["ingest", "--json", "--rebuild"]).output)
        assert third["added"] == third["chunks"] == second["chunks"]
        gens3 = [c for c in _collections(server.url) if "__gen-" in c]
        assert gen1 not in gens3 and len(gens3) == 2  # older generations are swept after the switch

        started = time.perf_counter()
        asked = runner.invoke(cli, ["ask", "--json", QUESTION])
        print(f"one-shot ask against the server: {time.perf_counter() - started:.1f} s (CLI, model load included)")
        assert asked.exit_code == 0, asked.output
        obj = json.loads(asked.output)
        assert obj["covered"] and obj["citations"]
        assert {int(n) for n in re.findall(r"\[(\d+)\]", obj["answer"])} <= {c["n"] for c in obj["citations"]}


@pytest.mark.slow
def test_a_server_that_goes_away_gives_clear_errors_and_answering_recovers(
    tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with chroma_server(tmp_path) as server:
        settings = Settings.load(chroma_url=server.url)
        Index(settings).ingest(embedder, progress=False)
        bot = Assistant.from_settings(settings)
        _cited(bot.ask(QUESTION))

        server.stop()
        down = bot.ask(QUESTION)  # what `chat` shows
        assert not down.covered and not down.citations
        assert UNREACHABLE in down.answer and EMERGENCY_NOTE in down.answer
        assert bot.ask(EMERGENCY).triage.level is TriageLevel.EMERGENCY  # triage needs no server
        for url in _serve(bot, settings, None):  # and the page, through its own chat endpoint
            _, messages, _, _, _ = GradioClient(url, verbose=False).predict(QUESTION, "", api_name="/chat")
            reply = _text(messages[-1])
            assert UNREACHABLE in reply and "call your local emergency number now" in reply

        monkeypatch.setenv("ASSISTANT_CHROMA_URL", server.url)
        result = CliRunner().invoke(cli, ["ask", QUESTION])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        first_line = result.output.splitlines()[0]
        assert server.url in first_line and "cannot be reached" in first_line
        assert "chroma run" in first_line and "ASSISTANT_CHROMA_URL" in first_line
        assert "Traceback" not in result.output and EMERGENCY_NOTE in result.output

        started = time.perf_counter()
        server.start()  # same port, same data: the same Assistant answers again
        print(f"\nserver back after {time.perf_counter() - started:.2f} s")
        _cited(bot.ask(QUESTION))


class _Refusing(BaseHTTPRequestHandler):
    """Refuses every request with 401 and records the headers it was sent."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802
        _Refusing.seen.append(dict(self.headers))
        body = b'{"error":"Unauthorized","message":"bad token"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_token_is_sent_as_chroma_token_auth_and_a_refusal_names_the_setting(refusing_server: str) -> None:
    # Chroma's own 1.x server here checks no token, so a real HTTP server on 127.0.0.1 stands
    # for the auth proxy in front of it: it records what the real chromadb client sends.
    _Refusing.seen.clear()
    with pytest.raises(StoreError, match="ASSISTANT_CHROMA_TOKEN"):
        ChromaServer(refusing_server, token="s3cret-token")
    assert _Refusing.seen and _Refusing.seen[0].get("Authorization") == "Bearer s3cret-token"


def test_an_unreachable_server_says_what_to_do() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError, match="cannot be reached.*chroma run"):
        Index(Settings.load(chroma_url=url)).status("any-model")


def test_chroma_settings() -> None:
    assert Settings.load().chroma_url is None  # embedded by default
    assert Settings.load(chroma_url="  ").chroma_url is None
    assert server_address("https://chroma.example.org") == ("chroma.example.org", 443, True)
    assert server_address("http://127.0.0.1:8000/") == ("127.0.0.1", 8000, False)
    for bad in ("ftp://host:1", "127.0.0.1:8000", "http://host:port"):
        with pytest.raises(ConfigError, match="ASSISTANT_CHROMA_URL"):
            Settings.load(chroma_url=bad)
    assert "s3cret" not in repr(Settings.load(chroma_token="s3cret"))
