"""The command line and its JSON contract (a public interface: fields are added, never renamed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.config import PROJECT_ROOT
from tests.conftest import KNOWLEDGE

LEVELS = {"self_care", "see_pt", "urgent", "emergency", "out_of_scope"}


def check_contract(obj: dict) -> None:
    """Assert one `ask --json` object has the contract's fields and types."""
    assert isinstance(obj["message"], str)
    assert obj["triage"]["level"] in LEVELS
    assert isinstance(obj["triage"]["reasons"], list)
    assert all(isinstance(r, str) for r in obj["triage"]["reasons"])
    assert isinstance(obj["answer"], str) and obj["answer"]
    assert isinstance(obj["timings_ms"]["total"], float)
    for c in obj["citations"]:
        assert set(c) >= {"n", "chunk_id", "document", "section", "experts", "text"}
        assert isinstance(c["n"], int) and isinstance(c["experts"], list)
    import re

    markers = {int(n) for n in re.findall(r"\[(\d+)\]", obj["answer"])}
    assert markers <= {c["n"] for c in obj["citations"]}


@pytest.fixture
def env(settings, tmp_path) -> dict[str, str]:
    """Environment for a subprocess that reuses the session's built index."""
    return {
        **os.environ,
        "ASSISTANT_INDEX_DIR": str(settings.index_dir),
        "ASSISTANT_KNOWLEDGE_DIR": str(KNOWLEDGE),
    }


@pytest.fixture
def runner(settings, monkeypatch) -> CliRunner:
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(settings.index_dir))
    return CliRunner()


@pytest.mark.slow
def test_ask_json_in_a_fresh_process_prints_exactly_one_contract_object(bot, env) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", "--json", "why does my back hurt on incline?"],
        capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # nothing but the object, even with 2>&1 (no library debug logs)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    obj = json.loads(lines[0])
    check_contract(obj)
    assert obj["triage"]["level"] == "self_care" and obj["citations"]
    assert obj["message"] == "why does my back hurt on incline?"


def test_ask_for_people_shows_sources(bot, runner) -> None:
    result = runner.invoke(cli, ["ask", "how do I do a bird dog?"])
    assert result.exit_code == 0, result.output
    assert "Get into tabletop position" in result.output
    assert "Sources:" in result.output and "[1]" in result.output and "Bird Dog" in result.output


def test_batch_answers_each_line_in_order_and_reports_bad_lines(bot, runner, tmp_path) -> None:
    batch = tmp_path / "batch.jsonl"
    lines = [
        {"id": "a", "message": "how do I do a glute bridge?"},
        {"id": "b", "message": "how many reps?", "history": [
            {"role": "user", "content": "tell me about the glute bridge"},
            {"role": "assistant", "content": "..."}]},
        "this line is not json",
        {"id": "d"},
        {"id": "e", "message": " \u200b\u200d "},
        {"id": 6, "message": "is bed rest good for back pain?"},
    ]
    batch.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    result = runner.invoke(cli, ["ask", "--json", "--batch", str(batch)])
    assert result.exit_code == 0, result.output
    out = [json.loads(ln) for ln in result.output.splitlines() if ln.strip()]
    assert [o["id"] for o in out] == ["a", "b", 3, "d", "e", 6]
    for o in (out[0], out[1], out[5]):
        check_contract(o)
    assert "Repeat 10 times." in out[1]["answer"]
    assert "not valid JSON" in out[2]["error"]
    assert "missing 'message'" in out[3]["error"]
    assert "empty" in out[4]["error"]
    assert out[4]["triage"]["level"] == "out_of_scope"  # the refusal still says what triage found


def test_an_empty_batch_message_still_triages_the_conversation(bot, runner, tmp_path) -> None:
    batch = tmp_path / "batch.jsonl"
    said = [{"role": "user", "content": "since the fall I can't feel my groin and I wet myself"}]
    batch.write_text(json.dumps({"id": "q", "message": "  ", "history": said}) + "\n")
    result = runner.invoke(cli, ["ask", "--json", "--batch", str(batch)])
    out = json.loads(result.output)
    assert out["triage"]["level"] == "emergency", out


def test_a_batch_goes_on_past_malformed_history_deep_nesting_and_bad_bytes(bot, runner, tmp_path) -> None:
    from assistant.errors import EMERGENCY_NOTE

    batch = tmp_path / "batch.jsonl"
    batch.write_bytes(
        b'{"id": "h", "message": "hi", "history": ["hello"]}\n'
        + b"[" * 100_000 + b"\n"
        + b'{"id": "u", "message": "back \xff pain, how do I fix my posture?"}\n'
        + b'{"id": "last", "message": "I can\'t feel my groin since this morning"}\n'
    )
    result = runner.invoke(cli, ["ask", "--json", "--batch", str(batch)])
    assert result.exit_code == 0, result.output
    out = [json.loads(ln) for ln in result.output.splitlines() if ln.strip()]
    assert [o["id"] for o in out] == ["h", 2, "u", "last"]
    assert "history could not be read" in out[0]["error"] and EMERGENCY_NOTE in out[0]["error"]
    assert "nested too deeply" in out[1]["error"]
    check_contract(out[2])
    assert out[3]["triage"]["level"] == "emergency"


@pytest.mark.parametrize("message", ["", "   ", "\u200b"])
def test_empty_message_is_a_usage_error(runner, message) -> None:
    result = runner.invoke(cli, ["ask", message])
    assert result.exit_code == 2
    assert "empty" in result.output and "Usage:" in result.output


def test_missing_knowledge_folder_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ASSISTANT_KNOWLEDGE_DIR", str(tmp_path / "no-such-folder"))
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(tmp_path / "fresh-index"))
    result = CliRunner().invoke(cli, ["ask", "why does my back hurt?"])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "ASSISTANT_KNOWLEDGE_DIR" in result.output
    assert "Traceback" not in result.output


def test_corrupt_index_is_a_clear_error(tmp_path, monkeypatch, embedder) -> None:
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(tmp_path / "idx"))
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", "--quiet"]).exit_code == 0
    current = tmp_path / "idx" / (tmp_path / "idx" / "CURRENT").read_text().strip()
    (current / "chroma.sqlite3").write_bytes(b"garbage" * 1000)
    result = runner.invoke(cli, ["ask", "why does my back hurt?"])
    assert result.exit_code == 1, result.output
    assert "ingest --rebuild" in result.output and "Traceback" not in result.output
    assert runner.invoke(cli, ["ingest", "--rebuild", "--quiet"]).exit_code == 0
    assert runner.invoke(cli, ["ask", "why does my back hurt?"]).exit_code == 0


def test_ingest_reports_what_it_did(tmp_path, monkeypatch, knowledge_copy) -> None:
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(tmp_path / "idx"))
    runner = CliRunner()
    first = runner.invoke(cli, ["ingest", "--json", str(knowledge_copy)])
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert report["added"] == report["chunks"] > 0
    again = runner.invoke(cli, ["ingest", "--json", str(knowledge_copy)])
    assert json.loads(again.output)["added"] == 0


def test_bad_setting_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("ASSISTANT_TOP_K", "0")
    result = CliRunner().invoke(cli, ["ask", "why does my back hurt?"])
    assert result.exit_code == 1
    assert "ASSISTANT_TOP_K" in result.output


def test_chat_keeps_the_conversation(bot, runner) -> None:
    result = runner.invoke(cli, ["chat"], input="tell me about the glute bridge\nhow many reps?\n/quit\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("Repeat 10 times.") >= 2
