"""The local feedback store and `python -m assistant feedback export`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.config import Settings
from assistant.feedback import FILENAME, FeedbackStore

RECORD = {
    "user_input": "how many reps?",
    "response": "**Glute Bridge**\n3. Repeat 10 times. [1]",
    "citations": [{"n": 1, "chunk_id": "a#7", "document": "D", "section": "S", "experts": [], "text": "3. Repeat 10 times."}],
    "triage_level": "self_care",
    "history": [{"role": "user", "content": "tell me about the glute bridge"}],
}
EXPORTED = {"user_input", "response", "citations", "triage_level", "rating", "comment", "created_at"}


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "data" / FILENAME)


def test_a_rating_is_stored_with_question_answer_and_citations(store: FeedbackStore) -> None:
    row = store.rate(RECORD, "down")
    assert store.comment(row, "  It should say how many sets.  ")
    [rec] = store.records()
    assert rec["rating"] == "down"
    assert rec["comment"] == "It should say how many sets."
    assert rec["user_input"] == RECORD["user_input"]
    assert rec["response"] == RECORD["response"]
    assert rec["citations"] == RECORD["citations"]
    assert rec["history"] == RECORD["history"]
    assert rec["triage_level"] == "self_care"
    assert rec["created_at"].endswith("+00:00")


def test_changing_the_rating_updates_the_same_row(store: FeedbackStore) -> None:
    row = store.rate(RECORD, "up")
    assert store.rate(RECORD, "down", row) == row
    assert [r["rating"] for r in store.records()] == ["down"]


def test_a_withdrawn_rating_is_deleted(store: FeedbackStore) -> None:
    row = store.rate(RECORD, "up")
    store.withdraw(row)
    assert store.records() == []
    assert not store.comment(row, "too late")


def test_only_up_or_down_is_accepted(store: FeedbackStore) -> None:
    with pytest.raises(ValueError, match="rating must be one of"):
        store.rate(RECORD, "meh")


def test_one_setting_switches_feedback_off(tmp_path: Path) -> None:
    assert FeedbackStore.from_settings(Settings.load(data_dir=tmp_path, feedback_enabled=False)) is None
    on = FeedbackStore.from_settings(Settings.load(data_dir=tmp_path))
    assert on is not None and on.path == tmp_path / FILENAME


def test_export_writes_json_lines_to_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    store = FeedbackStore(tmp_path / "data" / FILENAME)
    store.comment(store.rate(RECORD, "down"), "wrong exercise")
    store.rate({**RECORD, "user_input": "why does my back hurt on incline?"}, "up")
    out = tmp_path / "out" / "feedback.jsonl"
    result = CliRunner().invoke(cli, ["feedback", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["rating"], r["comment"]) for r in lines] == [("down", "wrong exercise"), ("up", "")]
    assert all(set(r) >= EXPORTED for r in lines)
    assert lines[0]["citations"][0]["chunk_id"] == "a#7"
    assert "Exported 2 feedback record(s)" in result.stderr


def test_export_to_stdout_with_nothing_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "empty"))
    result = CliRunner().invoke(cli, ["feedback", "export"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "Exported 0 feedback record(s)" in result.stderr
    assert not (tmp_path / "empty" / FILENAME).exists()  # exporting creates nothing
