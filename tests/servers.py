"""Real servers on 127.0.0.1 for tests: a Chroma server from the installed package.

Shared by the Chroma tests and meant for reuse (a load test can start one server and
point several app processes at `server.url`). The server is the `chroma` console script
of this virtualenv (`chroma run`), so nothing is downloaded and nothing but 127.0.0.1 is
contacted.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from assistant._offline import OFFLINE_ENV

CHROMA = Path(sys.executable).parent / "chroma"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChromaProcess:
    """`chroma run` on 127.0.0.1: started, stopped and started again on the same port and data,
    as an operator restarting the server would."""

    def __init__(self, path: Path, log: Path, port: int | None = None) -> None:
        self.path = path
        self.log = log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until its heartbeat answers.

        Raises:
            RuntimeError: the server exited or did not answer within `timeout` (its log is quoted).
        """
        cmd = [str(CHROMA), "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"chroma run did not start on {self.url}:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); the data folder stays."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


@contextmanager
def chroma_server(tmp_path: Path) -> Iterator[ChromaProcess]:
    """A Chroma server with its data in `tmp_path/chroma`, stopped on exit whatever happens."""
    server = ChromaProcess(tmp_path / "chroma", tmp_path / "chroma.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
