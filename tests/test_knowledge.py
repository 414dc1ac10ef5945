"""Loading, cleaning and chunking: furniture gone, exercises whole, metadata and stable ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.errors import KnowledgeError
from assistant.knowledge import (
    chunk_document,
    clean_text,
    load_chunks,
    load_document,
    split_units,
)
from tests.conftest import FIXTURES, KNOWLEDGE

FURNITURE = ["Video of the Day", "Report an Issue", "Screenshot loading", "Image Credit",
             "screenshot of the current page"]
EXERCISES = {
    "Stationary March": (4, "Repeat 15 times on each side.", "To progress this move"),
    "Scapular Push-Up": (4, "Repeat 8 times.", "If holding a plank is too much"),
    "Bird Dog": (3, "Repeat 5 times, then switch sides.", None),
    "Glute Bridge": (3, "Repeat 10 times.", None),
    "Single-Arm Dumbbell Bent-Over Rows": (5, "Switch sides and do 6 more repetitions.",
                                           "The rowing motion can be completed"),
}


@pytest.fixture(scope="module")
def chunks():
    return load_chunks([KNOWLEDGE])[1]


def test_seed_article_furniture_is_present_in_the_raw_text() -> None:
    raw = (FIXTURES / "seed-article.txt").read_text(encoding="utf-8")
    assert all(f.lower() in raw.lower() for f in FURNITURE)  # the fixture really is dirty


@pytest.mark.parametrize("path", [KNOWLEDGE / "treadmill-back-pain.md", FIXTURES / "seed-article.txt"])
def test_cleaned_document_has_no_page_furniture(path: Path) -> None:
    doc = load_document(path)
    for f in FURNITURE:
        assert f.lower() not in doc.body.lower(), f
    assert "Treadmill Giving You Back Pain" in doc.title


def test_front_matter_keeps_experts_with_credentials() -> None:
    doc = load_document(KNOWLEDGE / "treadmill-back-pain.md")
    labels = {e.label for e in doc.experts}
    assert labels == {"Natalie Niemczyk, DPT", "Ben Fung, DPT", "Lauren Shroyer, MS"}


def test_every_exercise_is_exactly_one_intact_chunk(chunks) -> None:
    for name, (steps, last_step, extra) in EXERCISES.items():
        holding = [c for c in chunks if name in c.text]
        assert len(holding) == 1, f"{name} is spread over {len(holding)} chunks"
        chunk = holding[0]
        assert chunk.section.endswith(name)
        assert "What it's good for:" in chunk.text and "Region:" in chunk.text
        numbers = [int(n) for n in re.findall(r"^(\d+)\.", chunk.text, re.MULTILINE)]
        assert numbers == list(range(1, steps + 1)), (name, numbers)
        assert last_step in chunk.text
        if extra:
            assert extra in chunk.text


def test_raw_text_chunks_keep_exercises_whole_too() -> None:
    chunks = chunk_document(load_document(FIXTURES / "seed-article.txt"))
    for name, (_steps, last_step, _) in EXERCISES.items():
        holding = [c for c in chunks if last_step in c.text]
        assert len(holding) == 1 and name in holding[0].text


def test_chunk_metadata(chunks) -> None:
    assert all(c.document.startswith("Treadmill Giving You Back Pain?") for c in chunks)
    assert all(c.section and c.source == "treadmill-back-pain.md" for c in chunks)
    by_text = {c.id: c for c in chunks}
    fung = [c for c in by_text.values() if "too steep or you are going too quickly" in c.text]
    assert fung and "Ben Fung, DPT" in fung[0].experts
    shroyer = [c for c in chunks if "very strong indicator" in c.text]
    assert shroyer and shroyer[0].experts == ("Lauren Shroyer, MS",)
    assert shroyer[0].section == "When to See a Physical Therapist"


def test_chunk_ids_are_stable_and_change_with_content(chunks, tmp_path: Path) -> None:
    again = load_chunks([KNOWLEDGE])[1]
    assert [c.id for c in chunks] == [c.id for c in again]
    assert len({c.id for c in chunks}) == len(chunks)
    edited = tmp_path / "treadmill-back-pain.md"
    text = (KNOWLEDGE / "treadmill-back-pain.md").read_text().replace("Repeat 10 times.", "Repeat 12 times.")
    edited.write_text(text)
    changed = load_chunks([edited])[1]
    assert len({c.id for c in changed} - {c.id for c in chunks}) == 1  # only the Glute Bridge chunk


def test_units_are_verbatim_and_steps_whole(chunks) -> None:
    for c in chunks:
        for u in split_units(c.text):
            assert u in c.text
            assert not u.startswith("#")
    bridge = next(c for c in chunks if c.section.endswith("Glute Bridge"))
    assert ("2. Drive your hips into the air, keeping your shoulders planted on the ground. "
            "Hold for a few seconds, engaging your glutes. Then slowly lower back down to the ground."
            ) in split_units(bridge.text)


def test_html_documents_are_cleaned(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<html><body><h1>Walking Tips</h1><p>Video of the Day</p>"
        "<h2>Warm Up</h2><p>Walk slowly for five minutes first.</p>"
        "<p>Report an Issue</p><script>track()</script></body></html>"
    )
    doc = load_document(page)
    assert doc.title == "Walking Tips"
    assert "Video of the Day" not in doc.body and "Report an Issue" not in doc.body
    (chunk,) = chunk_document(doc)
    assert chunk.section == "Warm Up" and "five minutes" in chunk.text


def test_clean_text_drops_furniture_lines_only() -> None:
    out = clean_text("Intro.\nVideo of the Day\n  • a bullet\nA video of the day is fine in a sentence.\n")
    assert "Video of the Day\n" not in out
    assert "- a bullet" in out and "A video of the day is fine" in out


def test_missing_knowledge_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="does not exist"):
        load_chunks([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(KnowledgeError, match="No documents found"):
        load_chunks([tmp_path / "empty"])


def test_non_utf8_document_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(KnowledgeError, match="not UTF-8"):
        load_document(bad)
