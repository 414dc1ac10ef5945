"""Answers as page content: chat messages with triage banners and `[n]` links, and a sources panel.

Everything a person typed and every passage of the knowledge base is escaped with
`html.escape` here, before any markup of ours is added, so the page never depends
on Gradio's sanitizer to keep a `<script>` or an `onerror=` from running. The
`Transcript` is one browser session's conversation: what `Assistant.ask` needs as
history (the person's own words) and what the page shows.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from assistant.errors import with_emergency_note
from assistant.types import Answer, Citation, TriageLevel, render_text

TITLE = "Back-pain guidance"
INTRO = (
    "Guidance on back pain from treadmill and incline walking, quoted from the articles and "
    "experts shown under Sources. It is not a diagnosis and does not replace a physical "
    "therapist or doctor. In an emergency, call your local emergency number."
)
EXAMPLES = [
    "Why does my back hurt on incline?",
    "What can I do to stop back pain on the treadmill?",
    "Tell me about the glute bridge",
    "When should I see a physical therapist?",
]
ERROR_REPLY = with_emergency_note(
    "Sorry, something went wrong on our side while answering that. Your conversation is "
    "still here: please try again, or rephrase the question."
)
SESSION_LOST = (
    "This server could not read your earlier messages, so this answer considers only this one. "
    "If you mentioned a warning sign before, please say it again."
)
NO_SOURCES = (
    "Sources will appear here. Each [n] in an answer points to the passage it quotes, "
    "with the quoted sentences highlighted."
)

_BANNERS: dict[TriageLevel, tuple[str, str, str]] = {
    # level: (css class, ARIA role, heading people read first)
    TriageLevel.EMERGENCY: ("triage-emergency", "alert", "Emergency: get help now"),
    TriageLevel.URGENT: ("triage-urgent", "alert", "Urgent: see a doctor today"),
    TriageLevel.SEE_PT: ("triage-see-pt", "note", "Recommendation: see a physical therapist"),
}
_MARKER = re.compile(r"\[(\d+)\]")
# Every ASCII punctuation character Markdown could read (CommonMark lets any be backslash-escaped),
# bar those html.escape makes inert (& < >, and ; which would break its entities) and those Markdown
# never reads (quotes , ; ? %).
_MD_SPECIAL = re.compile(r"([!#$()*+\-./:=@\[\\\]^_`{|}~])")
_BOLD = re.compile(r"\*\*([^*<\n]+?)\*\*")


def escape_markdown(text: str) -> str:
    """Text that Markdown shows literally: no link, emphasis, list or autolinked URL can start in it."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def escape_user_text(text: str) -> str:
    """A person's message for the chat: shown literally, never as HTML or Markdown."""
    return escape_markdown(html.escape(text, quote=False))  # quotes are safe in text


def anchor(key: int, n: int) -> str:
    """The id of source `[n]` of the `key`-th answer in the sources panel."""
    return f"src-{key}-{n}"


# -- chat messages -------------------------------------------------------------------------
def banner(answer: Answer) -> str:
    """The triage banner or card that goes above the answer text, or "" for self-care."""
    level = answer.triage.level
    if level not in _BANNERS:
        return ""
    css, role, heading = _BANNERS[level]
    lines = [answer.triage.referral.strip()] if answer.triage.referral.strip() else []
    if answer.why:
        lines.append(answer.why)
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return (
        f'<div class="triage {css}" role="{role}" aria-label="{html.escape(heading)}">'
        f'<p class="triage-heading"><strong>{html.escape(heading)}</strong></p>{body}</div>'
    )


def body(answer: Answer) -> str:
    """The answer text below the banner (Markdown), before escaping and linking.

    Rendered from the answer's fields: the banner already shows the referral and the
    "Why:" line, so they are left out here; an emergency, urgent or out-of-scope reply
    (no banner for out-of-scope) keeps its notice.
    """
    if answer.triage.level in _BANNERS and not answer.blocks and not answer.notice.strip():
        return ""
    notice = answer.notice
    referral = answer.triage.referral.strip()
    if answer.triage.level in _BANNERS and referral and notice.startswith(referral):
        notice = notice[len(referral) :].lstrip("\n")
    return render_text(notice=_inert(notice, answer), blocks=answer.blocks, disclaimer=answer.disclaimer)


def _inert(notice: str, answer: Answer) -> str:
    """The notice with the person's own words in it (triage reasons quote them, a "not covered"
    reply names their rare words) escaped as Markdown, so "[click](//host)" stays text."""
    for quoted in sorted({*answer.triage.reasons, *answer.missing}, key=len, reverse=True):
        if quoted:
            notice = notice.replace(quoted, escape_markdown(quoted))
    return notice


def body_markdown(text: str, key: int) -> str:
    """Answer Markdown with HTML escaped and each `[n]` linked to its source in the panel."""

    def link(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return f'<a class="cite" href="#{anchor(key, n)}"><span class="sr-only">source </span>[{n}]</a>'

    return _MARKER.sub(link, html.escape(text, quote=False))


def answer_message(answer: Answer, key: int) -> str:
    """The whole assistant message: banner first, then the linked answer text."""
    return _join(banner(answer), body_markdown(body(answer), key))


def stream(answer: Answer, key: int, words_per_step: int = 6) -> Iterator[str]:
    """Successive states of the assistant message: the banner alone, then the text word by word.

    The answer is already computed; streaming only lets the banner land first and the
    text arrive at reading pace. The last state equals `answer_message(answer, key)`.
    """
    top, text = banner(answer), body(answer)
    if top:
        yield top
    tokens = re.split(r"(\s+)", text)  # words at even positions, the whitespace between them odd
    step = max(1, words_per_step) * 2
    for end in range(step, len(tokens), step):
        yield _join(top, body_markdown("".join(tokens[:end]), key))
    yield answer_message(answer, key)


def _join(top: str, rest: str) -> str:
    return f"{top}\n\n{rest}" if top and rest else top or rest


# -- sources panel -------------------------------------------------------------------------
def cited_spans(answer: Answer) -> dict[int, list[tuple[int, int]]]:
    """Where each statement of the answer sits in the text of the chunk it cites (from its fields)."""
    by_n = {c.n: c for c in answer.citations}
    spans: dict[int, list[tuple[int, int]]] = {}
    for statement, n in answer.units:
        if n not in by_n:
            continue
        start = by_n[n].text.find(statement) if statement else -1
        if start >= 0:
            spans.setdefault(n, []).append((start, start + len(statement)))
    return spans


def highlight(text: str, spans: list[tuple[int, int]]) -> str:
    """A chunk as HTML paragraphs: escaped, headings dropped, cited spans in `<mark>`."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out = []
    for p_start, p_end in _paragraphs(text):
        pos, parts = p_start, []
        for start, end in merged:
            start, end = max(start, p_start), min(end, p_end)
            if start >= end:
                continue
            parts.append(html.escape(text[pos:start]))
            parts.append(f"<mark>{html.escape(text[start:end])}</mark>")
            pos = end
        parts.append(html.escape(text[pos:p_end]))
        out.append("<p>" + _BOLD.sub(r"<strong>\1</strong>", "".join(parts)) + "</p>")
    return "".join(out)


def _paragraphs(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each paragraph that is not a Markdown heading."""
    for m in re.finditer(r"[^\n](?:.|\n(?!\n))*", text):
        if not m.group().lstrip().startswith("#"):
            yield m.start(), m.end()


def source_card(citation: Citation, spans: list[tuple[int, int]], key: int) -> str:
    """One cited passage with its document, section and expert."""
    section = " › ".join(part.strip() for part in citation.section.split(">"))
    meta = [f'<p class="source-meta"><span>Section:</span> {html.escape(section)}</p>']
    if citation.experts:
        who = "; ".join(citation.experts)
        label = "Expert quoted" if len(citation.experts) == 1 else "Experts quoted"
        meta.append(f'<p class="source-meta"><span>{label}:</span> {html.escape(who)}</p>')
    return (
        f'<article class="source" id="{anchor(key, citation.n)}" tabindex="-1" '
        f'aria-label="Source {citation.n}">'
        f'<h4><span class="source-n">[{citation.n}]</span> '
        f"<cite>{html.escape(citation.document)}</cite></h4>{''.join(meta)}"
        f'<blockquote class="source-text">{highlight(citation.text, spans)}</blockquote>'
        "</article>"
    )


def sources_group(question: str, answer: Answer, key: int) -> str:
    """The cards for one answer, or a line saying why it has none."""
    if not answer.citations:
        reason = (
            "This reply is a safety referral, so it quotes no articles."
            if answer.triage.level in (TriageLevel.EMERGENCY, TriageLevel.URGENT)
            else "This reply quotes no passages."
        )
        return f'<p class="source-none">{reason}</p>'
    spans = cited_spans(answer)
    return "".join(source_card(c, spans.get(c.n, []), key) for c in answer.citations)


# -- one session's conversation --------------------------------------------------------------
@dataclass
class Exchange:
    """One question and what came back: an answer, or the friendly error reply."""

    question: str
    answer: Answer | None


@dataclass
class Transcript:
    """A browser session's conversation, the source of truth for the chat and sources panel.

    It lives in the browser, not the process: `assistant/session.py` signs it into a token the
    page sends back with every event, so any replica can answer the next message.

    Exchange k (1-based) is shown as chat messages 2k-2 (the question) and 2k-1 (the reply).
    """

    exchanges: list[Exchange] = field(default_factory=list)
    feedback_ids: dict[int, int] = field(default_factory=dict)  # exchange key -> stored row id
    last_feedback: int | None = None  # row id a comment would be attached to
    recent: list[float] = field(default_factory=list)  # when recent messages were answered (epoch s)

    def history(self) -> list[dict[str, str]]:
        """The conversation for `Assistant.ask`: the person's own words and the answers given."""
        turns = []
        for ex in self.exchanges:
            turns.append({"role": "user", "content": ex.question})
            turns.append({"role": "assistant", "content": ex.answer.answer if ex.answer else ERROR_REPLY})
        return turns

    def messages(self, partial: str | None = None) -> list[dict[str, str]]:
        """Chat messages; `partial` replaces the last reply while it is being streamed."""
        out = []
        for key, ex in enumerate(self.exchanges, start=1):
            out.append({"role": "user", "content": escape_user_text(ex.question)})
            reply = answer_message(ex.answer, key) if ex.answer else html.escape(ERROR_REPLY)
            out.append({"role": "assistant", "content": reply})
        if partial is not None and out:
            out[-1] = {"role": "assistant", "content": partial}
        return out

    def add(self, question: str, answer: Answer | None) -> int:
        """Record an exchange and return its key (its 1-based number)."""
        self.exchanges.append(Exchange(question, answer))
        return len(self.exchanges)

    def stream(self, key: int) -> Iterator[list[dict[str, str]]]:
        """Chat messages while exchange `key`'s answer is streamed in."""
        answer = self.exchanges[key - 1].answer
        if answer is None:
            yield self.messages()
            return
        for partial in stream(answer, key):
            yield self.messages(partial)

    def sources_html(self) -> str:
        """The sources panel: the latest answer's passages open, earlier ones folded."""
        groups = []
        answered = [(k, ex) for k, ex in enumerate(self.exchanges, start=1) if ex.answer]
        for i, (key, ex) in enumerate(reversed(answered)):
            assert ex.answer is not None
            title = f"Answer {key}: “{html.escape(_shorten(ex.question))}”"
            cards = sources_group(ex.question, ex.answer, key)
            if i == 0:
                groups.append(
                    f'<section class="source-group latest" aria-label="Sources of answer {key}">'
                    f"<h3>{title}</h3>{cards}</section>"
                )
            else:
                groups.append(f'<details class="source-group"><summary>{title}</summary>{cards}</details>')
        inner = "".join(groups) or f'<p class="source-none">{html.escape(NO_SOURCES)}</p>'
        return (
            '<div class="sources" role="region" aria-labelledby="sources-title">'
            '<h2 id="sources-title">Sources</h2>'
            f"{inner}</div>"
        )

    def feedback_record(self, message_index: int) -> tuple[int, dict[str, Any]] | None:
        """(exchange key, record) for the reply at chat position `message_index`, if answered."""
        if message_index < 0 or message_index % 2 != 1:
            return None
        key = message_index // 2 + 1
        if key > len(self.exchanges) or self.exchanges[key - 1].answer is None:
            return None
        ex = self.exchanges[key - 1]
        assert ex.answer is not None
        earlier = Transcript(self.exchanges[: key - 1]).history()
        return key, {
            "user_input": ex.question,
            "response": ex.answer.answer,
            "citations": [asdict(c) for c in ex.answer.citations],
            "triage_level": str(ex.answer.triage.level),
            "history": earlier,
        }


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def rate_limit_note(limit: int) -> str:
    """What a session sending more than `limit` messages a minute is told."""
    return (
        f"You have sent {limit} messages in the last minute, the limit for one conversation. "
        "Please wait a moment and send it again."
    )


def notice(text: str) -> str:
    """A status line under the message box, read out by screen readers."""
    if not text:
        return '<div class="notice" role="status" aria-live="polite"></div>'
    return f'<div class="notice notice-shown" role="status" aria-live="polite">{html.escape(text)}</div>'


def header() -> str:
    """The page title and the note on what the assistant is and is not."""
    return (
        f'<header class="page-header"><h1>{html.escape(TITLE)}</h1>'
        f'<p class="intro">{html.escape(INTRO)}</p></header>'
    )
