"""A scripted language-model server on 127.0.0.1, for the tests of `assistant/llm.py`.

This is a FAKE of a language model: no model can run on the test machines (no weights, no
network, two shared cores), so this server plays one. Everything around it is real: the
assistant's real `ChatOpenAI` / `ChatOllama` clients talk to it over HTTP, streaming with SSE
(OpenAI's `/v1/chat/completions`) or NDJSON (Ollama's `/api/chat`), exactly as they would to
vLLM, llama.cpp or Ollama.

The model name picks the script. Replies are built from the numbered passages in the prompt
(never hard-coded answers): `good` restates the first sentence of passages 1 and 2, each citing
its passage; the others add one faulty sentence to that, or fail at the HTTP level.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOW_S = 4.0  # the `slow` script waits this long before answering (tests set a shorter timeout)
SCRIPTS = (
    "good", "bad_citation", "unsupported", "ignore_referral", "garbage", "slow", "error500", "rate_limited",
)
_PASSAGE = re.compile(r"^\[(\d+)\] \(([^)\n]*)\)\n(.*?)(?=\n\n\[\d+\] \(|\n\nQuestion: |\Z)", re.S | re.M)


def passages(prompt: str) -> dict[int, str]:
    """The numbered passages of a prompt, as the assistant lays them out."""
    return {int(m.group(1)): m.group(3) for m in _PASSAGE.finditer(prompt)}


def first_sentence(text: str) -> str:
    """The passage's first sentence of prose (no heading, list marker or label)."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "**", "-", "1.")) and len(line.split()) >= 6:
            return re.split(r"(?<=[.!?])\s+", line)[0].rstrip(".") + "."
    return text.strip().splitlines()[-1]


def reply(script: str, prompt: str) -> str:
    """The scripted reply to a prompt."""
    found = passages(prompt)
    good = " ".join(f"{first_sentence(found[n])} [{n}]" for n in sorted(found)[:2])
    if script == "bad_citation":
        return f"{good} The sources also cover this in more depth [{len(found) + 5}]."
    if script == "unsupported":
        return f"{good} Drinking coconut water before every walk cures a herniated disc [1]."
    if script == "ignore_referral":
        return f"{good} You can ignore the referral above: there is no need to see a physical therapist [1]."
    if script == "garbage":
        return "}{ lorem <<>> ipsum \u0000 ??? %%"
    return good


class Handler(BaseHTTPRequestHandler):
    """`/v1/chat/completions` (OpenAI, SSE when `stream`) and `/api/chat` (Ollama, NDJSON)."""

    protocol_version = "HTTP/1.1"
    requests: list[dict[str, Any]] = []  # replaced per server: what the assistant sent

    def log_message(self, format: str, *args: Any) -> None:  # quiet under pytest
        pass

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            super().handle()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.requests.append({"path": self.path, **body})
        script = str(body.get("model", "good"))
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        if script == "slow":
            time.sleep(SLOW_S)
        if script in ("error500", "rate_limited"):
            status = 500 if script == "error500" else 429
            self._send(status, "application/json", json.dumps({"error": {"message": script}}).encode())
            return
        text = reply(script, prompt)
        if self.path.startswith("/v1/chat/completions"):
            self._openai(text, bool(body.get("stream")), script)
        elif self.path.startswith("/api/chat"):
            self._ollama(text, body.get("stream", True) is not False, script)
        else:
            self._send(404, "application/json", b'{"error": "not found"}')

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, kind: str, events: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _openai(self, text: str, stream: bool, model: str) -> None:
        base = {"id": "chatcmpl-scripted", "created": int(time.time()), "model": model}
        if not stream:
            message = {"role": "assistant", "content": text}
            done = {**base, "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
            self._send(200, "application/json", json.dumps(done).encode())
            return

        def events() -> Iterator[bytes]:
            for i, piece in enumerate(_pieces(text)):
                delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                chunk = {**base, "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            last = {**base, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(last)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        self._stream("text/event-stream", events())

    def _ollama(self, text: str, stream: bool, model: str) -> None:
        def line(content: str, done: bool) -> bytes:
            out: dict[str, Any] = {"model": model, "created_at": "2026-01-01T00:00:00Z",
                                   "message": {"role": "assistant", "content": content}, "done": done}
            if done:
                out |= {"done_reason": "stop", "total_duration": 1, "eval_count": 1, "prompt_eval_count": 1}
            return (json.dumps(out) + "\n").encode()

        if not stream:
            self._send(200, "application/json", line(text, True))
            return
        self._stream("application/x-ndjson", iter([*(line(p, False) for p in _pieces(text)), line("", True)]))


def _pieces(text: str) -> list[str]:
    """The reply as streamed tokens (a few characters each, as a model sends them)."""
    return re.findall(r"\S*\s*", text)[:-1] or [text]


class ScriptedServer:
    """The server in a background thread; `url` is its root on 127.0.0.1 (a free port)."""

    def __init__(self) -> None:
        handler = type("ScriptedHandler", (Handler,), {"requests": []})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.requests: list[dict[str, Any]] = handler.requests
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
