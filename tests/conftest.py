"""Shared fixtures: a tiny knowledge base, a fake embedder, settings with a fixed clock."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.embedder import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHIPPED_KNOWLEDGE = ROOT / "knowledge"
SEED_SOURCE = ROOT / "knowledge" / "sources" / "what-ketamine-infusions-feel-like.txt"
# A fixed clock: tests never depend on today's date.
TODAY = date(2026, 9, 1)


@pytest.fixture
def knowledge_dir(tmp_path: Path) -> Path:
    """A copy of the tiny fixture knowledge base, with the shipped safety file."""
    target = tmp_path / "knowledge"
    shutil.copytree(FIXTURES / "knowledge", target)
    shutil.copy(SHIPPED_KNOWLEDGE / "safety.yaml", target / "safety.yaml")
    return target


@pytest.fixture
def settings(knowledge_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        knowledge_dir=knowledge_dir,
        embeddings_dir=tmp_path / "embeddings",
        embedder="fake",
        today=TODAY,
        background_load=False,
        answer_threshold=0.5,
        clinic_phone=None,
        # Portal integration: editors' store in tmp; limits high enough never to trip a test
        # that is not about them (tests/test_ratelimit.py sets its own).
        data_dir=tmp_path / "data",
        rate_limit_anonymous="100000/minute",
        rate_limit_keyed="100000/minute",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    from app.main import create_app

    with TestClient(create_app(settings, embedder_factory=FakeEmbedder)) as test_client:
        yield test_client


@pytest.fixture
def shipped_settings(tmp_path: Path) -> Settings:
    """The shipped knowledge base with the fake embedder (index rebuilt into tmp)."""
    return Settings(
        embeddings_dir=tmp_path / "embeddings",
        embedder="fake",
        today=TODAY,
        background_load=False,
        data_dir=tmp_path / "data",
        rate_limit_anonymous="100000/minute",
        rate_limit_keyed="100000/minute",
    )


class RecordingEmbedder(FakeEmbedder):
    """FakeEmbedder that records each call; can hold a call until released, or fail on a text."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.started: list[float] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.fail_on = fail_on

    def query_embed(self, texts: Sequence[str]) -> np.ndarray:
        self.started.append(time.monotonic())
        self.calls.append(list(texts))
        self.entered.set()
        self.hold.wait(10)
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("the encoder broke")
        return super().query_embed(texts)
