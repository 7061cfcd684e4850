"""The evaluation file's format (the figures themselves are in tests/test_quality.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ROOT
from app.evaluation import SPLITS, load_cases


def test_every_question_of_the_shipped_set_is_in_a_known_split_and_only_v15_is_held_out() -> None:
    cases = load_cases(ROOT / "eval" / "questions.yaml")
    assert {c.split for c in cases} == set(SPLITS)
    held_out = [c for c in cases if c.split == "heldout"]
    assert (sum(c.category == "in_scope" for c in held_out), len(held_out)) == (205, 254)


def test_a_question_in_an_unknown_split_is_refused_with_its_text(tmp_path: Path) -> None:
    path = tmp_path / "questions.yaml"
    path.write_text('questions:\n  - q: "does it hurt"\n    expect: [pain]\n    split: heldot\n', encoding="utf-8")
    with pytest.raises(ValueError, match="'does it hurt' has split 'heldot'"):
        load_cases(path)
