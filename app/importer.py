"""Bring a new source document into knowledge/: copy it byte for byte, cut it into draft passages.

Drafts are cut by headings and paragraphs, each an exact excerpt of the document, and are never
served: a clinician approves each one (`python -m app review approve`). Re-importing never
touches an existing passage; with `append` it only adds drafts for paragraphs not yet covered.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from app import knowledge as knowledge_files

SUFFIXES = (".txt", ".md", ".markdown")
MARKDOWN = (".md", ".markdown")
FIRST_SECTION = "Introduction"

_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_TITLE_END = re.compile(r"[.,;:!]$")


class ImportRefused(Exception):
    """The import would overwrite something a clinician owns; nothing was written."""


@dataclass(frozen=True)
class Draft:
    id: str
    section: str
    text: str
    questions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    source: Path
    passages_file: Path
    added: tuple[Draft, ...]
    skipped: int  # paragraphs already covered by a passage in the file (append)


def round_trip_yaml() -> YAML:
    """ruamel round-trip settings matching the hand-written files: comments, order and |- kept."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    yaml.indent(mapping=2, sequence=4, offset=2)
    # Drafts show `reviewed_by: null` rather than a bare `reviewed_by:` so the gap is obvious.
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def slug(words: str, limit: int = 48) -> str:
    cut = re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")
    if len(cut) > limit:
        cut = cut[:limit].rsplit("-", 1)[0]
    return cut or "passage"


def _title_like(line: str) -> bool:
    """A short line that reads as a heading in a plain-text document (no sentence ending)."""
    words = line.split()
    return (
        0 < len(words) <= 14
        and len(line) <= 100
        and (line[0].isupper() or line[0].isdigit())
        and not _TITLE_END.search(line)
    )


def split(document: str, markdown: bool) -> list[tuple[str, str]]:
    """(section, paragraph) pairs, each paragraph an exact substring of `document`.

    Markdown: `#` headings (and underlined headings) start sections; blank lines end
    paragraphs. Plain text: when the document has no blank lines (one paragraph per line, as
    the clinic's article), every short title-like line is a heading; otherwise paragraphs are
    separated by blank lines and a title-like paragraph of one line is a heading.
    """
    lines = document.lstrip("\ufeff").split("\n")
    body = [i for i, line in enumerate(lines) if line.strip()]
    one_per_line = not markdown and all(lines[i].strip() for i in range(body[0], body[-1] + 1)) if body else False
    pieces: list[tuple[str, str]] = []
    section = FIRST_SECTION
    block: list[str] = []

    def flush() -> None:
        nonlocal section
        text = "\n".join(block).strip()
        block.clear()
        if not re.search(r"\w", text):
            return  # a rule (---), a stray marker: nothing a patient could be shown
        if not markdown and "\n" not in text and _title_like(text):
            section = text
        else:
            pieces.append((section, text))

    for line in lines:
        if not line.strip():
            flush()
        elif markdown and (heading := _ATX_HEADING.match(line)):
            flush()
            section = heading.group(1).strip()
        elif markdown and len(block) == 1 and _SETEXT_UNDERLINE.match(line):
            section = block[0].strip()
            block.clear()
        elif one_per_line:
            block.append(line)
            flush()
        else:
            block.append(line)
    flush()
    return pieces


def drafts(document: str, markdown: bool, taken: Iterable[str] = ()) -> list[Draft]:
    """Draft passages with stable ids `<section-slug>-<n>`, skipping ids already taken."""
    used = set(taken)
    numbers: dict[str, int] = {}
    asked: set[str] = set()
    result = []
    for section, text in split(document, markdown):
        base = slug(section)
        while True:
            numbers[base] = numbers.get(base, 0) + 1
            pid = f"{base}-{numbers[base]}"
            if pid not in used:
                break
        used.add(pid)
        # A heading that is a patient's question is the natural first vetted question.
        question = section if section.endswith("?") and section not in asked else None
        if question:
            asked.add(section)
        result.append(Draft(pid, section, text, (question,) if question else ()))
    return result


def _entry(draft: Draft, source: str) -> CommentedMap:
    entry = CommentedMap()
    entry["id"] = draft.id
    entry["section"] = draft.section
    entry["source"] = source
    entry["status"] = "draft"
    for name in knowledge_files.REVIEW_FIELDS:
        entry[name] = None
    entry["text"] = LiteralScalarString(draft.text)
    if draft.questions:
        entry["questions"] = CommentedSeq(draft.questions)
    return entry


HEADER = """\
Draft passages cut from knowledge/sources/{source} by `python -m app import` on {today}.
NOTHING HERE IS SERVED until a clinician approves it, passage by passage:
  python -m app review approve <id> --reviewer "Your name"
Before approving: delete entries that answer nothing a patient asks; you may cut a text
shorter, but it must stay an exact excerpt of the source; add the `questions:` patients ask.
Format: knowledge/README.md"""


def import_document(document: Path, knowledge_dir: Path, today: date, append: bool = False) -> ImportResult:
    """Copy `document` into sources/ and write (or extend) passages/<stem>.yaml with drafts.

    Raises ImportRefused, before writing anything, when the passages file already exists and
    `append` is false, or when a different document of the same name is already in sources/.
    """
    if document.suffix.lower() not in SUFFIXES:
        raise ImportRefused(
            f"{document.name}: only plain text or Markdown ({', '.join(SUFFIXES)}) can be imported; "
            "save the document as text first"
        )
    try:
        raw = document.read_bytes()
        text = document.read_text(encoding="utf-8")  # newlines as the validator reads them
    except UnicodeDecodeError as e:
        raise ImportRefused(f"{document} is not UTF-8 text; save it as UTF-8 first") from e
    source = knowledge_dir / "sources" / document.name
    target = knowledge_dir / "passages" / f"{document.stem}.yaml"
    if target.exists() and not append:
        raise ImportRefused(
            f"{target} already exists; its passages are never overwritten. "
            "Use --append to add drafts only for paragraphs it does not cover yet."
        )
    if source.exists() and source.read_bytes() != raw and not append:
        raise ImportRefused(f"a different {source.name} is already in {source.parent}; rename the new document")

    yaml = round_trip_yaml()
    existing = yaml.load(target.read_text(encoding="utf-8")) if target.exists() else None
    if existing is not None and not (isinstance(existing, dict) and isinstance(existing.get("passages"), list)):
        raise ImportRefused(f"{target} has no 'passages:' list; fix it before appending")
    entries = existing["passages"] if existing is not None else CommentedSeq()
    known, _ = knowledge_files.validate(knowledge_dir)
    covered = [str(e.get("text", "")) for e in entries if isinstance(e, dict)]
    new = []
    skipped = 0
    for draft in drafts(text, document.suffix.lower() in MARKDOWN, (p.id for p in known.passages)):
        if any(draft.text in old or old in draft.text for old in covered if old):
            skipped += 1
            continue
        new.append(draft)

    if existing is None:
        existing = CommentedMap()
        existing["passages"] = entries
        existing.yaml_set_start_comment(HEADER.format(source=document.name, today=today.isoformat()))
    entries.extend(_entry(d, document.name) for d in new)
    out = io.StringIO()
    yaml.dump(existing, out)
    _check_verbatim(out.getvalue(), new, text)

    source.parent.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not source.exists() or source.read_bytes() != raw:
        shutil.copyfile(document, source)
    if new or not target.exists():
        _write(target, out.getvalue())
    return ImportResult(source, target, tuple(new), skipped)


def _check_verbatim(dumped: str, new: list[Draft], document: str) -> None:
    # YAML must give back exactly the words of the document (a literal block can carry them;
    # where it cannot, ruamel falls back to a quoted scalar). Refuse rather than write a near miss.
    reloaded = {e["id"]: e["text"] for e in YAML(typ="safe").load(dumped)["passages"]}
    for draft in new:
        if reloaded[draft.id] != draft.text or draft.text not in document:
            raise ImportRefused(f"could not write passage {draft.id} verbatim; nothing was written")


def _write(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
