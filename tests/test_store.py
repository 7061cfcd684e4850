from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from app import store
from app.embedder import FakeEmbedder
from app.errors import StaleIndex


class CountingEmbedder(FakeEmbedder):
    def __init__(self, model_id: str = "fake:hashed-words") -> None:
        super().__init__()
        self.model_id = model_id
        self.embedded: list[str] = []

    def passage_embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += list(texts)
        return super().passage_embed(texts)


def entries(*texts: str) -> list[store.Entry]:
    return [store.Entry.of("question", f"p{i}", t) for i, t in enumerate(texts)]


def test_build_writes_normalised_float32_vectors_and_manifest(tmp_path: Path) -> None:
    built, embedded = store.build(CountingEmbedder(), entries("does it hurt", "how long is it"), None)
    store.save(built, tmp_path)
    vectors = np.load(tmp_path / "vectors.npy", allow_pickle=False)
    assert vectors.dtype == np.float32 and vectors.shape == (2, 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["model_id"] == "fake:hashed-words" and manifest["dimension"] == 256
    assert "numpy" in manifest["libraries"]
    assert [e["hash"] for e in manifest["entries"]] == [
        store.text_hash("does it hurt"),
        store.text_hash("how long is it"),
    ]
    assert embedded == 2


def test_rebuild_embeds_only_what_changed(tmp_path: Path) -> None:
    first, _ = store.build(CountingEmbedder(), entries("does it hurt", "how long is it"), None)
    store.save(first, tmp_path)
    embedder = CountingEmbedder()
    second, embedded = store.build(embedder, entries("does it hurt", "what will I feel"), store.load(tmp_path))
    assert embedder.embedded == ["what will I feel"] and embedded == 1
    assert np.array_equal(second.matrix(["does it hurt"]), first.matrix(["does it hurt"]))
    # What is no longer wanted is dropped.
    assert store.text_hash("how long is it") not in second.rows()


def test_a_loaded_store_is_mapped_and_gives_the_same_vectors_as_plain_copies(tmp_path: Path) -> None:
    built, _ = store.build(CountingEmbedder(), entries("does it hurt", "how long is it", "what will I feel"), None)
    store.save(built, tmp_path)
    loaded = store.load(tmp_path)
    assert loaded is not None and isinstance(loaded.vectors, np.memmap)
    texts = ["what will I feel", "does it hurt"]
    first = loaded.matrix(texts)
    # A plain float32 array the service can own after the store is gone, equal to what was built;
    # reading again after the mapped pages were handed back gives the same bits.
    assert type(first) is np.ndarray and first.dtype == np.float32 and first.flags["C_CONTIGUOUS"]
    assert np.array_equal(first, built.matrix(texts)) and np.array_equal(loaded.matrix(texts), first)
    # Rebuilding over the mapped file (a reload after an edit) still works and keeps what it reused.
    rebuilt, embedded = store.build(CountingEmbedder(), entries("does it hurt", "new question"), loaded)
    store.save(rebuilt, tmp_path)
    assert embedded == 1 and np.array_equal(rebuilt.matrix(["does it hurt"]), first[1:])
    del loaded
    reread = store.load(tmp_path)
    assert reread is not None and np.array_equal(reread.matrix(["does it hurt"]), first[1:])


def test_a_new_model_re_embeds_everything() -> None:
    first, _ = store.build(CountingEmbedder(), entries("a", "b"), None)
    embedder = CountingEmbedder(model_id="other-model")
    _, embedded = store.build(embedder, entries("a", "b"), first)
    assert embedded == 2


def test_staleness_explains_why(tmp_path: Path) -> None:
    wanted = entries("does it hurt")
    assert store.staleness(None, wanted, "m") == "no index has been built"
    built, _ = store.build(CountingEmbedder(), wanted, None)
    assert store.staleness(built, wanted, built.model_id) is None
    assert "built with" in (store.staleness(built, wanted, "other") or "")
    assert "1 text(s) changed" in (store.staleness(built, entries("new words"), built.model_id) or "")


def test_ensure_rebuilds_a_stale_index_or_refuses(tmp_path: Path) -> None:
    logged: list[str] = []
    wanted = entries("does it hurt")
    built = store.ensure(CountingEmbedder(), wanted, tmp_path, "rebuild", logged.append)
    assert (tmp_path / "manifest.json").exists() and "stale" in logged[0]
    assert store.staleness(store.load(tmp_path), wanted, built.model_id) is None
    with pytest.raises(StaleIndex, match="python -m app build"):
        store.ensure(CountingEmbedder(), entries("changed"), tmp_path, "refuse", logged.append)


def test_a_corrupt_index_counts_as_missing(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    assert store.load(tmp_path) is None
