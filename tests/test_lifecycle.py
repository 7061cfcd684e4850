"""Knowledge lifecycle: import a document, review it, build, reload without downtime, history.

The CLI runs through typer's CliRunner with the fake embedder; the API through TestClient. The
clock is fixed (TODAY); the second document is tests/fixtures/aftercare-sheet.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app import importer, knowledge, lifecycle
from app.cli import cli
from app.config import ApiKey, Settings
from app.embedder import FakeEmbedder
from app.main import create_app
from app.security import hash_key
from tests.conftest import FIXTURES, SEED_SOURCE, SHIPPED_KNOWLEDGE, TODAY

SHEET = FIXTURES / "aftercare-sheet.md"
ADMIN_KEY, PORTAL_KEY = "test-admin-key", "test-portal-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ALCOHOL = "should-i-drink-alcohol-afterwards-1"
WORK = "can-i-go-back-to-work-the-same-day-1"
BRING = "what-should-i-bring-next-time-1"
IV_SITE = "what-about-the-iv-site-1"


@pytest.fixture
def lifecycle_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "api_keys": [
                ApiKey(name="lead", sha256=hash_key(ADMIN_KEY), role="admin"),
                ApiKey(name="portal", sha256=hash_key(PORTAL_KEY), role="portal"),
            ],
            "rate_limit_anonymous": "100000/minute",
            "rate_limit_keyed": "100000/minute",
        }
    )


@pytest.fixture
def api(lifecycle_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(lifecycle_settings, embedder_factory=FakeEmbedder)) as test_client:
        yield test_client


def run(settings: Settings, *args: str) -> str:
    """`python -m app ARGS` against the test knowledge folder; fails the test on a non-zero exit."""
    result = invoke(settings, *args)
    assert result.exit_code == 0, result.output
    return result.output


def invoke(settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    env = {
        "KETAMINE_QA_KNOWLEDGE_DIR": str(settings.knowledge_dir),
        "KETAMINE_QA_EMBEDDINGS_DIR": str(settings.embeddings_dir),
        "KETAMINE_QA_EMBEDDER": "fake",
        "KETAMINE_QA_TODAY": (settings.today or TODAY).isoformat(),
    }
    return CliRunner().invoke(cli, list(args), env=env)


def ask(client: TestClient, question: str) -> dict:
    response = client.post("/v1/ask", json={"question": question})
    assert response.status_code == 200, response.text
    return response.json()


def sheet_yaml(settings: Settings) -> Path:
    return settings.knowledge_dir / "passages" / "aftercare-sheet.yaml"


# --- import ---------------------------------------------------------------------------------


def test_split_finds_the_headings_of_the_clinic_article() -> None:
    """Every shipped passage sits in the section the splitter finds for its first paragraph."""
    drafts = importer.drafts(SEED_SOURCE.read_text(encoding="utf-8"), markdown=False)
    shipped = knowledge.load(SHIPPED_KNOWLEDGE).passages
    assert shipped
    for passage in shipped:
        first_line = passage.text.split("\n")[0]
        containing = [d for d in drafts if first_line in d.text]
        assert containing, passage.id
        assert containing[0].section == passage.section, passage.id


def test_import_copies_the_document_and_writes_verbatim_unserved_drafts(lifecycle_settings: Settings) -> None:
    output = run(lifecycle_settings, "import", str(SHEET))

    source = lifecycle_settings.knowledge_dir / "sources" / SHEET.name
    assert source.read_bytes() == SHEET.read_bytes()
    assert ALCOHOL in output
    kb, problems = knowledge.validate(lifecycle_settings.knowledge_dir)
    assert problems == []
    drafts = [p for p in kb.passages if p.source == SHEET.name]
    assert [p.id for p in drafts] == [
        "after-your-ketamine-infusion-1",
        WORK,
        ALCOHOL,
        "what-about-the-iv-site-1",
        "how-might-my-mood-change-1",
        "how-might-my-mood-change-2",
        BRING,
    ]
    document = SHEET.read_text(encoding="utf-8")
    assert all(p.status == "draft" and p.text in document for p in drafts)
    alcohol = next(p for p in drafts if p.id == ALCOHOL)
    assert alcohol.section == "Should I Drink Alcohol Afterwards?"
    assert alcohol.text.startswith("Do not drink alcohol") and alcohol.text.endswith("of the medication.")
    assert alcohol.questions == ("Should I Drink Alcohol Afterwards?",)
    # A hard-wrapped paragraph keeps its line break: verbatim means verbatim.
    assert "how to look\nafter yourself" in drafts[0].text
    assert not any(p.source == SHEET.name for p in kb.served(TODAY))
    text = sheet_yaml(lifecycle_settings).read_text(encoding="utf-8")
    assert "NOTHING HERE IS SERVED" in text and "reviewed_by: null" in text and "text: |-" in text


def test_import_never_overwrites_and_append_adds_only_new_paragraphs(
    lifecycle_settings: Settings, tmp_path: Path
) -> None:
    run(lifecycle_settings, "import", str(SHEET))
    run(lifecycle_settings, "review", "approve", ALCOHOL, "--reviewer", "Dr Reviewer")
    before = sheet_yaml(lifecycle_settings).read_text(encoding="utf-8")

    again = invoke(lifecycle_settings, "import", str(SHEET))
    assert again.exit_code == 1 and "never overwritten" in again.output
    assert sheet_yaml(lifecycle_settings).read_text(encoding="utf-8") == before

    second_edition = tmp_path / "edition2" / SHEET.name
    second_edition.parent.mkdir()
    second_edition.write_text(
        SHEET.read_text(encoding="utf-8") + "\n## Can I Exercise?\n\nAvoid strenuous exercise until the next day.\n",
        encoding="utf-8",
    )
    output = run(lifecycle_settings, "import", "--append", str(second_edition))
    assert "1 draft passage(s)" in output and "7 paragraph(s) already covered" in output
    after = sheet_yaml(lifecycle_settings).read_text(encoding="utf-8")
    assert after.startswith(before)  # every existing entry byte for byte, the new one appended
    kb = knowledge.load(lifecycle_settings.knowledge_dir)
    assert next(p for p in kb.passages if p.id == ALCOHOL).status == "approved"
    assert next(p for p in kb.passages if p.id == "can-i-exercise-1").status == "draft"


def test_import_refuses_a_document_it_cannot_keep_verbatim(lifecycle_settings: Settings, tmp_path: Path) -> None:
    pdf = tmp_path / "leaflet.pdf"
    pdf.write_bytes(b"%PDF-1.7")
    result = invoke(lifecycle_settings, "import", str(pdf))
    assert result.exit_code == 1 and "plain text or Markdown" in result.output
    assert not (lifecycle_settings.knowledge_dir / "sources" / "leaflet.pdf").exists()


def test_plain_text_with_blank_lines_uses_one_line_title_paragraphs_as_headings() -> None:
    document = "Aftercare\n\nRest today.\nSleep early.\n\nDriving\n\nDo not drive until tomorrow.\n"
    assert importer.split(document, markdown=False) == [
        ("Aftercare", "Rest today.\nSleep early."),
        ("Driving", "Do not drive until tomorrow."),
    ]


# --- review ---------------------------------------------------------------------------------


def test_review_list_shows_drafts_overdue_and_falling_due(lifecycle_settings: Settings) -> None:
    output = run(lifecycle_settings, "review", "list")
    drafts, overdue, due_soon = output.split("Drafts")[1], output.split("OVERDUE")[1], output.split("Due for")[1]
    assert "eating-draft" in drafts.split("OVERDUE")[0]
    assert "eating " in overdue.split("Due for")[0] and "due 2026-06-30" in overdue
    assert "0" in due_soon.splitlines()[0] and "sleepy" not in due_soon

    later = lifecycle_settings.model_copy(update={"today": date(2026, 12, 15)})
    assert "sleepy" in run(later, "review", "list").split("Due for")[1]


def test_approve_edits_only_the_review_lines_of_a_hand_written_file(tmp_path: Path) -> None:
    shipped = tmp_path / "knowledge"
    shutil.copytree(SHIPPED_KNOWLEDGE, shipped)
    settings = Settings(knowledge_dir=shipped, embeddings_dir=tmp_path / "embeddings", embedder="fake", today=TODAY)
    path = shipped / "passages" / "what-ketamine-infusions-feel-like.yaml"
    before = path.read_text(encoding="utf-8").splitlines()

    run(settings, "review", "approve", "session-length", "--reviewer", "Dr O'Brien", "--due", "2027-01-31")

    after = path.read_text(encoding="utf-8").splitlines()
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert changed and all(old.split(":")[0] == new.split(":")[0] for old, new in changed)
    assert {new.strip() for _, new in changed} <= {
        "reviewed_by: Dr O'Brien",
        "reviewed_on: 2026-09-01",
        "review_due: 2027-01-31",
    }
    passage = next(p for p in knowledge.load(shipped).passages if p.id == "session-length")
    assert (passage.reviewed_by, passage.reviewed_on, passage.review_due) == ("Dr O'Brien", TODAY, date(2027, 1, 31))


def test_approve_refuses_a_passage_that_is_no_longer_verbatim(lifecycle_settings: Settings) -> None:
    run(lifecycle_settings, "import", str(SHEET))
    path = sheet_yaml(lifecycle_settings)
    reworded = path.read_text(encoding="utf-8").replace("Do not drink alcohol", "Avoid alcohol", 1)
    path.write_text(reworded, encoding="utf-8")

    result = invoke(lifecycle_settings, "review", "approve", ALCOHOL, "--reviewer", "Dr Reviewer")

    assert result.exit_code == 1 and "verbatim" in result.output and "text" in result.output
    assert path.read_text(encoding="utf-8") == reworded
    assert lifecycle.read_history(lifecycle_settings.knowledge_dir) == []


def test_approve_defaults_to_today_and_180_days_and_retire_closes_the_review(lifecycle_settings: Settings) -> None:
    run(lifecycle_settings, "import", str(SHEET))
    run(lifecycle_settings, "review", "approve", WORK, "--reviewer", "Dr Reviewer")
    run(lifecycle_settings, "review", "retire", BRING, "--reviewer", "Dr Reviewer", "--reason", "a list, not an answer")
    unknown = invoke(lifecycle_settings, "review", "approve", "no-such-id", "--reviewer", "Dr Reviewer")
    assert unknown.exit_code == 1 and "no passage has the id" in unknown.output

    kb = knowledge.load(lifecycle_settings.knowledge_dir)
    work, bring = (next(p for p in kb.passages if p.id == pid) for pid in (WORK, BRING))
    assert (work.status, work.reviewed_on, work.review_due) == ("approved", TODAY, date(2027, 2, 28))
    assert (bring.status, bring.reviewed_on) == ("retired", TODAY)
    events = lifecycle.read_history(lifecycle_settings.knowledge_dir)
    assert [(e["event"], e["passage"], e["on"]) for e in events] == [
        ("approved", WORK, "2026-09-01"),
        ("retired", BRING, "2026-09-01"),
    ]
    assert events[1]["reason"] == "a list, not an answer"


# --- the round trip through the running service ---------------------------------------------


def test_import_review_build_reload_round_trip(api: TestClient, lifecycle_settings: Settings) -> None:
    # A question the shipped safety gate lets through even with the fake embedder's crude vectors.
    question = "What about the IV site?"

    def answered_by() -> str | None:
        return (ask(api, question)["passage"] or {}).get("id")

    assert answered_by() != IV_SITE
    old_passages = api.get("/v1/passages").json()["passages"]

    run(lifecycle_settings, "import", str(SHEET))
    run(lifecycle_settings, "review", "approve", IV_SITE, "--reviewer", "Dr Reviewer")
    run(lifecycle_settings, "review", "approve", WORK, "--reviewer", "Dr Reviewer")
    build_output = run(lifecycle_settings, "build")
    assert f"history: served {IV_SITE}" in build_output
    # Imported and approved, but not yet reloaded: the service still serves the old knowledge.
    assert answered_by() != IV_SITE

    reloaded = api.post("/v1/admin/reload", headers=ADMIN)

    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["added"] == sorted([IV_SITE, WORK])
    assert reloaded.json()["removed"] == reloaded.json()["changed"] == []
    reply = ask(api, question)
    assert reply["kind"] == "answer" and reply["passage"]["id"] == IV_SITE, reply
    sheet = SHEET.read_text(encoding="utf-8")
    assert reply["passage"]["text"] in sheet and reply["answer"].startswith(reply["passage"]["text"])
    assert reply["passage"]["source"] == SHEET.name
    assert ask(api, "Will I feel sleepy afterwards?")["passage"]["id"] == "sleepy"  # the first document still serves

    by_source = api.get("/v1/passages", params={"source": SHEET.name}).json()["passages"]
    assert sorted(p["id"] for p in by_source) == sorted([IV_SITE, WORK])  # drafts are not served
    assert api.get("/v1/passages", params={"source": "aftercare.txt"}).json()["passages"] == old_passages
    assert api.get("/v1/passages", params={"source": "nothing.md"}).json()["passages"] == []

    # The build recorded the new versions; the reload found nothing more to record.
    served = [e for e in lifecycle.read_history(lifecycle_settings.knowledge_dir) if e["event"] == "served"]
    assert sorted(e["passage"] for e in served) == sorted(["sleepy", "driving", IV_SITE, WORK])
    shown = run(lifecycle_settings, "history", "--on", "2026-09-01", "--passage", IV_SITE)
    assert f"version {reply['passage']['version']}" in shown and reply["passage"]["text"] in shown


def test_reload_needs_an_admin_key(api: TestClient) -> None:
    assert api.post("/v1/admin/reload").status_code == 401
    assert api.post("/v1/admin/reload", headers={"X-API-Key": PORTAL_KEY}).status_code == 403
    assert api.post("/v1/admin/reload", headers={"X-API-Key": "wrong"}).status_code == 401


def test_a_broken_edit_leaves_the_old_answers_served(api: TestClient, lifecycle_settings: Settings) -> None:
    before = ask(api, "Can I drive home after the infusion?")
    assert before["passage"]["id"] == "driving"
    path = lifecycle_settings.knowledge_dir / "passages" / "aftercare.yaml"
    text = path.read_text(encoding="utf-8")
    broken = text.replace("Please arrange for a friend", "Please ask a friend", 1).replace(
        "review_due: 2026-06-30", "review_due: 30/06/2026", 1
    )
    assert broken.count("Please ask a friend") == 1 and "30/06/2026" in broken
    path.write_text(broken, encoding="utf-8")

    response = api.post("/v1/admin/reload", headers=ADMIN)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = {(e["file"], e["entry"], e["field"]) for e in response.json()["errors"]}
    file = "passages/aftercare.yaml"
    assert errors == {(file, "driving", "text"), (file, "eating", "review_due")}
    after = ask(api, "Can I drive home after the infusion?")
    assert after["passage"] == before["passage"]
    assert api.get("/readyz").status_code == 200

    path.write_text(text, encoding="utf-8")  # fixed: the next reload goes through
    assert api.post("/v1/admin/reload", headers=ADMIN).status_code == 200


class SlowEmbedder(FakeEmbedder):
    """Embeds passages slowly, so a reload's rebuild overlaps the patients' questions."""

    def passage_embed(self, texts: Sequence[str]) -> np.ndarray:
        time.sleep(0.02 * len(texts))
        return super().passage_embed(texts)


def test_questions_asked_during_a_reload_all_get_answers(lifecycle_settings: Settings) -> None:
    vetted = {"sleepy": "Most patients feel drowsy", "driving": "Please arrange for a friend"}
    replies: list[tuple[int, str | None, str]] = []
    stop = threading.Event()

    with TestClient(create_app(lifecycle_settings, embedder_factory=SlowEmbedder)) as client:
        run(lifecycle_settings, "import", str(SHEET))
        for pid in (ALCOHOL, WORK, IV_SITE, "how-might-my-mood-change-1"):
            run(lifecycle_settings, "review", "approve", pid, "--reviewer", "Dr Reviewer")
        # Not built: the reload embeds the new texts itself, slowly, while patients ask.

        def patient(question: str) -> None:
            while not stop.is_set():
                response = client.post("/v1/ask", json={"question": question})
                body = response.json()
                replies.append((response.status_code, (body.get("passage") or {}).get("id"), body.get("answer", "")))

        patients = [
            threading.Thread(target=patient, args=(q,))
            for q in ("Will I feel sleepy afterwards?", "Can I drive home after the infusion?") * 3
        ]
        for thread in patients:
            thread.start()
        time.sleep(0.05)
        started = len(replies)
        reload = client.post("/v1/admin/reload", headers=ADMIN)
        during = len(replies) - started
        stop.set()
        for thread in patients:
            thread.join()

    assert reload.status_code == 200, reload.text
    assert len(reload.json()["added"]) == 4
    assert during > 0, "the questions did not overlap the reload"
    assert all(status == 200 for status, _, _ in replies)
    assert all(pid in vetted and answer.startswith(vetted[pid]) for _, pid, answer in replies)


def test_concurrent_reloads_run_one_at_a_time(
    api: TestClient, lifecycle_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.assistant import Assistant

    active, most = 0, 0
    guard = threading.Lock()
    real_load = Assistant.load

    def counting_load(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal active, most
        with guard:
            active += 1
            most = max(most, active)
        time.sleep(0.05)
        try:
            return real_load(*args, **kwargs)
        finally:
            with guard:
                active -= 1

    monkeypatch.setattr(Assistant, "load", counting_load)
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(api.post("/v1/admin/reload", headers=ADMIN).status_code))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4 and most == 1


def test_sighup_reloads_the_running_service(lifecycle_settings: Settings) -> None:
    caught: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: caught.append(signum))

    async def serve_and_hang_up() -> list[str]:
        app = create_app(lifecycle_settings, embedder_factory=FakeEmbedder)
        async with app.router.lifespan_context(app):
            old = app.state.assistant
            run(lifecycle_settings, "import", str(SHEET))
            run(lifecycle_settings, "review", "approve", ALCOHOL, "--reviewer", "Dr Reviewer")
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(200):
                await asyncio.sleep(0.02)
                if app.state.assistant is not old:
                    break
            return [p.id for p in app.state.assistant.passages]

    try:
        served = asyncio.run(serve_and_hang_up())
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert caught == [], "SIGHUP reached the default handler, not the service"
    assert ALCOHOL in served


# --- history --------------------------------------------------------------------------------


def test_history_tells_which_words_were_served_on_a_day(lifecycle_settings: Settings) -> None:
    directory = lifecycle_settings.knowledge_dir
    first = knowledge.load(directory)
    assert [e["passage"] for e in lifecycle.record_service(directory, first, date(2026, 9, 1))] == ["sleepy", "driving"]
    assert lifecycle.record_service(directory, first, date(2026, 9, 2)) == []  # nothing changed, nothing recorded

    lifecycle.review(directory, "driving", "retired", "Dr Reviewer", date(2026, 9, 10))
    path = directory / "passages" / "aftercare.yaml"
    source = directory / "sources" / "aftercare.txt"
    source.write_text(
        source.read_text(encoding="utf-8") + "\nMost patients feel drowsy for a while.\n", encoding="utf-8"
    )
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "Most patients feel drowsy for an hour or two after the infusion. Rest at home for the rest of the day.",
            "Most patients feel drowsy for a while.",
            1,
        ),
        encoding="utf-8",
    )
    changes = lifecycle.record_service(directory, knowledge.load(directory), date(2026, 9, 10))
    assert {(e["event"], e["passage"], e.get("why")) for e in changes} == {
        ("withdrawn", "driving", "retired"),
        ("withdrawn", "sleepy", "text changed"),
        ("served", "sleepy", None),
    }

    events = lifecycle.read_history(directory)
    on_the_5th = {(p.passage, p.text.split(".")[0]) for p in lifecycle.served_on(events, date(2026, 9, 5))}
    assert on_the_5th == {
        ("sleepy", "Most patients feel drowsy for an hour or two after the infusion"),
        ("driving", "Please arrange for a friend or family member to drive you home"),
    }
    on_the_10th = [(p.passage, p.until) for p in lifecycle.served_on(events, date(2026, 9, 10))]
    assert sorted(on_the_10th, key=str) == sorted(
        [("sleepy", date(2026, 9, 10)), ("driving", date(2026, 9, 10)), ("sleepy", None)], key=str
    )
    on_the_11th = [p.text for p in lifecycle.served_on(events, date(2026, 9, 11))]
    assert on_the_11th == ["Most patients feel drowsy for a while."]
    assert lifecycle.served_on(events, date(2026, 8, 31)) == []

    output = run(lifecycle_settings, "history", "--passage", "driving")
    assert [line.split()[1] for line in output.splitlines()] == ["served", "retired", "withdrawn"]


def test_examples_command_writes_a_draft_then_a_reviewed_list_the_service_uses(
    settings: Settings, tmp_path: Path
) -> None:
    questions = tmp_path / "questions.yaml"
    questions.write_text(
        'questions:\n  - q: "zonked out afterwards?"\n    expect: [sleepy]\n    split: read\n'
        '  - q: "so sleepy after?"\n    expect: [sleepy]\n    split: heldout\n',
        encoding="utf-8",
    )
    assert "draft" in run(settings, "examples", "--questions", str(questions))
    assert knowledge.load(settings.knowledge_dir).examples == {}
    run(settings, "examples", "--questions", str(questions), "--reviewed-by", "Dr Test")
    assert knowledge.load(settings.knowledge_dir).examples == {"sleepy": ("zonked out afterwards?",)}
