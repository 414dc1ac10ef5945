"""Real servers for tests, on 127.0.0.1 and a free port, started in a temp folder and stopped after.

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
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from running_app import free_port


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
