"""Real servers on 127.0.0.1 for tests: a Chroma server from the installed package.

Shared by the Chroma tests and meant for reuse (a load test can start one server and
point several app processes at `server.url`). The server is the `chroma` console script
of this virtualenv (`chroma run`), so nothing is downloaded and nothing but 127.0.0.1 is
contacted.

`postgres_server`: Debian's PostgreSQL (the `postgresql` package; `make test` installs it when
it is missing). Its binaries are found on PATH or in /usr/lib/postgresql/*/bin; without them the
test fails saying what to install, never skips. initdb refuses to run as root, so as root the
server runs as the `postgres` user (or `nobody`) in a folder of /tmp it owns, because pytest's
own temp folders are root's alone.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from running_app import free_port

from assistant._offline import OFFLINE_ENV

CHROMA = Path(sys.executable).parent / "chroma"


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




def _pg_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[::-1]), None)
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: `apt-get install postgresql` (Debian), which "
            "`make test` does by itself when run as root."
        )
    return found


@contextmanager
def postgres_server(base: Path, database: str = "feedback") -> Iterator[str]:
    """Run a throwaway PostgreSQL and yield the URL of its (empty) `database`.

    Args:
        base: a temp folder for the cluster, its log and its unix socket (when not root).
        database: the database created for the caller.
    """
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    as_root = os.geteuid() == 0
    if as_root:  # run as an unprivileged user, in a folder that user can reach
        user = "postgres" if _has_user("postgres") else "nobody"
        folder = Path(tempfile.mkdtemp(prefix="pg-test-"))
        shutil.chown(folder, user)
        prefix = ["runuser", "-u", user, "--"]
    else:
        folder = Path(tempfile.mkdtemp(prefix="pg-", dir=base))
        prefix = []
    data, sockets, log = folder / "data", folder / "run", folder / "server.log"

    def run(*args: str | Path) -> None:
        done = subprocess.run([*prefix, *map(str, args)], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            logged = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}{logged}")

    run("mkdir", "-m", "700", sockets)
    run(initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions")
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} -c fsync=off"
    started = time.monotonic()
    run(pg_ctl, "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start")
    print(f"\nPostgreSQL started on 127.0.0.1:{port} in {time.monotonic() - started:.1f} s")
    try:
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
    finally:
        run(pg_ctl, "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """Create database `name` on the server of `url` and return its URL (same user, host, port)."""
    server, _, _ = url.rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
