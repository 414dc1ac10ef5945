"""Settings: one object from ASSISTANT_* variables, validated, and every field documented."""

from __future__ import annotations

import pytest

from assistant.config import PROJECT_ROOT, Settings
from assistant.errors import ConfigError


def test_environment_overrides(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ASSISTANT_TOP_K", "7")
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(tmp_path))
    s = Settings.load()
    assert s.top_k == 7 and s.index_dir == tmp_path


def test_gradio_server_port_is_honoured(monkeypatch) -> None:
    monkeypatch.delenv("ASSISTANT_PORT", raising=False)
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8123")
    assert Settings.load().port == 8123
    monkeypatch.setenv("ASSISTANT_PORT", "8124")
    assert Settings.load().port == 8124


@pytest.mark.parametrize(
    ("var", "value", "hint"),
    [("ASSISTANT_TOP_K", "0", "ASSISTANT_TOP_K"), ("ASSISTANT_MIN_SIMILARITY", "2", "ASSISTANT_MIN_SIMILARITY"),
     ("ASSISTANT_DENSE_WEIGHT", "abc", "ASSISTANT_DENSE_WEIGHT")],
)
def test_invalid_values_name_the_variable(monkeypatch, var, value, hint) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=hint):
        Settings.load()


def test_both_weights_zero_is_rejected() -> None:
    with pytest.raises(ConfigError, match="cannot both be 0"):
        Settings.load(dense_weight=0, lexical_weight=0)


def test_readme_documents_every_setting() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [f"ASSISTANT_{n.upper()}" for n in Settings.model_fields if f"`ASSISTANT_{n.upper()}`" not in readme]
    assert missing == []
    assert all(f.description for f in Settings.model_fields.values())
