"""The knowledge lifecycle after import: review, service history, and reload without downtime.

- Review: approve or retire one passage by id, editing its YAML file in place (ruamel round
  trip: comments, key order and the `|-` text blocks stay as the clinician wrote them).
- History: knowledge/history.jsonl, append-only, one JSON object a line: each review and each
  version entering or leaving service, with the exact words, so a clinic can show what a
  patient could have been told on a given day.
- Reload: build a new Assistant beside the serving one in a worker thread and swap it in with
  one attribute assignment; on any error the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from ruamel.yaml import YAML

from app import knowledge as knowledge_files
from app.config import Settings
from app.errors import InvalidKnowledge, KnowledgeError, NotReady, StaleIndex
from app.importer import round_trip_yaml
from app.knowledge import Knowledge, Passage

log = logging.getLogger(__name__)

REVIEW_PERIOD = timedelta(days=180)
HISTORY_FILE = "history.jsonl"


class ReviewRefused(Exception):
    """The review action cannot be applied (unknown id, or the passage is not valid)."""

    def __init__(self, message: str, problems: list[KnowledgeError] | None = None) -> None:
        self.problems = problems or []
        lines = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(message + lines)


# ---------------------------------------------------------------------------------------------
# Review


@dataclass(frozen=True)
class ReviewQueue:
    """What needs a clinician: drafts, approved passages overdue (not served) or falling due."""

    drafts: tuple[Passage, ...]
    overdue: tuple[Passage, ...]
    due_soon: tuple[Passage, ...]


def review_queue(knowledge: Knowledge, today: date, warning_days: int) -> ReviewQueue:
    return ReviewQueue(
        tuple(p for p in knowledge.passages if p.status == "draft"),
        knowledge.overdue(today),
        knowledge.due_within(today, warning_days),
    )


def _locate(knowledge_dir: Path, passage_id: str) -> tuple[Path, Any, Any]:
    """The passages file holding `passage_id`, its round-trip document, and the entry."""
    yaml = round_trip_yaml()
    for path in knowledge_files.passage_files(knowledge_dir):
        document = yaml.load(path.read_text(encoding="utf-8"))
        entries = document.get("passages") if isinstance(document, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("id") == passage_id:
                return path, document, entry
    raise ReviewRefused(f"no passage has the id {passage_id!r} in {knowledge_dir / 'passages'}")


def _set(entry: Any, name: str, value: Any, after: str) -> None:
    if name in entry:
        entry[name] = value
    else:  # a draft written without review fields: put them where a reader expects them
        keys = list(entry)
        entry.insert(keys.index(after) + 1 if after in keys else len(keys), name, value)


def review(
    knowledge_dir: Path,
    passage_id: str,
    status: str,
    reviewer: str,
    on: date,
    due: date | None = None,
    reason: str | None = None,
) -> Passage:
    """Approve or retire one passage in place and record it in the history; returns it as saved.

    Approving re-checks the passage (verbatim text, fields) and refuses, writing nothing, if it
    would not load. `due` defaults to `on` + 180 days for approval; a retired passage's review
    is closed on `on`.
    """
    if status not in ("approved", "retired"):
        raise ValueError(status)
    if not reviewer.strip():
        raise ReviewRefused("--reviewer must name the clinician who reviewed the passage")
    due = due or (on + REVIEW_PERIOD if status == "approved" else on)
    if due < on:
        raise ReviewRefused(f"the review due date {due} is before the review date {on}")
    path, document, entry = _locate(knowledge_dir, passage_id)
    _set(entry, "status", status, after="source")
    _set(entry, "reviewed_by", reviewer.strip(), after="status")
    _set(entry, "reviewed_on", on, after="reviewed_by")
    _set(entry, "review_due", due, after="reviewed_on")
    out = io.StringIO()
    round_trip_yaml().dump(document, out)
    problems: list[KnowledgeError] = []
    parsed = knowledge_files.parse_passages(
        path, YAML(typ="safe").load(out.getvalue()), knowledge_dir / "sources", problems
    )
    mine = [p for p in problems if p.entry_id == passage_id]
    if mine and status == "approved":
        raise ReviewRefused(f"{passage_id} cannot be approved until this is fixed:", mine)
    _replace(path, out.getvalue())
    passage = next(p for p in parsed if p.id == passage_id)
    event = {
        "event": status,
        "passage": passage.id,
        "version": passage.version,
        "source": passage.source,
        "by": passage.reviewed_by,
    }
    if status == "approved":
        event["review_due"] = due.isoformat()
    if reason:
        event["reason"] = reason
    append_history(knowledge_dir, [event], on)
    return passage


def _replace(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)  # a reload reading the file sees the old or the new file, never half


# ---------------------------------------------------------------------------------------------
# History

_history_lock = threading.RLock()  # record_service reads, then appends, under it


def history_path(knowledge_dir: Path) -> Path:
    return knowledge_dir / HISTORY_FILE


def read_history(knowledge_dir: Path) -> list[dict[str, Any]]:
    path = history_path(knowledge_dir)
    if not path.exists():
        return []
    events = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {number}: not a JSON object ({e.msg})") from e
    return events


def append_history(knowledge_dir: Path, events: Iterable[dict[str, Any]], on: date) -> None:
    lines = "".join(json.dumps({"on": on.isoformat(), **e}, ensure_ascii=False) + "\n" for e in events)
    if not lines:
        return
    with _history_lock:
        # One write on an O_APPEND descriptor: concurrent writers never interleave inside a line.
        fd = os.open(history_path(knowledge_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode("utf-8"))
        finally:
            os.close(fd)


@dataclass(frozen=True)
class ServedVersion:
    """One version of a passage in service from `since` to `until` (inclusive; None: still)."""

    passage: str
    version: str
    since: date
    until: date | None
    section: str
    source: str
    text: str


def service_periods(events: Iterable[dict[str, Any]]) -> list[ServedVersion]:
    """Every period a passage version was in service, in the order they began."""
    periods: list[ServedVersion] = []
    open_at: dict[str, int] = {}
    for e in events:
        kind, pid = e.get("event"), str(e.get("passage"))
        if kind == "served":
            periods.append(
                ServedVersion(
                    pid,
                    e["version"],
                    date.fromisoformat(e["on"]),
                    None,
                    e.get("section", ""),
                    e.get("source", ""),
                    e.get("text", ""),
                )
            )
            open_at[pid] = len(periods) - 1
        elif kind == "withdrawn" and pid in open_at:
            i = open_at.pop(pid)
            p = periods[i]
            periods[i] = ServedVersion(
                p.passage, p.version, p.since, date.fromisoformat(e["on"]), p.section, p.source, p.text
            )
    return periods


def served_on(events: Iterable[dict[str, Any]], day: date) -> list[ServedVersion]:
    """The versions in service at any time on `day`."""
    return [p for p in service_periods(events) if p.since <= day and (p.until is None or p.until >= day)]


def _why_withdrawn(passage: Passage | None, today: date) -> str:
    if passage is None:
        return "no longer in the knowledge files"
    if passage.status == "approved" and passage.review_due < today:
        return "review overdue"
    return {"retired": "retired", "draft": "returned to draft"}.get(passage.status, "text changed")


def record_service(knowledge_dir: Path, knowledge: Knowledge, today: date) -> list[dict[str, Any]]:
    """Append a `served` / `withdrawn` event for each version that entered or left service.

    Compares what `knowledge` serves today with what the history says is in service, so calling
    it again (build, then reload) records nothing new.
    """
    with _history_lock:
        current = {p.id: p for p in knowledge.served(today)}
        by_id = {p.id: p for p in knowledge.passages}
        before = {p.passage: p for p in service_periods(read_history(knowledge_dir)) if p.until is None}
        events: list[dict[str, Any]] = []
        for pid, period in before.items():
            if pid not in current or current[pid].version != period.version:
                events.append(
                    {
                        "event": "withdrawn",
                        "passage": pid,
                        "version": period.version,
                        "why": _why_withdrawn(by_id.get(pid), today),
                    }
                )
        for pid, p in current.items():
            if pid not in before or before[pid].version != p.version:
                events.append(
                    {
                        "event": "served",
                        "passage": pid,
                        "version": p.version,
                        "source": p.source,
                        "section": p.section,
                        "text": p.text,
                    }
                )
        append_history(knowledge_dir, events, today)
    return events


# ---------------------------------------------------------------------------------------------
# Reload


def knowledge_problems(settings: Settings) -> list[KnowledgeError]:
    """Every load-time problem of the knowledge files: passages, messages and the safety file."""
    from app.assistant import SAFETY_FILE
    from app.safety import SafetyGate

    _, problems = knowledge_files.validate(settings.knowledge_dir)
    try:
        SafetyGate.load(settings.knowledge_dir / SAFETY_FILE)
    except KnowledgeError as e:
        problems.append(e)
    except InvalidKnowledge as e:
        problems += e.problems
    return problems


@dataclass(frozen=True)
class ReloadOutcome:
    served: int
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    history: list[dict[str, Any]] = field(default_factory=list)


def reload(app: FastAPI) -> ReloadOutcome:
    """Validate, build a new Assistant beside the serving one, swap it in. Blocking: run it in a
    worker thread. Raises InvalidKnowledge / StaleIndex / NotReady; the old Assistant keeps
    serving on any error. Reloads are serialized.
    """
    from app.assistant import Assistant
    from app.embedder import load_embedder

    state = app.state
    with state.reload_lock:
        if state.status in ("loading", "stopping"):
            raise NotReady()
        settings: Settings = state.settings
        problems = knowledge_problems(settings)
        if problems:
            raise InvalidKnowledge(problems)
        old = state.assistant
        if old is not None:
            embedder = old.embedder  # the model stays loaded; only changed texts are embedded
        else:
            factory = getattr(state, "embedder_factory", None)
            embedder = factory() if factory else load_embedder(settings.embedder, settings.model)
        new = Assistant.load(settings, embedder, log.warning)
        new.embedder.query_embed(["warm up"])
        # The swap. Each request reads app.state.assistant once, so it sees the old or the new
        # assistant whole, never a half-built one.
        state.assistant = new
        state.status, state.detail = "ready", None
        before = {p.id: p.version for p in old.passages} if old is not None else {}
        after = {p.id: p.version for p in new.passages}
        try:
            recorded = record_service(settings.knowledge_dir, new.knowledge, new.today)
        except OSError as e:  # a read-only knowledge folder must not fail a good reload
            log.warning("could not append to %s: %s", history_path(settings.knowledge_dir), e)
            recorded = []
        # The start-up froze the first assistant's objects (app.main.load_assistant): unfreeze so
        # the replaced one can be collected, then freeze the new long-lived heap.
        del old
        gc.unfreeze()
        gc.collect()
        gc.freeze()
    outcome = ReloadOutcome(
        served=len(after),
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=tuple(sorted(k for k in after.keys() & before.keys() if after[k] != before[k])),
        history=recorded,
    )
    log.info(
        "knowledge reloaded: %d passages served (%d added, %d removed, %d changed)",
        outcome.served,
        len(outcome.added),
        len(outcome.removed),
        len(outcome.changed),
    )
    return outcome


def _reload_logged(app: FastAPI) -> None:
    try:
        reload(app)
    except (InvalidKnowledge, StaleIndex, NotReady) as e:
        log.error("reload refused, still serving the previous knowledge: %s", e or "not ready")
    except Exception:
        log.exception("reload failed, still serving the previous knowledge")


def handle_sighup(app: FastAPI) -> Callable[[], None]:
    """Reload on SIGHUP (call from the lifespan); returns the function that stops listening.

    Only the main thread's event loop can take signals: under TestClient or on Windows this
    does nothing (use POST /v1/admin/reload).
    """
    if not hasattr(signal, "SIGHUP"):
        return lambda: None
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()

    def on_hangup() -> None:
        log.info("SIGHUP: reloading the knowledge")
        task = loop.create_task(asyncio.to_thread(_reload_logged, app))
        running.add(task)
        task.add_done_callback(running.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    except (ValueError, RuntimeError, NotImplementedError):
        return lambda: None

    def stop() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return stop


def install(app: FastAPI) -> None:
    """The reload lock and the admin reload route (call from create_app)."""
    app.state.reload_lock = threading.Lock()
    app.include_router(admin_router())


# ---------------------------------------------------------------------------------------------
# HTTP edge


class ReloadOut(BaseModel):
    status: str = "reloaded"
    passages_served: int
    added: list[str]
    removed: list[str]
    changed: list[str]


class KnowledgeProblemOut(BaseModel):
    file: str
    entry: str | None
    field: str | None
    problem: str


class ReloadProblem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[KnowledgeProblemOut] = []


def _refuse_admin() -> None:
    raise HTTPException(503, "Admin routes are disabled: API key checking (app.security) is not available.")


def admin_guard() -> Callable[..., Any]:
    """app.security.require_admin; fails closed (503 on every admin call) if it cannot be imported."""
    try:
        from app.security import require_admin
    except ImportError as e:
        log.error("admin routes disabled: cannot import app.security.require_admin (%s)", e)
        return _refuse_admin
    return require_admin


def _relative(file: str, knowledge_dir: Path) -> str:
    try:
        return str(Path(file).relative_to(knowledge_dir))
    except ValueError:
        return file


def admin_router() -> APIRouter:
    router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(admin_guard())])

    @router.post(
        "/reload",
        response_model=ReloadOut,
        responses={
            409: {"model": ReloadProblem, "description": "The index is stale and the service is set to refuse."},
            422: {"model": ReloadProblem, "description": "The knowledge files have problems; nothing changed."},
            503: {"model": ReloadProblem, "description": "The service is still starting or stopping."},
        },
    )
    def reload_knowledge(request: Request) -> ReloadOut | JSONResponse:
        """Re-read knowledge/ and swap it in without downtime; on any problem the old knowledge keeps serving."""
        from app.problems import problem

        try:
            outcome = reload(request.app)  # a sync route: FastAPI runs it in a worker thread
        except InvalidKnowledge as e:
            knowledge_dir = request.app.state.settings.knowledge_dir
            errors = [
                {"file": _relative(p.file, knowledge_dir), "entry": p.entry_id, "field": p.field, "problem": p.problem}
                for p in e.problems
            ]
            return problem(
                422,
                f"{len(errors)} problem(s) in the knowledge files; still serving the previous knowledge.",
                errors=errors,
            )
        except StaleIndex as e:
            return problem(409, f"{e} Still serving the previous knowledge.")
        return ReloadOut(
            passages_served=outcome.served,
            added=list(outcome.added),
            removed=list(outcome.removed),
            changed=list(outcome.changed),
        )

    return router
