"""Answers as page content: escaping, banners, [n] links, highlighted passages, the transcript."""

from __future__ import annotations

import re

import pytest

from assistant import render
from assistant.types import Answer, Block, Citation, Statement, Triage, TriageLevel, render_text

CHUNK = (
    "## Causes\n\n"
    "Walking with poor posture puts pressure on your spine. "
    '"What happens is the force from gravity can\'t be attenuated," Natalie Niemczyk, DPT, says. '
    "Poor posture causes a lot of that force to be applied on the low back.\n\n"
    "**Region:** Core and <img src=x onerror=alert(1)> Lower Body"
)
CITATION = Citation(
    n=1,
    chunk_id="doc#3",
    document="Treadmill <b>Back</b> Pain",
    section="Causes > Poor Posture",
    experts=["Natalie Niemczyk, DPT"],
    text=CHUNK,
)
DISCLAIMER = "_This is general guidance from the sources cited, not a diagnosis._"
BLOCKS = (
    Block(
        "Likely causes, from the sources:",
        (
            Statement("Walking with poor posture puts pressure on your spine.", 1),
            Statement(
                "Poor posture causes a lot of that force to be applied on the low back.", 1,
                prefix="Natalie Niemczyk, DPT: ",
            ),
        ),
    ),
)
ANSWER_TEXT = render_text(blocks=BLOCKS, disclaimer=DISCLAIMER)
REFERRAL = "Call your local emergency number now."


def answer(level: TriageLevel = TriageLevel.SELF_CARE, notice: str | None = None, **kw) -> Answer:
    """An answer built from fields, as `Assistant.ask` builds them; `notice` replaces the advice."""
    referral = kw.pop("referral", REFERRAL if level is not TriageLevel.SELF_CARE else "")
    citations = kw.pop("citations", [CITATION])
    blocks = kw.pop("blocks", () if notice is not None else BLOCKS)
    why = kw.pop("why", "")
    disclaimer = "" if notice is not None and not blocks else DISCLAIMER
    text = render_text(
        referral=referral if level is TriageLevel.SEE_PT else "", why=why, notice=notice or "",
        blocks=blocks, disclaimer=disclaimer,
    )
    return Answer(
        message="q",
        triage=Triage(level, kw.pop("reasons", []), referral),
        answer=text,
        citations=citations,
        timings_ms={},
        why=why,
        notice=notice or "",
        blocks=blocks,
        disclaimer=disclaimer,
        missing=tuple(kw.pop("missing", ())),
    )


@pytest.mark.parametrize("payload", ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"])
def test_user_text_is_escaped_as_html_and_markdown(payload: str) -> None:
    shown = render.escape_user_text(payload)
    assert "<" not in shown and ">" not in shown
    assert "&lt;" in shown


def test_user_markdown_is_shown_literally() -> None:
    assert render.escape_user_text("**bold** [x](javascript:1)") == (
        r"\*\*bold\*\* \[x\]\(javascript\:1\)"
    )


def test_citation_markers_link_to_the_sources_panel() -> None:
    md = render.body_markdown("Lower the incline. [2]\n<b>x</b>", key=3)
    assert '<a class="cite" href="#src-3-2">' in md
    assert "&lt;b&gt;x&lt;/b&gt;" in md
    assert "<b>" not in md


def test_self_care_answer_has_no_banner() -> None:
    assert render.banner(answer()) == ""
    assert render.answer_message(answer(), 1).startswith("Likely causes")


@pytest.mark.parametrize(
    ("level", "css", "role", "words"),
    [
        (TriageLevel.EMERGENCY, "triage-emergency", "alert", "Emergency"),
        (TriageLevel.URGENT, "triage-urgent", "alert", "Urgent"),
        (TriageLevel.SEE_PT, "triage-see-pt", "note", "see a physical therapist"),
    ],
)
def test_triage_banner_says_it_in_words_and_roles(
    level: TriageLevel, css: str, role: str, words: str
) -> None:
    text = f"{REFERRAL}\n\nWhat I noticed in your messages:\n- loss of bladder control"
    msg = render.answer_message(answer(level, text, citations=[]), 1)
    top, _, rest = msg.partition("\n\n")
    assert f'class="triage {css}"' in top and f'role="{role}"' in top
    assert words in top and REFERRAL in top
    assert REFERRAL not in rest  # said once, in the banner
    assert "loss of bladder control" in rest


def test_see_pt_card_carries_the_reason() -> None:
    blocks = (Block("From the article:", (Statement("Walking with poor posture puts pressure on your spine.", 1),)),)
    a = answer(TriageLevel.SEE_PT, why="Why: pain for <3> weeks.", blocks=blocks)
    assert a.answer.startswith(f"{REFERRAL}\nWhy: pain for <3> weeks.")
    msg = render.answer_message(a, 1)
    top, _, rest = msg.partition("\n\n")
    assert "Why: pain for &lt;3&gt; weeks." in top
    assert "Why:" not in rest and "From the article:" in rest


def test_stream_puts_the_banner_first_and_ends_with_the_whole_message() -> None:
    text = f"{REFERRAL}\n\n" + " ".join(f"word{i}" for i in range(40))
    a = answer(TriageLevel.EMERGENCY, text, citations=[])
    states = list(render.stream(a, 1, words_per_step=5))
    assert states[0] == render.banner(a)
    assert states[-1] == render.answer_message(a, 1)
    counts = [len(re.findall(r"word\d+", s)) for s in states]
    assert counts == sorted(counts) and len(set(counts)) >= 8


def test_cited_statements_are_found_in_their_chunk_even_with_attribution() -> None:
    spans = render.cited_spans(answer())[1]
    found = [CHUNK[a:b] for a, b in spans]
    assert found == [
        "Walking with poor posture puts pressure on your spine.",
        "Poor posture causes a lot of that force to be applied on the low back.",
    ]


def test_passage_is_escaped_highlighted_and_without_its_heading() -> None:
    spans = render.cited_spans(answer())[1]
    html = render.highlight(CHUNK, spans)
    assert "## Causes" not in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<mark>Walking with poor posture puts pressure on your spine.</mark>" in html
    assert html.count("<mark>") == 2
    assert "<strong>Region:</strong>" in html


def test_source_card_shows_document_section_expert_and_anchor() -> None:
    card = render.source_card(CITATION, [], key=2)
    assert 'id="src-2-1"' in card
    assert "Treadmill &lt;b&gt;Back&lt;/b&gt; Pain" in card
    assert "Causes › Poor Posture" in card
    assert "Expert quoted:</span> Natalie Niemczyk, DPT" in card


def test_transcript_keeps_the_persons_words_for_the_assistant() -> None:
    t = render.Transcript()
    t.add("<b>why</b> does it hurt?", answer())
    t.add("how many reps?", None)  # the assistant failed on this one
    assert t.history() == [
        {"role": "user", "content": "<b>why</b> does it hurt?"},
        {"role": "assistant", "content": ANSWER_TEXT},
        {"role": "user", "content": "how many reps?"},
        {"role": "assistant", "content": render.ERROR_REPLY},
    ]
    shown = t.messages()
    assert shown[0]["content"] == render.escape_user_text("<b>why</b> does it hurt?")
    assert shown[3]["content"] == render.ERROR_REPLY


def test_transcript_streams_only_the_last_reply() -> None:
    t = render.Transcript()
    t.add("first", answer())
    key = t.add("second", answer(TriageLevel.EMERGENCY, REFERRAL + "\n\nmore words here", citations=[]))
    states = list(t.stream(key))
    assert all(s[:2] == t.messages()[:2] for s in states)
    assert states[0][3]["content"].startswith('<div class="triage triage-emergency"')
    assert states[-1] == t.messages()


def test_sources_panel_shows_the_latest_answer_open_and_folds_earlier_ones() -> None:
    t = render.Transcript()
    assert "Sources will appear here" in t.sources_html()
    t.add("<script>alert(1)</script>", answer())
    t.add("second question", answer())
    panel = t.sources_html()
    latest, _, earlier = panel.partition("<details")
    assert "Answer 2: “second question”" in latest and 'id="src-2-1"' in latest
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in earlier and 'id="src-1-1"' in earlier
    assert "<script>" not in panel


def test_referral_without_citations_says_why_no_sources() -> None:
    t = render.Transcript()
    t.add("help", answer(TriageLevel.EMERGENCY, REFERRAL, citations=[]))
    assert "safety referral" in t.sources_html()


def test_feedback_record_maps_chat_positions_to_exchanges() -> None:
    t = render.Transcript()
    t.add("tell me about the glute bridge", answer())
    t.add("broken", None)
    t.add("how many reps?", answer())
    assert t.feedback_record(0) is None  # a question, not a reply
    assert t.feedback_record(3) is None  # the error reply
    key, record = t.feedback_record(5)  # type: ignore[misc]
    assert key == 3
    assert record["user_input"] == "how many reps?"
    assert record["response"] == ANSWER_TEXT
    assert record["citations"][0]["chunk_id"] == "doc#3"
    assert record["triage_level"] == "self_care"
    assert record["history"][0] == {"role": "user", "content": "tell me about the glute bridge"}


def test_notice_is_escaped_and_announced() -> None:
    assert 'role="status"' in render.notice("")
    assert "&lt;x&gt;" in render.notice("<x>")


def test_apostrophes_and_quotes_are_not_turned_into_entities() -> None:
    """html.escape's quote=True made "can't" show as "can&#x27;t" once Markdown escaped the '#'."""
    assert render.escape_user_text("I can't feel my \"groin\"") == 'I can\'t feel my "groin"'


MARKDOWN_LINK = "both legs [click](//localhost/x) numb"


def _rendered_markdown_links(markdown: str) -> list[str]:
    """Link targets a CommonMark renderer (markdown-it, as Gradio's server side) makes of `markdown`."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("linkify") if _has_linkify() else MarkdownIt("commonmark")
    return re.findall(r'href="([^"]*)"', md.render(markdown))


def _has_linkify() -> bool:
    try:
        import linkify_it  # noqa: F401
    except ImportError:
        return False
    return True


def test_quoted_user_words_in_a_referral_stay_text() -> None:
    reason = f"Numbness in both legs ('{MARKDOWN_LINK} http://evil.example/a @me *x*')"
    notice = f"{REFERRAL}\nWhat I noticed in your messages:\n- {reason}"
    shown = render.answer_message(answer(TriageLevel.EMERGENCY, notice=notice, reasons=[reason]), 1)
    links = _rendered_markdown_links(shown)
    assert not any("localhost" in h or "evil" in h for h in links), links
    assert "<em>" not in shown
    unescaped = re.sub(r"\\(.)", r"\1", shown)
    assert MARKDOWN_LINK in unescaped  # every word is still shown


def test_rare_words_named_in_a_not_covered_reply_stay_text() -> None:
    odd = "[x](//h/y)"
    ans = answer(notice=f"The sources here say nothing about “{odd}”, so I won't guess.", missing=(odd,))
    assert _rendered_markdown_links(render.answer_message(ans, 1)) == []


def test_escape_markdown_leaves_nothing_to_render() -> None:
    from markdown_it import MarkdownIt

    text = "# h\n- item\n1. one\n**b** _i_ `c` [l](u) ![i](s) <x> &amp; > quote | t |\n---"
    html_out = MarkdownIt("commonmark").render(render.escape_user_text(text))
    for tag in ("<h1", "<li", "<strong", "<em", "<code", "<a ", "<img", "<blockquote", "<hr", "<x>"):
        assert tag not in html_out, tag
