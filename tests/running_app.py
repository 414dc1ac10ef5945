"""`python app.py` as a real server process on a free port of 127.0.0.1, driven over plain HTTP.

The server runs under a guard that records, in a file, every connect and name lookup the
process makes to anything but 127.0.0.1/localhost (a Python audit hook: it sees every
socket Python opens, the page's and its libraries'). `ask` is the HTTP form of
`gradio_client.Client.predict(..., api_name="/ask")`: POST the call, read its event stream.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from assistant.config import PROJECT_ROOT

# Runs app.py as __main__ after installing the guard; NET_LOG names the file it appends to.
GUARD = r"""
import os, socket, sys
LOCAL = {"127.0.0.1", "localhost", "::1", "::ffff:127.0.0.1", None, ""}
out = os.environ["NET_LOG"]
def hook(event, args):
    if event == "socket.connect":
        addr = args[1]
        host = addr[0] if isinstance(addr, tuple) else None  # AF_UNIX paths are local
        if host not in LOCAL:
            with open(out, "a") as f: f.write(f"connect {addr!r}\n")
    elif event == "socket.getaddrinfo":
        if args[0] not in LOCAL and not str(args[0]).startswith("127."):
            with open(out, "a") as f: f.write(f"lookup {args[0]!r}\n")
sys.addaudithook(hook)
sys.argv = ["app.py"]
sys.path.insert(0, os.getcwd())
import runpy
runpy.run_path("app.py", run_name="__main__")
"""


def concurrently(session: Callable[[int], None], n: int, timeout: float = 120.0) -> float:
    """Run session(0) .. session(n - 1) in n threads at once; the seconds until all are done."""
    threads = [threading.Thread(target=session, args=(i,)) for i in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of `values` (nearest rank), e.g. q=0.95 for p95."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    net_log: Path

    def contacted(self) -> list[str]:
        """Every non-local connect or lookup the server attempted so far."""
        return self.net_log.read_text().splitlines() if self.net_log.exists() else []


@contextlib.contextmanager
def running_app(
    index_dir: Path, data_dir: Path, log: Path, *, env: dict[str, str] | None = None,
    prefix: Sequence[str] = (), start_timeout: float = 90.0,
) -> Iterator[RunningApp]:
    """Start the page (a prebuilt index in `index_dir`) and stop it afterwards."""
    port = free_port()
    net_log = log.with_suffix(".net")
    full_env = {
        **os.environ,
        "ASSISTANT_PORT": str(port),
        "ASSISTANT_HOST": "127.0.0.1",
        "ASSISTANT_INDEX_DIR": str(index_dir),
        "ASSISTANT_DATA_DIR": str(data_dir),
        "NET_LOG": str(net_log),
        **(env or {}),
    }
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", GUARD], cwd=PROJECT_ROOT, env=full_env,
            stdout=subprocess.DEVNULL, stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the page exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/gradio_api/info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page did not start in {start_timeout:.0f} s")
            time.sleep(0.2)
        yield RunningApp(url, proc, net_log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class AskError(Exception):
    """`/ask` answered with an error event (its text is the message)."""


def ask(client: httpx.Client, url: str, message: Any, history: Any = None) -> dict[str, Any]:
    """One `/ask` call: the answer dict, or AskError with the error's text."""
    r = client.post(url + "/gradio_api/call/ask", json={"data": [message, history]})
    r.raise_for_status()
    event_id = r.json()["event_id"]
    event, data = "", ""
    with client.stream("GET", f"{url}/gradio_api/call/ask/{event_id}") as stream:
        stream.raise_for_status()
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = line.split(":", 1)[1].strip()
                if event in ("complete", "error"):
                    break
    if event == "complete":
        return json.loads(data)[0]
    raise AskError(f"{event}: {data}")
