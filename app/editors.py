"""The editors' loop: questions the assistant could not answer (redacted) and patients' feedback.

Writes happen on one writer thread fed by a bounded queue, so a reply never waits for the
database and a database outage never fails a reply (it is logged and counted, then dropped).
Rows older than the retention period are purged at start-up and daily.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    func,
    select,
)

from app.redaction import redact

if TYPE_CHECKING:
    from app.config import Settings
    from app.metrics import Metrics

log = logging.getLogger(__name__)

metadata = MetaData()

unanswered = Table(
    "unanswered_questions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # no_match | refer
    Column("question", Text, nullable=False),  # redacted before it is written
    Column("nearest_passage_id", String(128)),
    Column("score", Float),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("reply_id", String(64), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("passage_id", String(128)),
    Column("passage_version", String(64)),
    Column("helpful", Boolean, nullable=False),
    Column("comment", Text),  # redacted before it is written
)

_STOP = object()
DAY = timedelta(days=1)


def database_url(settings: Settings) -> str:
    if settings.database_url:
        url = settings.database_url
        # Plain postgresql:// would pick psycopg2; we ship psycopg (3).
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url.removeprefix(prefix)
        return url
    return f"sqlite:///{Path(settings.data_dir).resolve() / 'editors.sqlite3'}"


def _now() -> datetime:
    return datetime.now(UTC)


class EditorStore:
    def __init__(self, url: str, retention_days: int, metrics: Metrics | None = None, capacity: int = 10_000) -> None:
        self.url = url
        self.retention = timedelta(days=retention_days)
        self.metrics = metrics
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None) -> EditorStore:
        if not settings.database_url:
            Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        return cls(database_url(settings), settings.retention_days, metrics)

    # -- schema and retention ------------------------------------------------------------

    def create_tables(self) -> None:
        metadata.create_all(self.engine)

    def purge(self, now: datetime | None = None) -> int:
        """Delete rows older than the retention period; returns how many."""
        cutoff = (now or _now()) - self.retention
        with self.engine.begin() as db:
            removed = db.execute(delete(unanswered).where(unanswered.c.created_at < cutoff)).rowcount
            removed += db.execute(delete(feedback).where(feedback.c.created_at < cutoff)).rowcount
        if removed:
            log.info("purged old editor records", extra={"count": removed, "retention_days": self.retention.days})
        return removed

    # -- writing (off the request path) --------------------------------------------------

    def start(self) -> None:
        """Start the writer thread: it creates the tables, purges, then writes and purges daily."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="editor-store", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (up to `timeout` seconds), then stop."""
        if self._thread is not None:
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                pass
            self._thread.join(timeout)
            self._thread = None
        self.engine.dispose()

    def record_unanswered(self, question: str, kind: str, nearest_passage_id: str | None, score: float | None) -> None:
        """Queue a no_match or refer question; it is redacted on the writer thread."""
        self._put(
            (
                "unanswered",
                {
                    "created_at": _now(),
                    "kind": kind,
                    "question": question,
                    "nearest_passage_id": nearest_passage_id,
                    "score": score,
                },
            )
        )

    def record_feedback(
        self,
        reply_id: str,
        kind: str,
        passage_id: str | None,
        passage_version: str | None,
        helpful: bool,
        comment: str | None,
    ) -> None:
        self._put(
            (
                "feedback",
                {
                    "created_at": _now(),
                    "reply_id": reply_id,
                    "kind": kind,
                    "passage_id": passage_id,
                    "passage_version": passage_version,
                    "helpful": helpful,
                    "comment": comment,
                },
            )
        )

    def flush(self, timeout: float = 5.0) -> None:
        """Block until everything queued so far is written (tests, CLI)."""
        done = threading.Event()
        self._put(("flush", done))
        done.wait(timeout)

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._count("dropped")
            log.warning("editor store queue full; record dropped")

    def _count(self, outcome: str, n: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.editor_records.labels(outcome=outcome).inc(n)

    def _run(self) -> None:
        ready = False
        next_try = next_purge = _now()
        while True:
            now = _now()
            if not ready and now >= next_try:
                try:
                    self.create_tables()
                    ready = True
                except Exception as e:  # noqa: BLE001 - retried; records meanwhile fail and are counted
                    log.error("editor store unavailable", extra={"error_type": type(e).__name__})
                    next_try = now + timedelta(seconds=30)
            if ready and now >= next_purge:
                try:
                    self.purge()
                    next_purge = now + DAY
                except Exception as e:  # noqa: BLE001
                    log.error("retention purge failed", extra={"error_type": type(e).__name__})
                    next_purge = now + timedelta(minutes=10)
            wake = next_purge if ready else next_try
            try:
                item = self._queue.get(timeout=min(3600.0, max(0.5, (wake - _now()).total_seconds())))
            except queue.Empty:
                continue
            batch = [item]
            while len(batch) < 200:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [entry for entry in batch if entry is not _STOP and entry[0] != "flush"]
            if records:
                self._write(records)
            for entry in batch:
                if entry is not _STOP and entry[0] == "flush":
                    entry[1].set()
            if any(entry is _STOP for entry in batch):
                return

    def _write(self, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        rows: dict[str, list[dict[str, Any]]] = {"unanswered": [], "feedback": []}
        for table, row in records:
            row = dict(row)
            if table == "unanswered":
                row["question"] = redact(row["question"])
            elif row.get("comment"):
                row["comment"] = redact(row["comment"])
            rows[table].append(row)
        try:
            with self.engine.begin() as db:
                if rows["unanswered"]:
                    db.execute(unanswered.insert(), rows["unanswered"])
                if rows["feedback"]:
                    # One vote per reply: a change of mind replaces the earlier one.
                    ids = [row["reply_id"] for row in rows["feedback"]]
                    db.execute(delete(feedback).where(feedback.c.reply_id.in_(ids)))
                    latest = {row["reply_id"]: row for row in rows["feedback"]}
                    db.execute(feedback.insert(), list(latest.values()))
            self._count("stored", len(records))
        except Exception as e:  # noqa: BLE001 - never let the editors' store hurt a reply
            self._count("failed", len(records))
            log.error("editor records not stored", extra={"error_type": type(e).__name__, "count": len(records)})

    # -- reading (report) ----------------------------------------------------------------

    def report(self, top: int = 20, similarity: int = 80, since: datetime | None = None) -> EditorsReport:
        with self.engine.connect() as db:
            query = select(unanswered.c.question, unanswered.c.kind).order_by(unanswered.c.id.desc()).limit(50_000)
            if since is not None:
                query = query.where(unanswered.c.created_at >= since)
            questions = [(row.question, row.kind) for row in db.execute(query)]
            rates = select(
                feedback.c.kind,
                feedback.c.passage_id,
                feedback.c.passage_version,
                func.count().label("votes"),
                func.sum(func.cast(feedback.c.helpful, Integer)).label("helpful"),
            ).group_by(feedback.c.kind, feedback.c.passage_id, feedback.c.passage_version)
            if since is not None:
                rates = rates.where(feedback.c.created_at >= since)
            passages = [
                PassageRate(row.kind, row.passage_id, row.passage_version, int(row.helpful or 0), int(row.votes))
                for row in db.execute(rates)
            ]
        passages.sort(key=lambda p: (p.rate, -p.votes))
        return EditorsReport(group_questions(questions, similarity)[:top], passages, len(questions))


@dataclass
class QuestionGroup:
    example: str
    count: int
    kinds: dict[str, int] = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PassageRate:
    kind: str
    passage_id: str | None
    passage_version: str | None
    helpful: int
    votes: int

    @property
    def rate(self) -> float:
        return self.helpful / self.votes if self.votes else 0.0


@dataclass(frozen=True)
class EditorsReport:
    groups: list[QuestionGroup]
    passages: list[PassageRate]
    questions: int


def group_questions(questions: Sequence[tuple[str, str]], similarity: int = 80) -> list[QuestionGroup]:
    """Group near-identical questions (rapidfuzz token_set_ratio >= similarity), most frequent first."""
    counts: dict[str, dict[str, int]] = {}
    for question, kind in questions:
        kinds = counts.setdefault(question.strip(), {})
        kinds[kind] = kinds.get(kind, 0) + 1
    groups: list[QuestionGroup] = []
    keys: list[str] = []
    for question, kinds in sorted(counts.items(), key=lambda item: -sum(item[1].values())):
        key = question.lower()
        match = next((g for g, k in zip(groups, keys, strict=True) if fuzz.token_set_ratio(key, k) >= similarity), None)
        if match is None:
            match = QuestionGroup(question, 0)
            groups.append(match)
            keys.append(key)
        group = match
        group.count += sum(kinds.values())
        for kind, n in kinds.items():
            group.kinds[kind] = group.kinds.get(kind, 0) + n
        if len(group.variants) < 5:
            group.variants.append(question)
    groups.sort(key=lambda g: -g.count)
    return groups
