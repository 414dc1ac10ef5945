"""Load, clean and chunk knowledge documents so that every chunk is a citable, whole passage.

Chunks follow the document's headings: a section is one chunk when it fits, and a
longer one is split only between paragraphs, so numbered steps and lists stay
together (each exercise is one chunk with its name, purpose, region, steps and
progression). Ids are derived from content, so re-ingesting an unchanged document
produces the same ids and the index does no work.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import KnowledgeError
from assistant.text import looks_binary
from assistant.types import Chunk

log = logging.getLogger(__name__)

SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")
# Bump when the chunking rules change: the index manifest records it, so the index rebuilds.
CHUNKER_VERSION = "3"

# Page furniture from web pages: whole lines to drop wherever they appear.
FURNITURE = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"video of the day",
        r"report an issue",
        r"screenshot of the current page",
        r"screenshot loading\.*",
        r"image credit:.*",
        r"(photo|image) (credit|courtesy)\b.*",
        r"advertisement",
        r"share (this|on) .*",
        r"(related|recommended)( articles?| reading)?:?",
        r"copyright .*|© .*",
    )
]
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# raw HTML a Markdown file may carry that is never text to quote (html2text drops it from HTML pages)
_CODE_BLOCKS = re.compile(r"<(script|style|template|iframe|object|embed)\b.*?(?:</\1\s*>|\Z)", re.I | re.S)
_BULLET = re.compile(r"^\s*[•·▪●◦]\s*")
_NUMBERED = re.compile(r"^\s+(\d+\.\s)")


@dataclass(frozen=True)
class Expert:
    """Someone the document quotes, with the credentials it gives them."""

    name: str
    credentials: str = ""

    @property
    def label(self) -> str:
        """'Name, first credential' as used in citations, e.g. 'Ben Fung, DPT'."""
        short = self.credentials.split(",")[0].strip()
        return f"{self.name}, {short}" if short else self.name

    def quoted_in(self, text: str) -> bool:
        surname = self.name.split()[-1]
        return bool(re.search(rf"\b{re.escape(surname)}\b", text))


@dataclass
class Document:
    """A cleaned knowledge document: Markdown body plus its front-matter facts."""

    path: str  # relative to the knowledge folder (or the file name)
    title: str
    body: str  # cleaned Markdown
    source: str = ""
    experts: list[Expert] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)  # other words for what it covers
    meta: dict[str, Any] = field(default_factory=dict)


def is_furniture(line: str) -> bool:
    stripped = line.strip().strip("*_ ")
    return any(p.fullmatch(stripped) for p in FURNITURE)


def clean_text(text: str) -> str:
    """Drop page furniture, normalise bullets and indentation, collapse blank runs."""
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if is_furniture(line):
            continue
        line = _BULLET.sub("- ", line)
        line = _NUMBERED.sub(r"\1", line)
        lines.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _plain_text_to_markdown(text: str) -> str:
    """Guess headings in plain text: a short line without end punctuation, set off by blanks."""
    lines = text.split("\n")
    out: list[str] = []
    seen_title = False
    for i, line in enumerate(lines):
        s = line.strip()
        prev_blank = i == 0 or not lines[i - 1].strip()
        is_heading = (
            s
            and prev_blank
            and len(s) <= 90
            and not re.search(r"[.:;,!?\"”’)]$", s)
            and ": " not in s
            and not re.match(r"^(\d+\.|-|\*)\s", s)
            and (i + 1 == len(lines) or not lines[i + 1].strip())
        )
        if is_heading:
            out.append(("## " if seen_title else "# ") + s)
            seen_title = True
        else:
            out.append(line)
    return "\n".join(out)


def _html_to_markdown(raw: str) -> str:
    import html2text

    conv = html2text.HTML2Text()
    conv.body_width = 0
    conv.ignore_images = True
    conv.ignore_links = True
    conv.ignore_emphasis = False
    return conv.handle(raw)


def load_document(path: Path, root: Path | None = None, max_bytes: int | None = None) -> Document:
    """Read one .md/.txt/.html file into a cleaned Document.

    Scripts, styles and embedded objects are never part of the text (a warning names the file).

    Raises:
        KnowledgeError: the file cannot be read, is larger than `max_bytes`, is not UTF-8 text,
            looks like binary data, or has bad front matter.
    """
    rel = str(path.relative_to(root)) if root and path.is_relative_to(root) else path.name
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise KnowledgeError(
                f"{path} is {size / 1e6:,.1f} MB, over the {max_bytes / 1e6:,.0f} MB limit "
                "(ASSISTANT_MAX_DOCUMENT_MB); split it or raise the limit."
            )
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise KnowledgeError(f"{path} is not UTF-8 text; convert it or remove it.") from exc
    except OSError as exc:
        raise KnowledgeError(f"Cannot read {path}: {exc.strerror}") from exc
    if looks_binary(raw):
        raise KnowledgeError(f"{path} looks like binary data, not text; remove it or convert it.")
    if _CODE_BLOCKS.search(raw):
        log.warning("%s: scripts, styles or embedded objects were left out of its text.", path)
        raw = _CODE_BLOCKS.sub("", raw)
    meta: dict[str, Any] = {}
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        import frontmatter
        import yaml

        try:
            post = frontmatter.loads(raw)
        except yaml.YAMLError as exc:
            raise KnowledgeError(f"{path}: the front matter is not valid YAML ({exc}).") from exc
        meta, body = dict(post.metadata), post.content
    elif suffix in (".html", ".htm"):
        body = _html_to_markdown(raw)
    else:
        body = _plain_text_to_markdown(clean_text(raw))
    body = clean_text(body)
    if not body.strip():
        raise KnowledgeError(f"{path} has no text after cleaning.")
    title = str(meta.get("title") or "").strip()
    if not title:
        m = re.search(r"^#\s+(.+)$", body, re.MULTILINE)
        title = m.group(1).strip() if m else path.stem.replace("-", " ").replace("_", " ").title()
    experts = []
    for item in meta.get("experts") or []:
        if isinstance(item, dict) and item.get("name"):
            experts.append(Expert(str(item["name"]), str(item.get("credentials") or "")))
        elif isinstance(item, str):
            experts.append(Expert(item))
    return Document(
        path=rel,
        title=title,
        body=body,
        source=str(meta.get("source") or rel),
        experts=experts,
        keywords=[str(k) for k in meta.get("keywords") or []],
        meta=meta,
    )


def find_documents(paths: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(file, root) pairs for every knowledge file under the given files or folders.

    Raises:
        KnowledgeError: a path does not exist, or no document was found.
    """
    found: list[tuple[Path, Path]] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found += [
                (f, p)
                for f in sorted(p.rglob("*"))
                if f.is_file() and f.suffix.lower() in SUFFIXES and not f.name.startswith(".")
            ]
        elif p.is_file():
            if p.suffix.lower() not in SUFFIXES:
                raise KnowledgeError(f"{p} is not a supported document; use one of {', '.join(SUFFIXES)}.")
            found.append((p, p.parent))
        else:
            raise KnowledgeError(
                f"Knowledge path {p} does not exist. Create it and add .md, .txt or .html files, "
                "or set ASSISTANT_KNOWLEDGE_DIR."
            )
    if not found:
        raise KnowledgeError(
            f"No documents found in {', '.join(map(str, paths))}: add .md, .txt or .html files."
        )
    return found


def _sections(body: str) -> Iterator[tuple[list[str], str, str]]:
    """Yield (heading path, heading line, section text) for each heading's own text."""
    path: list[tuple[int, str]] = []
    heading_line = ""
    buf: list[str] = []

    def emit() -> Iterator[tuple[list[str], str, str]]:
        text = "\n".join(buf).strip()
        if text:
            yield [t for _, t in path], heading_line, text

    for line in body.split("\n"):
        m = _HEADING.match(line)
        if m:
            yield from emit()
            level, title = len(m.group(1)), m.group(2).strip()
            path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
            heading_line, buf = line.strip(), []
        else:
            buf.append(line)
    yield from emit()


def _split(text: str, size: int) -> list[str]:
    """Split a long section between paragraphs (never inside a list), else between sentences."""
    if len(text) <= size:
        return [text]
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        separators=["\n\n", r"\n(?!\d+\.\s|-\s)", r"(?<=[.!?])\s+(?=[A-Z\"“])"],
        is_separator_regex=True,
        keep_separator=False,
        chunk_size=size,
        chunk_overlap=0,
        strip_whitespace=True,
    )
    return splitter.split_text(text)


def chunk_id(source: str, section: str, text: str) -> str:
    """Stable id from where the chunk lives and what it says."""
    digest = hashlib.sha256(f"{source}\n{section}\n{text}".encode()).hexdigest()
    return digest[:24]


def chunk_document(doc: Document, size: int = 1200) -> list[Chunk]:
    """Cut a document into heading-aligned chunks carrying title, section path and experts."""
    chunks: list[Chunk] = []
    for path, heading_line, text in _sections(doc.body):
        # The document title (H1) is not part of the section path; the lead is "Introduction".
        trail = path[1:] if path and path[0] == doc.title else path
        section = " > ".join(trail) or "Introduction"
        for piece in _split(text, size):
            full = f"{heading_line}\n\n{piece}" if heading_line else piece
            experts = tuple(e.label for e in doc.experts if e.quoted_in(piece))
            chunks.append(
                Chunk(
                    id=chunk_id(doc.path, section, full),
                    text=full,
                    document=doc.title,
                    source=doc.path,
                    section=section,
                    experts=experts,
                    position=len(chunks),
                )
            )
    return chunks


def load_chunks(
    paths: Iterable[Path],
    size: int = 1200,
    *,
    max_bytes: int | None = None,
    skipped: list[str] | None = None,
) -> tuple[list[Document], list[Chunk]]:
    """Load every document under `paths` and chunk them all (ids unique across documents).

    A document that cannot be used (unreadable, binary, too big, bad front matter, no text)
    is skipped with a warning naming it, and appended to `skipped`; the rest are loaded.

    Raises:
        KnowledgeError: a path does not exist, or no document under them can be used.
    """
    docs: list[Document] = []
    problems: list[str] = []
    for f, root in find_documents(list(paths)):
        try:
            docs.append(load_document(f, root, max_bytes))
        except KnowledgeError as exc:
            log.warning("Skipped %s: %s", f, exc)
            problems.append(str(exc))
    if skipped is not None:
        skipped.extend(problems)
    if not docs:
        raise KnowledgeError("No usable documents: " + " ".join(problems))
    chunks: dict[str, Chunk] = {}
    for d in docs:
        for c in chunk_document(d, size):
            chunks.setdefault(c.id, c)
    return docs, list(chunks.values())


_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”’)]))\s+(?=[\"“‘(]?[A-Z0-9])")
_LIST_ITEM = re.compile(r"^(\d+\.|[-*])\s+")


def split_units(text: str) -> list[str]:
    """Citable units of a chunk: sentences of prose, and each list item or step whole.

    Every unit is a verbatim substring of `text`, so a citation can be checked by
    substring search. Headings are not units.
    """
    units: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if not line or _HEADING.match(line):
            continue
        if _LIST_ITEM.match(line) or line.startswith("**"):
            units.append(line)
            continue
        units.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return units
