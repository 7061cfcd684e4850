"""Load and validate the clinician-vetted knowledge files in knowledge/.

Every problem is collected and reported at once (file, entry id, field), so a clinic editing
the YAML by hand sees everything it has to fix in one run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from app.errors import InvalidKnowledge, KnowledgeError

STATUSES = ("approved", "draft", "retired")
REVIEW_FIELDS = ("reviewed_by", "reviewed_on", "review_due")
PASSAGE_FIELDS = ("id", "section", "text", "source", "status", *REVIEW_FIELDS)
MESSAGE_KINDS = ("no_match",)
EXAMPLES_FILE = "question_examples.yaml"


def content_version(text: str) -> str:
    """Short content hash: the same words always have the same version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Passage:
    id: str
    section: str
    text: str
    source: str
    status: str
    reviewed_by: str
    reviewed_on: date
    review_due: date
    questions: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        return content_version(self.text)

    def servable(self, today: date) -> bool:
        return self.status == "approved" and self.review_due >= today


@dataclass(frozen=True)
class Message:
    """A fixed, vetted reply that is not a passage (e.g. the decline)."""

    kind: str
    text: str
    reviewed_by: str
    reviewed_on: date
    review_due: date


@dataclass(frozen=True)
class Knowledge:
    passages: tuple[Passage, ...]
    messages: dict[str, Message] = field(default_factory=dict)
    # Questions the clinic knows its documents do not answer (out_of_scope.yaml): a question
    # closer to one of these than to any passage is declined, not answered with a near miss.
    out_of_scope: tuple[str, ...] = ()
    # Patients' own wordings of questions a passage answers (question_examples.yaml), labelled and
    # reviewed but not vetted as alternates: they help find the passage and are never shown, nor
    # read by the safety gate (docs/answer-quality.md, session 12).
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Patients' questions the documents do not answer (question_examples.yaml `out_of_scope`): they
    # count for declining like out_of_scope; the safety gate reads them only as ordinary text for
    # its crisis semantic layer (docs/safety.md, session 13).
    out_of_scope_examples: tuple[str, ...] = ()

    def served(self, today: date) -> tuple[Passage, ...]:
        return tuple(p for p in self.passages if p.servable(today))

    def due_within(self, today: date, days: int) -> tuple[Passage, ...]:
        """Servable passages whose review falls due within `days` days."""
        return tuple(p for p in self.served(today) if (p.review_due - today).days <= days)

    def overdue(self, today: date) -> tuple[Passage, ...]:
        return tuple(p for p in self.passages if p.status == "approved" and p.review_due < today)


def read_yaml(path: Path, problems: list[KnowledgeError]) -> Any:
    try:
        return YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        problems.append(KnowledgeError(str(path), None, None, f"cannot be read ({e})"))
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problems.append(KnowledgeError(str(path), None, None, f"is not valid YAML{where}"))
    return None


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _text_field(entry: dict[str, Any], name: str, err: Any) -> str:
    value = entry.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        err(name, "is required")
        return ""
    if not isinstance(value, str):
        err(name, f"must be text, not {type(value).__name__}")
        return ""
    return value


def _review_fields(entry: dict[str, Any], err: Any, required: bool = True) -> tuple[str, date, date]:
    """The review fields; a draft (required=False) may leave them empty (null or "")."""
    if not required:
        entry = {k: v for k, v in entry.items() if not (k in REVIEW_FIELDS and v in (None, ""))}
    reviewed_by = _text_field(entry, "reviewed_by", err) if required or "reviewed_by" in entry else ""
    dates: list[date] = []
    for name in ("reviewed_on", "review_due"):
        raw = entry.get(name)
        parsed = _as_date(raw)
        if raw is None:
            if required:
                err(name, "is required")
        elif parsed is None:
            err(name, f"must be a date like 2027-05-31, not {raw!r}")
        dates.append(parsed or date.min)
    if dates[0] != date.min and dates[1] != date.min and dates[1] < dates[0]:
        err("review_due", "is before reviewed_on")
    return reviewed_by, dates[0], dates[1]


def parse_passages(path: Path, raw: Any, sources_dir: Path, problems: list[KnowledgeError]) -> list[Passage]:
    """Turn one passages file into Passage objects, appending every problem found."""
    file = str(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("passages"), list):
        problems.append(KnowledgeError(file, None, "passages", "the file must hold a list under 'passages:'"))
        return []
    source_cache: dict[str, str | None] = {}
    passages = []
    for position, entry in enumerate(raw["passages"], start=1):
        entry_id = entry.get("id") if isinstance(entry, dict) else None
        label = entry_id if isinstance(entry_id, str) and entry_id else f"#{position}"

        def err(name: str, problem: str, label: str = label) -> None:
            problems.append(KnowledgeError(file, label, name, problem))

        if not isinstance(entry, dict):
            err("", "each passage must be a mapping of fields")
            continue
        unknown = sorted(set(entry) - set(PASSAGE_FIELDS) - {"questions"})
        for name in unknown:
            err(name, "is not a known field (typo?)")
        pid = _text_field(entry, "id", err)
        section = _text_field(entry, "section", err)
        text = _text_field(entry, "text", err)
        source = _text_field(entry, "source", err)
        status = _text_field(entry, "status", err)
        if status and status not in STATUSES:
            err("status", f"must be one of {', '.join(STATUSES)}, not {status!r}")
        # Review fields are required once a clinician has acted (approved / retired), not for drafts.
        reviewed_by, reviewed_on, review_due = _review_fields(entry, err, required=status != "draft")
        questions = entry.get("questions") or []
        if not isinstance(questions, list) or not all(isinstance(q, str) and q.strip() for q in questions):
            err("questions", "must be a list of non-empty questions")
            questions = []
        if source:
            if source not in source_cache:
                source_path = sources_dir / source
                try:
                    source_cache[source] = source_path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    source_cache[source] = None
            document = source_cache[source]
            if document is None:
                err("source", f"names {source!r}, which is not a readable file in {sources_dir}")
            elif text and text not in document:
                err("text", f"is not a verbatim excerpt of {source} (check quotes, spaces and line breaks)")
        passages.append(
            Passage(pid, section, text, source, status, reviewed_by, reviewed_on, review_due, tuple(questions))
        )
    return passages


def parse_messages(path: Path, raw: Any, problems: list[KnowledgeError]) -> dict[str, Message]:
    file = str(path)
    messages: dict[str, Message] = {}
    if not isinstance(raw, dict):
        problems.append(KnowledgeError(file, None, None, "must map message kinds to messages"))
        return messages
    for kind in MESSAGE_KINDS:
        entry = raw.get(kind)

        def err(name: str, problem: str, kind: str = kind) -> None:
            problems.append(KnowledgeError(file, kind, name, problem))

        if not isinstance(entry, dict):
            err("", "is missing")
            continue
        text = _text_field(entry, "text", err)
        status = entry.get("status")
        if status != "approved":
            err("status", "must be 'approved' for a message the service sends")
        reviewed_by, reviewed_on, review_due = _review_fields(entry, err)
        messages[kind] = Message(kind, text, reviewed_by, reviewed_on, review_due)
    return messages


def parse_out_of_scope(path: Path, raw: Any, problems: list[KnowledgeError]) -> tuple[str, ...]:
    file = str(path)

    def err(name: str, problem: str, entry: str | None = None) -> None:
        problems.append(KnowledgeError(file, entry, name, problem))

    if not isinstance(raw, dict) or not isinstance(raw.get("topics"), list):
        err("topics", "the file must hold a list under 'topics:'")
        return ()
    if raw.get("status") != "approved":
        err("status", "must be 'approved'")
    _review_fields(raw, err)
    questions: list[str] = []
    for position, topic in enumerate(raw["topics"], start=1):
        name = topic.get("topic") if isinstance(topic, dict) else None
        label = name if isinstance(name, str) and name else f"#{position}"
        items = topic.get("questions") if isinstance(topic, dict) else None
        if not isinstance(items, list) or not items or not all(isinstance(q, str) and q.strip() for q in items):
            err("questions", "must be a non-empty list of questions", label)
            continue
        questions += [q.strip() for q in items]
    return tuple(dict.fromkeys(questions))


def parse_examples(
    path: Path, raw: Any, passages: Iterable[Passage], problems: list[KnowledgeError]
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """question_examples.yaml: reviewed lists of patients' questions, by the passage that answers them."""
    file = str(path)

    def err(name: str, problem: str, entry: str | None = None) -> None:
        problems.append(KnowledgeError(file, entry, name, problem))

    if not isinstance(raw, dict) or not isinstance(raw.get("questions"), dict):
        err("questions", "the file must map passage ids to lists of questions under 'questions:'")
        return {}, ()
    if raw.get("status") == "draft":
        return {}, ()  # written by `python -m app examples`, not reviewed yet: not used
    if raw.get("status") != "approved":
        err("status", "must be 'approved' (or 'draft', which the service does not use)")
    _review_fields(raw, err)
    known = {p.id: p for p in passages}
    examples: dict[str, tuple[str, ...]] = {}
    for pid, items in raw["questions"].items():
        if pid not in known:
            err("questions", "is not the id of a passage", str(pid))
            continue
        if not isinstance(items, list) or not all(isinstance(q, str) and q.strip() for q in items):
            err("questions", "must be a list of questions", str(pid))
            continue
        vetted = {_question_key(q) for q in known[pid].questions}
        examples[pid] = tuple(dict.fromkeys(q.strip() for q in items if _question_key(q) not in vetted))
    declined = raw.get("out_of_scope") or []
    if not isinstance(declined, list) or not all(isinstance(q, str) and q.strip() for q in declined):
        err("out_of_scope", "must be a list of questions")
        declined = []
    answered = {_question_key(q): p.id for p in known.values() for q in (*p.questions, *examples.get(p.id, ()))}
    for question in declined:
        if _question_key(question) in answered:
            err("out_of_scope", f"is also a question of passage {answered[_question_key(question)]!r}", question)
    return examples, tuple(dict.fromkeys(q.strip() for q in declined))


def _check_unique(passages: Iterable[tuple[Path, Passage]], problems: list[KnowledgeError]) -> None:
    seen: dict[str, Path] = {}
    for path, passage in passages:
        if not passage.id:
            continue
        if passage.id in seen:
            problems.append(
                KnowledgeError(str(path), passage.id, "id", f"is used twice (also in {seen[passage.id].name})")
            )
        else:
            seen[passage.id] = path


def _question_key(question: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", question.lower()))


def _check_out_of_scope(
    path: Path, out_of_scope: Iterable[str], passages: Iterable[Passage], problems: list[KnowledgeError]
) -> None:
    """A question listed as out of scope must not also be a vetted question of a passage."""
    vetted = {_question_key(q): p.id for p in passages for q in p.questions}
    for question in out_of_scope:
        owner = vetted.get(_question_key(question))
        if owner:
            problems.append(
                KnowledgeError(
                    str(path), question, "questions", f"is also a vetted question of passage {owner!r}: keep it in one"
                )
            )


def passage_files(knowledge_dir: Path) -> list[Path]:
    return sorted((knowledge_dir / "passages").glob("*.yaml"))


def validate(knowledge_dir: Path) -> tuple[Knowledge, list[KnowledgeError]]:
    """Read every knowledge file; return what could be read and every problem found."""
    problems: list[KnowledgeError] = []
    sources_dir = knowledge_dir / "sources"
    files = passage_files(knowledge_dir)
    if not files:
        problems.append(KnowledgeError(str(knowledge_dir / "passages"), None, None, "holds no *.yaml passages file"))
    located: list[tuple[Path, Passage]] = []
    for path in files:
        raw = read_yaml(path, problems)
        if raw is not None:
            located += [(path, p) for p in parse_passages(path, raw, sources_dir, problems)]
    _check_unique(located, problems)
    messages_path = knowledge_dir / "messages.yaml"
    messages: dict[str, Message] = {}
    if not messages_path.exists():
        problems.append(KnowledgeError(str(messages_path), None, None, "is missing"))
    else:
        raw = read_yaml(messages_path, problems)
        if raw is not None:
            messages = parse_messages(messages_path, raw, problems)
    out_of_scope: tuple[str, ...] = ()
    out_of_scope_path = knowledge_dir / "out_of_scope.yaml"
    if out_of_scope_path.exists():
        raw = read_yaml(out_of_scope_path, problems)
        if raw is not None:
            out_of_scope = parse_out_of_scope(out_of_scope_path, raw, problems)
            _check_out_of_scope(out_of_scope_path, out_of_scope, [p for _, p in located], problems)
    examples: dict[str, tuple[str, ...]] = {}
    declined: tuple[str, ...] = ()
    examples_path = knowledge_dir / EXAMPLES_FILE
    if examples_path.exists():
        raw = read_yaml(examples_path, problems)
        if raw is not None:
            examples, declined = parse_examples(examples_path, raw, [p for _, p in located], problems)
    return Knowledge(tuple(p for _, p in located), messages, out_of_scope, examples, declined), problems


def load(knowledge_dir: Path) -> Knowledge:
    """Load the knowledge base or raise InvalidKnowledge listing every problem."""
    knowledge, problems = validate(knowledge_dir)
    if problems:
        raise InvalidKnowledge(problems)
    return knowledge
