"""Index faults on a real Chroma folder: deleted while the page runs, and read-only.

Deleted: the running page keeps answering from the chunks and vectors it loaded at start
(Chroma opens new SQLite connections as it goes, so its own reads of the folder fail).
Read-only (a read-only bind mount in a private mount namespace, since root ignores file modes;
or file modes when not root): Chroma must write to open an index, so the assistant stops with
one line naming the folder and the fix, and no traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from running_app import ask, running_app

from assistant.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_the_page_keeps_answering_after_its_index_folder_is_deleted(bot, settings, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(settings.index_dir, index)
    with running_app(index, tmp_path / "data", tmp_path / "server.log") as server, httpx.Client(timeout=30) as c:
        assert ask(c, server.url, "how do I do a bird dog?")["citations"]
        shutil.rmtree(index)
        assert not index.exists()
        questions = (
            "how do I do a bird dog?", "Why does my back hurt on incline?", "tell me about the glute bridge",
            "how do I do a scapular push up?", "should I hold the rails?", "how far should I lean forward?",
        )
        for question in questions:
            out = ask(c, server.url, question)
            assert out["citations"] and "[1]" in out["answer"], out
        assert ask(c, server.url, "I can't feel my groin and I wet myself")["triage"]["level"] == "emergency"
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def _read_only_run(index: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`ask` with `index` read-only: a ro bind mount (root), or modes 0555/0444 (not root)."""
    cmd = [sys.executable, "-m", "assistant", "ask", "how do I do a bird dog?"]
    full_env = {**os.environ, "ASSISTANT_INDEX_DIR": str(index), **env}
    if os.geteuid() != 0:
        for root, dirs, files in os.walk(index):
            for name in files:
                os.chmod(Path(root) / name, 0o444)
            for name in dirs:
                os.chmod(Path(root) / name, 0o555)
        index.chmod(0o555)
        return subprocess.run(cmd, cwd=PROJECT_ROOT, env=full_env, capture_output=True, text=True, timeout=120)
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root without `unshare -m`: a read-only folder cannot be made here")
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(index), *cmd],
        cwd=PROJECT_ROOT, env=full_env, capture_output=True, text=True, timeout=120,
    )


def _one_line_naming_the_fix(run: subprocess.CompletedProcess, index: Path) -> None:
    assert run.returncode == 1, run.stdout + run.stderr
    first = run.stderr.strip().splitlines()[0]
    assert first.startswith("Error: ") and str(index) in first and "read-only" in first, first
    assert "ASSISTANT_INDEX_DIR" in first and "writable" in first
    assert "Traceback" not in run.stderr


def test_a_read_only_index_folder_is_one_line_naming_the_fix(bot, settings, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(settings.index_dir, index)
    _one_line_naming_the_fix(_read_only_run(index, {}), index)


def test_a_stale_read_only_index_folder_is_one_line_naming_the_fix(
    bot, settings, knowledge_copy: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    shutil.copytree(settings.index_dir, index)
    (knowledge_copy / "extra.md").write_text("# Posture\n\nWalk tall on the treadmill.\n", encoding="utf-8")
    run = _read_only_run(index, {"ASSISTANT_KNOWLEDGE_DIR": str(knowledge_copy)})
    _one_line_naming_the_fix(run, index)
