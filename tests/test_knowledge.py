from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from app import knowledge
from app.errors import InvalidKnowledge
from tests.conftest import SEED_SOURCE, SHIPPED_KNOWLEDGE, TODAY

PASSAGES = Path("passages") / "aftercare.yaml"


def _edit(knowledge_dir: Path, old: str, new: str) -> Path:
    path = knowledge_dir / PASSAGES
    text = path.read_text(encoding="utf-8")
    assert old in text, "fixture changed: the edit no longer applies"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _only_problem(knowledge_dir: Path):
    with pytest.raises(InvalidKnowledge) as caught:
        knowledge.load(knowledge_dir)
    assert len(caught.value.problems) == 1, caught.value
    return caught.value.problems[0]


def test_fixture_loads_and_serves_only_approved_in_review(knowledge_dir: Path) -> None:
    kb = knowledge.load(knowledge_dir)
    assert [p.id for p in kb.passages] == ["sleepy", "driving", "eating", "eating-draft"]
    # eating is overdue on TODAY, eating-draft is a draft: neither is served.
    assert [p.id for p in kb.served(TODAY)] == ["sleepy", "driving"]
    assert [p.id for p in kb.overdue(TODAY)] == ["eating"]


def test_due_within_counts_passages_falling_due(knowledge_dir: Path) -> None:
    kb = knowledge.load(knowledge_dir)
    assert kb.due_within(date(2026, 12, 15), 30) == kb.served(date(2026, 12, 15))
    assert kb.due_within(TODAY, 30) == ()


def test_typographic_quotes_survive_loading(knowledge_dir: Path) -> None:
    kb = knowledge.load(knowledge_dir)
    eating = next(p for p in kb.passages if p.id == "eating")
    assert "“plain”" in eating.text


@pytest.mark.parametrize(
    ("old", "new", "entry", "field", "words"),
    [
        ("Most patients feel drowsy", "Most patients feel sleepy", "sleepy", "text", "verbatim"),
        (
            "Start with “plain” food such as toast.\n    questions:\n      - Can I eat",
            'Start with "plain" food such as toast.\n    questions:\n      - Can I eat',
            "eating",
            "text",
            "verbatim",
        ),
        ("id: driving", "id: sleepy", "sleepy", "id", "used twice"),
        ("    section: Who Drives Me Home?\n", "", "driving", "section", "required"),
        ("review_due: 2026-06-30", "review_due: 30/06/2026", "eating", "review_due", "date"),
        ("status: draft", "status: pending", "eating-draft", "status", "must be one of"),
        (
            "source: aftercare.txt\n    status: approved\n    reviewed_by: Dr Test\n    reviewed_on: 2026-01-01\n"
            "    review_due: 2026-12-31\n    text: |-\n      Please",
            "source: missing.txt\n    status: approved\n    reviewed_by: Dr Test\n    reviewed_on: 2026-01-01\n"
            "    review_due: 2026-12-31\n    text: |-\n      Please",
            "driving",
            "source",
            "not a readable file",
        ),
        (
            "    reviewed_by: Dr Test\n    reviewed_on: 2026-01-01\n    review_due: 2026-06-30",
            "    reviewed_by: Dr Test\n    reviewed_on: 2026-07-01\n    review_due: 2026-06-30",
            "eating",
            "review_due",
            "before reviewed_on",
        ),
        (
            "    questions:\n      - Can I drive",
            "    qestions:\n      - Can I drive",
            "driving",
            "qestions",
            "known field",
        ),
    ],
    ids=[
        "reworded",
        "straight-quotes",
        "duplicate-id",
        "missing-field",
        "bad-date",
        "unknown-status",
        "unknown-source",
        "due-before-review",
        "typo-field",
    ],
)
def test_each_broken_file_names_file_entry_and_field(
    knowledge_dir: Path, old: str, new: str, entry: str, field: str, words: str
) -> None:
    path = _edit(knowledge_dir, old, new)
    problem = _only_problem(knowledge_dir)
    assert (problem.file, problem.entry_id, problem.field) == (str(path), entry, field)
    assert words in problem.problem
    assert str(path) in str(problem) and entry in str(problem) and field in str(problem)


def test_invalid_yaml_names_the_file_and_line(knowledge_dir: Path) -> None:
    path = _edit(knowledge_dir, "  - id: driving", "  - id: [driving")
    problem = _only_problem(knowledge_dir)
    assert problem.file == str(path)
    assert "not valid YAML at line" in problem.problem


def test_every_problem_is_reported_at_once(knowledge_dir: Path) -> None:
    _edit(knowledge_dir, "Most patients feel drowsy", "Most patients feel sleepy")
    _edit(knowledge_dir, "status: draft", "status: pending")
    with pytest.raises(InvalidKnowledge) as caught:
        knowledge.load(knowledge_dir)
    assert {(p.entry_id, p.field) for p in caught.value.problems} == {("sleepy", "text"), ("eating-draft", "status")}


def test_missing_decline_message_is_reported(knowledge_dir: Path) -> None:
    (knowledge_dir / "messages.yaml").unlink()
    problem = _only_problem(knowledge_dir)
    assert problem.file.endswith("messages.yaml")


def test_shipped_knowledge_is_valid_and_verbatim() -> None:
    kb = knowledge.load(SHIPPED_KNOWLEDGE)
    source = SEED_SOURCE.read_text(encoding="utf-8")
    assert len(kb.passages) >= 15
    for passage in kb.passages:
        assert passage.text in source
        assert passage.source == SEED_SOURCE.name
    # The article's framing and calls to action are not served.
    texts = " ".join(p.text for p in kb.passages)
    assert "This article aims" not in texts
    assert "Experience the unique journey" not in texts


def test_shipped_source_is_byte_identical_to_the_seed() -> None:
    seed = SHIPPED_KNOWLEDGE.parent.parent / "shared" / "seed" / "000_7aa1cdb48fd95455.txt"
    if not seed.exists():
        pytest.skip("../shared/seed is not beside this checkout")
    assert SEED_SOURCE.read_bytes() == seed.read_bytes()


def test_version_is_a_stable_short_content_hash() -> None:
    assert knowledge.content_version("abc") == knowledge.content_version("abc")
    assert knowledge.content_version("abc") != knowledge.content_version("abd")
    assert len(knowledge.content_version("abc")) == 12


def test_out_of_scope_question_that_is_also_vetted_is_reported(knowledge_dir: Path) -> None:
    # The same question cannot be both answered and declined: validation names it.
    path = knowledge_dir / "out_of_scope.yaml"
    path.write_text(
        "status: approved\nreviewed_by: Dr Test\nreviewed_on: 2026-01-01\nreview_due: 2027-01-01\n"
        "topics:\n  - topic: transport\n    questions:\n"
        "      - can i drive home after the infusion\n      - Where do I park?\n",
        encoding="utf-8",
    )
    problem = _only_problem(knowledge_dir)
    assert (problem.file, problem.entry_id, problem.field) == (
        str(path),
        "can i drive home after the infusion",
        "questions",
    )
    assert "'driving'" in problem.problem


def test_knowledge_is_parsed_by_libyaml() -> None:
    # Pure-Python parsing of the knowledge files was most of the service's start-up (~1.5 s of ~2 s
    # on the ONNX path); ruamel.yaml.clib must stay installed.
    from ruamel.yaml import YAML

    assert "clib" in YAML(typ="safe").Parser.__module__


EXAMPLES_HEAD = "status: approved\nreviewed_by: Dr Test\nreviewed_on: 2026-01-01\nreview_due: 2026-12-31\n"


def test_question_examples_are_read_by_passage_and_checked(knowledge_dir: Path) -> None:
    (knowledge_dir / "question_examples.yaml").write_text(
        EXAMPLES_HEAD + "questions:\n  sleepy:\n    - zonked out afterwards?\n    - Will I feel sleepy afterwards?\n"
        "out_of_scope:\n  - what are your opening hours\n",
        encoding="utf-8",
    )
    kb, problems = knowledge.validate(knowledge_dir)
    assert not problems
    # A wording that is already a vetted question is not repeated.
    assert kb.examples == {"sleepy": ("zonked out afterwards?",)}
    assert kb.out_of_scope_examples == ("what are your opening hours",)


def test_question_examples_name_passages_and_keep_answered_questions_out_of_scope(knowledge_dir: Path) -> None:
    (knowledge_dir / "question_examples.yaml").write_text(
        EXAMPLES_HEAD
        + "questions:\n  no-such-passage:\n    - hello?\nout_of_scope:\n  - can i drive home after the infusion\n",
        encoding="utf-8",
    )
    _, problems = knowledge.validate(knowledge_dir)
    messages = [str(p) for p in problems]
    assert any("no-such-passage" in m and "not the id of a passage" in m for m in messages), messages
    assert any("is also a question of passage 'driving'" in m for m in messages), messages


def test_draft_question_examples_are_not_used_until_reviewed(knowledge_dir: Path) -> None:
    (knowledge_dir / "question_examples.yaml").write_text(
        "status: draft\nquestions:\n  sleepy:\n    - zonked out afterwards?\n", encoding="utf-8"
    )
    kb, problems = knowledge.validate(knowledge_dir)
    assert not problems and kb.examples == {} and kb.out_of_scope_examples == ()
