"""Two app replicas share one Chroma server and one PostgreSQL, and keep no conversation in memory.

The layout of README.md's "Deployment modes", on 127.0.0.1: one `chroma run` and one PostgreSQL
(`tests/servers.py`), the knowledge base ingested once into the server, and two real `python
app.py` processes (`tests/running_app.py`) with the same settings and no local index. No load
balancer: the driver alternates the replicas itself, message by message within each session,
so a conversation continues only if its state travels with the request.

The driver does what the page's browser does: `/gradio_api/call/chat` with the message and the
session token the last reply returned, and a thumbs-up or -down through Gradio's queue
(`/gradio_api/queue/join` with the chatbot's like event), each rating sent to the replica that
did not write the reply. Bounded: SESSIONS x MESSAGES chat messages, a 30 s timeout per request.

Must hold, or the test fails: 0 errors; every reply right for its message and its conversation
(a red flag said earlier, on the other replica, still escalates every later reply; questions
are cited); every rating from both replicas is one row in the one PostgreSQL, and a rating
changed on the other replica changes that row; each replica's peak RSS under MEMORY_BOUND_MB;
neither replica contacts anything but 127.0.0.1. Latency (p50, p95) and throughput are printed.

The replicas run with `ASSISTANT_INGEST_ON_START=false`, so they never ingest at once; a fast
test checks that such a replica serves the index it finds, stale or not, and never rebuilds it.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from running_app import RunningApp, ask, concurrently, percentile, running_app
from servers import chroma_server, postgres_server

from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.errors import StoreError
from assistant.index import Index
from assistant.render import Transcript
from assistant.session import SessionCodec
from assistant.types import TriageLevel

SESSIONS = 20
MESSAGES = 5  # per session, alternating replicas
MEMORY_BOUND_MB = 1500  # peak RSS of each replica over the whole test
SECRET = "replicas-test-secret"  # ASSISTANT_SESSION_SECRET, the same on both replicas
RED_FLAG = "I can't feel my groin and I wet myself"
QUESTIONS = ("how do I do a bird dog?", "Why does my back hurt on incline?", "tell me about the glute bridge")


def _plan(i: int) -> list[str]:
    """Session i's messages: a red flag first (every 4th session), midway (the next), or never."""
    messages = [QUESTIONS[(i + j) % len(QUESTIONS)] for j in range(MESSAGES)]
    if i % 4 == 0:
        messages[0] = RED_FLAG
    elif i % 4 == 1:
        messages[2] = RED_FLAG
    return messages


def _wrong(transcript: Transcript, messages: list[str], j: int) -> str | None:
    """None if the conversation after message j is whole and its last reply right, else what is wrong."""
    if [ex.question for ex in transcript.exchanges] != messages[: j + 1]:
        return f"the conversation has {len(transcript.exchanges)} exchanges, expected {j + 1}"
    answer = transcript.exchanges[-1].answer
    if answer is None:
        return "the reply was the error reply"
    level = answer.triage.level
    if RED_FLAG in messages[: j + 1]:  # said now or earlier, on whichever replica
        return None if level.severity >= TriageLevel.EMERGENCY.severity else f"red flag got {level}"
    if level not in (TriageLevel.SELF_CARE, TriageLevel.SEE_PT) or not answer.citations or "[1]" not in answer.answer:
        return f"question got {level} with {len(answer.citations)} citations"
    return None


def _chat(client: httpx.Client, url: str, message: str, token: str) -> tuple[list, str]:
    """One message through the page's chat endpoint: (chat messages, the new session token)."""
    r = client.post(f"{url}/gradio_api/call/chat", json={"data": [message, token]})
    r.raise_for_status()
    event, final = "", None
    with client.stream("GET", f"{url}/gradio_api/call/chat/{r.json()['event_id']}") as stream:
        stream.raise_for_status()
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                final = httpx.Response(200, content=line.split(":", 1)[1]).json()
                break
    if event != "complete" or not isinstance(final, list):
        raise RuntimeError(f"chat ended with {event}: {str(final)[:200]}")
    return final[1], final[3]


class Page:
    """One replica's page as its browser sees it: the like event's function and trigger ids."""

    def __init__(self, app: RunningApp) -> None:
        self.url = app.url
        config = httpx.get(f"{app.url}/config", timeout=10).json()
        chatbot = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "chat")
        self.rate_fn = next(d["id"] for d in config["dependencies"] if [chatbot, "like"] in d["targets"])
        self.chatbot = chatbot

    def rate(self, client: httpx.Client, token: str, index: int, liked: bool) -> tuple[str, str]:
        """Click a thumb on chat message `index`, as the page does: (new token, the notice shown)."""
        session = uuid.uuid4().hex
        r = client.post(f"{self.url}/gradio_api/queue/join", json={
            "data": [token], "event_data": {"index": index, "value": None, "liked": liked},
            "fn_index": self.rate_fn, "trigger_id": self.chatbot, "session_hash": session,
        })
        r.raise_for_status()
        with client.stream("GET", f"{self.url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = httpx.Response(200, content=line.split(":", 1)[1]).json()
                if msg.get("msg") == "process_completed":
                    if not msg.get("success"):
                        raise RuntimeError(f"rating failed: {str(msg)[:200]}")
                    new_token, _, notice = msg["output"]["data"]
                    return (new_token if isinstance(new_token, str) else token), str(notice)
        raise RuntimeError("the rating's event stream ended without a result")


class Load:
    """SESSIONS concurrent sessions, each alternating the replicas message by message."""

    def __init__(self, pages: list[Page]) -> None:
        self.pages = pages
        self.codec = SessionCodec(SECRET)
        self.latencies: list[float] = []  # chat messages, until the whole reply has streamed in
        self.rating_latencies: list[float] = []
        self.errors: list[str] = []
        self.rated = [0, 0]  # ratings saved, by replica
        self.changed = 0  # ratings changed on the other replica (up, then down)
        self.token_chars = 0  # the longest session token (the conversation) sent back
        self.lock = threading.Lock()

    def session(self, i: int) -> None:
        messages, token = _plan(i), ""
        with httpx.Client(timeout=30) as client:
            for j, message in enumerate(messages):
                here = (i + j) % 2
                try:
                    start = time.perf_counter()
                    shown, token = _chat(client, self.pages[here].url, message, token)
                    took = time.perf_counter() - start
                    self.token_chars = max(self.token_chars, len(token))
                    transcript = self.codec.load(token)
                    wrong = "the token did not verify" if transcript is None else _wrong(transcript, messages, j)
                    if not wrong and len(shown) != 2 * (j + 1):
                        wrong = f"the page shows {len(shown)} messages, expected {2 * (j + 1)}"
                    if not wrong and j % 2 == 1:  # rate this reply on the other replica
                        wrong = self.rate(client, i, j, token)
                except (httpx.HTTPError, RuntimeError) as exc:
                    took, wrong = time.perf_counter() - start, f"{type(exc).__name__}: {str(exc)[:200]}"
                with self.lock:
                    self.latencies.append(took)
                    if wrong:
                        self.errors.append(f"session {i} message {j}: {wrong}")

    def rate(self, client: httpx.Client, i: int, j: int, token: str) -> str | None:
        other = (i + j + 1) % 2
        start = time.perf_counter()
        token, notice = self.pages[other].rate(client, token, 2 * j + 1, liked=True)
        with self.lock:
            self.rating_latencies.append(time.perf_counter() - start)
        if "rating was saved" not in notice:
            return f"rating on replica {other}: {notice}"
        with self.lock:
            self.rated[other] += 1
        if j == 3:  # change of mind on the first replica: the same row, now "down"
            _, notice = self.pages[1 - other].rate(client, token, 2 * j + 1, liked=False)
            if "rating was saved" not in notice:
                return f"changed rating on replica {1 - other}: {notice}"
            with self.lock:
                self.changed += 1
        return None

    def run(self) -> float:
        return concurrently(self.session, SESSIONS)


@pytest.mark.slow
def test_two_replicas_share_the_stores_and_keep_no_conversation(tmp_path: Path, embedder) -> None:
    started = time.perf_counter()
    with chroma_server(tmp_path) as chroma, postgres_server(tmp_path) as db_url, ExitStack() as stack:
        Index(Settings.load(chroma_url=chroma.url)).ingest(embedder, progress=False)  # once, for both
        env = {"ASSISTANT_CHROMA_URL": chroma.url, "ASSISTANT_FEEDBACK_DB_URL": db_url,
               "ASSISTANT_SESSION_SECRET": SECRET, "ASSISTANT_INGEST_ON_START": "false"}

        def start(k: int) -> RunningApp:  # no local index: each replica reads the server
            return stack.enter_context(running_app(
                tmp_path / f"no-index-{k}", tmp_path / f"data-{k}", tmp_path / f"replica-{k}.log", env=env,
            ))

        with ThreadPoolExecutor(2) as pool:
            apps = list(pool.map(start, range(2)))
        with httpx.Client(timeout=120) as client:  # each has loaded its Assistant (it loads after the page is up)
            for a in apps:
                ask(client, a.url, QUESTIONS[0])
            single = []  # one chat message at a time, for scale: the reply streams in over ~0.3 s by design
            for k in range(6):
                start = time.perf_counter()
                _chat(client, apps[k % 2].url, QUESTIONS[k % len(QUESTIONS)], "")
                single.append(time.perf_counter() - start)
        procs = [psutil.Process(a.process.pid) for a in apps]
        peaks = [[p.memory_info().rss] for p in procs]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                for p, peak in zip(procs, peaks, strict=True):
                    peak.append(p.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        setup_s = time.perf_counter() - started
        load = Load([Page(a) for a in apps])
        load_s = load.run()
        done.set()
        sampler.join()
        with psycopg.connect(db_url) as conn:
            rows = dict(conn.execute("SELECT rating, count(*) FROM feedback GROUP BY rating").fetchall())
        contacted = [a.contacted() for a in apps]

    peak_mb = [max(p) / 1e6 for p in peaks]
    p50, p95 = statistics.median(load.latencies) * 1000, percentile(load.latencies, 0.95) * 1000
    print(f"\nsetup (chroma, postgres, ingest, 2 replicas) {setup_s:.1f} s; load {load_s:.1f} s")
    print(f"one chat message alone: p50 {statistics.median(single) * 1000:.0f} ms")
    print(f"chat over 2 replicas: {len(load.latencies)} messages from {SESSIONS} sessions, "
          f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, {len(load.latencies) / load_s:.1f} messages/s; "
          f"longest session token {load.token_chars / 1000:.1f} kB")
    r50, r95 = statistics.median(load.rating_latencies) * 1000, percentile(load.rating_latencies, 0.95) * 1000
    print(f"ratings saved by replica: {load.rated}, changed on the other: {load.changed}; rows {rows}; "
          f"a rating p50 {r50:.0f} ms, p95 {r95:.0f} ms")
    print(f"peak RSS by replica: {', '.join(f'{m:.0f} MB' for m in peak_mb)} (bound {MEMORY_BOUND_MB} MB)")

    assert load.errors == []
    assert len(load.latencies) == SESSIONS * MESSAGES
    assert min(load.rated) > 0, "both replicas saved ratings"
    assert sum(rows.values()) == sum(load.rated)  # one row per rated reply, whoever wrote it
    assert rows.get("down", 0) == load.changed > 0  # changed in place by the other replica
    assert all(m < MEMORY_BOUND_MB for m in peak_mb), peak_mb
    assert contacted == [[], []]


def test_a_replica_serves_the_index_as_it_is_when_ingest_on_start_is_off(
    knowledge_copy: Path, tmp_path: Path, embedder, caplog: pytest.LogCaptureFixture
) -> None:
    """Replicas never ingest at once: with ingest_on_start off they serve the index they find."""
    settings = Settings.load(knowledge_dir=knowledge_copy, index_dir=tmp_path / "shared", ingest_on_start=False)
    with pytest.raises(StoreError, match="python -m assistant ingest"):
        Assistant.from_settings(settings)  # no index: the error names the one command to run
    index = Index(settings)
    index.ingest(embedder, progress=False)
    before = index.manifest()
    doc = next(knowledge_copy.glob("*.md"))
    doc.write_text(doc.read_text(encoding="utf-8") + "\n\n## Added later\n\nA new paragraph.\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="assistant.assistant"):
        bot = Assistant.from_settings(settings)
    assert bot.index_report is None and Index(settings).manifest() == before  # served as it was
    assert any("stale" in r.getMessage() for r in caplog.records)
    assert bot.ask("how do I do a bird dog?").citations
