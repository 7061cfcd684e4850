"""The editors' store: redacted writes off the request path, retention purge, the report, and
the same store on a real PostgreSQL server."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from server_process import free_port
from sqlalchemy import select
from typer.testing import CliRunner

from app.config import Settings
from app.editors import EditorStore, feedback, group_questions, unanswered
from app.metrics import Metrics


def sqlite_store(tmp_path: Path, metrics: Metrics | None = None) -> EditorStore:
    return EditorStore(f"sqlite:///{tmp_path / 'editors.sqlite3'}", retention_days=30, metrics=metrics)


def exercise(store: EditorStore) -> None:
    """The store's whole contract, on whichever database `store` points at."""
    store.start()
    store.record_unanswered("My name is Jane Doe, can I bring my dog? call 555-123-4567", "no_match", "driving", 0.2)
    store.record_unanswered("can I bring my dog along?", "no_match", None, 0.1)
    store.record_unanswered("Can I bring my dog", "no_match", None, 0.1)
    store.record_unanswered("Should I stop my lithium?", "refer", None, None)
    store.record_feedback("r1", "answer", "driving", "abc123", True, None)
    store.record_feedback("r2", "answer", "driving", "abc123", True, "thanks, I'm Ann Lee")
    store.record_feedback("r3", "answer", "driving", "abc123", False, None)
    store.record_feedback("r3", "answer", "driving", "abc123", True, "changed my mind")  # replaces the vote above
    store.flush()
    with store.engine.connect() as db:
        questions = [row.question for row in db.execute(select(unanswered.c.question))]
        comments = [row.comment for row in db.execute(select(feedback.c.comment)) if row.comment]
    assert not any("Jane" in q or "555" in q for q in questions)
    assert any("[NAME]" in q and "[PHONE]" in q for q in questions)
    assert not any("Ann" in c for c in comments)

    report = store.report(top=10)
    assert report.questions == 4
    dog = report.groups[0]
    assert dog.count == 3 and "dog" in dog.example.lower() and dog.kinds == {"no_match": 3}
    assert {"refer": 1} in [g.kinds for g in report.groups]
    (driving,) = report.passages
    assert (driving.passage_id, driving.helpful, driving.votes) == ("driving", 3, 3)

    old = datetime.now(UTC) - timedelta(days=31)
    with store.engine.begin() as db:
        db.execute(unanswered.insert(), [{"created_at": old, "kind": "no_match", "question": "old one"}])
        db.execute(feedback.insert(), [{"created_at": old, "reply_id": "r0", "kind": "answer", "helpful": False}])
    assert store.purge() == 2
    assert store.report().questions == 4
    store.close()


def test_sqlite_store(tmp_path: Path) -> None:
    metrics = Metrics()
    exercise(sqlite_store(tmp_path, metrics))
    assert metrics.editor_records.labels(outcome="stored")._value.get() == 8


def test_retention_purge_runs_when_the_store_starts(tmp_path: Path) -> None:
    store = sqlite_store(tmp_path)
    store.create_tables()
    with store.engine.begin() as db:
        db.execute(
            unanswered.insert(),
            [
                {"created_at": datetime.now(UTC) - timedelta(days=45), "kind": "no_match", "question": "stale"},
                {"created_at": datetime.now(UTC) - timedelta(days=2), "kind": "no_match", "question": "recent"},
            ],
        )
    store.start()
    store.flush()
    with store.engine.connect() as db:
        assert [row.question for row in db.execute(select(unanswered.c.question))] == ["recent"]
    store.close()


def test_a_database_outage_is_logged_and_counted_not_raised(tmp_path: Path) -> None:
    metrics = Metrics()
    store = EditorStore(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=1", 30, metrics)
    store.start()
    store.record_unanswered("anything", "no_match", None, None)  # must return at once
    store.flush(timeout=10)
    store.close()
    assert metrics.editor_records.labels(outcome="failed")._value.get() == 1


def test_a_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    metrics = Metrics()
    store = EditorStore(f"sqlite:///{tmp_path / 'x.sqlite3'}", 30, metrics, capacity=2)
    for _ in range(5):  # writer not started: the queue fills
        store.record_unanswered("q", "no_match", None, None)
    assert metrics.editor_records.labels(outcome="dropped")._value.get() == 3


def test_grouping_by_similarity() -> None:
    groups = group_questions(
        [
            ("Can I bring my dog?", "no_match"),
            ("can i bring my dog", "no_match"),
            ("Can I bring my dog with me?", "no_match"),
            ("Is parking free?", "no_match"),
        ]
    )
    assert [(g.count, g.kinds) for g in groups] == [(3, {"no_match": 3}), (1, {"no_match": 1})]


def test_report_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import cli

    monkeypatch.setenv("KETAMINE_QA_DATA_DIR", str(tmp_path))
    store = EditorStore.from_settings(Settings())
    store.start()
    for question in ["Is parking free?", "is parking free", "Is the parking free?", "Can I bring my dog?"]:
        store.record_unanswered(question, "no_match", None, None)
    store.record_feedback("r1", "answer", "driving", "v1", False, None)
    store.flush()
    store.close()
    result = CliRunner().invoke(cli, ["report"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "parking" in lines[1].lower() and lines[1].split()[0] == "3"
    assert any("0%" in line and "driving" in line for line in lines)


# -- PostgreSQL on a real server ---------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins and shutil.which("initdb") is None:
        pytest.skip("POSTGRESQL NOT INSTALLED: no initdb (scripts/system-deps installs it); PostgreSQL path untested")
    bin_dir = Path(bins[-1]) if bins else Path(shutil.which("initdb") or "").parent
    root = Path(tempfile.mkdtemp(prefix="ketamine-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_postgres, *args], check=True, capture_output=True, timeout=120)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(root / "log"),
            "-o",
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
    except subprocess.CalledProcessError as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL is installed but did not start: {e.stderr.decode(errors='replace')[-2000:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_postgresql_store(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=postgres_url, data_dir=tmp_path / "unused")
    store = EditorStore.from_settings(settings)
    assert store.url.startswith("postgresql+psycopg://")
    assert not (tmp_path / "unused").exists()
    exercise(store)
