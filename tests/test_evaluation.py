"""The evaluation file's format (the figures themselves are in tests/test_quality.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ROOT
from app.evaluation import SPLITS, load_cases


def test_every_question_of_the_shipped_set_is_in_a_known_split_and_only_v25_and_v29_to_v41_are_held_out() -> None:
    cases = load_cases(ROOT / "eval" / "questions.yaml")
    assert {c.split for c in cases} == set(SPLITS)
    held_out = [c for c in cases if c.split == "heldout"]
    assert (sum(c.category == "in_scope" for c in held_out), len(held_out)) == (1942, 2437)


def test_a_question_in_an_unknown_split_is_refused_with_its_text(tmp_path: Path) -> None:
    path = tmp_path / "questions.yaml"
    path.write_text('questions:\n  - q: "does it hurt"\n    expect: [pain]\n    split: heldot\n', encoding="utf-8")
    with pytest.raises(ValueError, match="'does it hurt' has split 'heldot'"):
        load_cases(path)


def test_the_shipped_question_examples_hold_every_labelled_question_but_never_a_held_out_one() -> None:
    # knowledge/question_examples.yaml is what `python -m app examples` writes from eval/questions.yaml:
    # the held-out split must stay unseen by the service, or it no longer judges it.
    from ruamel.yaml import YAML

    def key(text: str) -> str:
        return " ".join(text.lower().split())

    shipped = YAML(typ="safe").load((ROOT / "knowledge" / "question_examples.yaml").read_text(encoding="utf-8"))
    served = {key(q) for qs in shipped["questions"].values() for q in qs} | {key(q) for q in shipped["out_of_scope"]}
    cases = load_cases(ROOT / "eval" / "questions.yaml")
    assert not [c.question for c in cases if c.split == "heldout" and key(c.question) in served]
    labelled = {key(c.question) for c in cases if c.split != "heldout"}
    assert served <= labelled and len(served) >= 0.95 * len(labelled)


def test_examples_file_leaves_out_the_held_out_split_and_is_a_draft_until_reviewed() -> None:
    from datetime import date

    from ruamel.yaml import YAML

    from app.evaluation import Case, examples_file

    cases = [
        Case("zonked out afterwards?", ("sleepy",), "read", "in_scope"),
        Case("so sleepy after?", ("sleepy", "driving"), "heldout", "in_scope"),
        Case("parking?", (), "tune", "off_topic"),
        Case("zonked  out afterwards?", ("sleepy",), "tune", "in_scope"),
    ]
    draft = YAML(typ="safe").load(examples_file(cases, ["sleepy", "driving"], None, date(2026, 11, 28)))
    assert draft["status"] == "draft"
    assert draft["questions"] == {"sleepy": ["zonked out afterwards?"]} and draft["out_of_scope"] == ["parking?"]
    approved = YAML(typ="safe").load(examples_file(cases, ["sleepy"], "Dr Test", date(2026, 11, 28)))
    assert approved["status"] == "approved" and approved["reviewed_by"] == "Dr Test"
    assert approved["review_due"] > approved["reviewed_on"]
