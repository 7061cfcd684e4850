"""Schemathesis against the app's own OpenAPI: 100 generated requests per operation (valid and
invalid), no 5xx, and every response (status, content type, body, headers) is the documented one.

Operations without parameters or body (GET /v1/suggestions, /healthz, /readyz) have a single
possible request, so hypothesis runs them once."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.config import ApiKey, Settings
from app.embedder import FakeEmbedder

ADMIN_KEY = "fuzz-admin-key"
_turn = itertools.count()


def start_app() -> tuple[FastAPI, TestClient]:
    """The app on the tiny fixture knowledge base, lifespan running, limits out of the way.

    Built at import: schemathesis needs the schema when pytest collects the module (its lazy
    fixture loader does not work with this pytest)."""
    import shutil
    import tempfile

    from conftest import FIXTURES, SHIPPED_KNOWLEDGE, TODAY

    from app.main import create_app

    work = Path(tempfile.mkdtemp(prefix="ketamine-fuzz-"))
    shutil.copytree(FIXTURES / "knowledge", work / "knowledge")
    shutil.copy(SHIPPED_KNOWLEDGE / "safety.yaml", work / "knowledge" / "safety.yaml")
    app_settings = Settings(
        knowledge_dir=work / "knowledge",
        embeddings_dir=work / "embeddings",
        data_dir=work / "data",
        embedder="fake",
        today=TODAY,
        background_load=False,
        answer_threshold=0.5,
        rate_limit_anonymous="1000000/minute",
        rate_limit_keyed="1000000/minute",
        api_keys=[ApiKey(name="fuzz", sha256=hashlib.sha256(ADMIN_KEY.encode()).hexdigest(), role="admin")],
    )
    app = create_app(app_settings, embedder_factory=FakeEmbedder)
    client = TestClient(app)
    client.__enter__()  # run the lifespan: the assistant stays loaded on app.state
    return app, client


APP, CLIENT = start_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=100)


@pytest.fixture(scope="module", autouse=True)
def _stop_app() -> Iterator[None]:
    yield
    CLIENT.__exit__(None, None, None)


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    # Every other case carries the admin key, so admin routes are exercised past their 401.
    headers = {"X-API-Key": ADMIN_KEY} if next(_turn) % 2 else None
    # Not checked: "schema-valid data is accepted". A question is limited to 500 characters
    # *after trimming* (and cannot be all spaces), which JSON Schema does not express; the schema
    # states the looser bound and the description the real one. Everything else is checked.
    case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])


def test_the_schema_declares_the_problems() -> None:
    document = APP.openapi()
    ask = document["paths"]["/v1/ask"]["post"]["responses"]
    for status in ("400", "401", "413", "422", "429", "500", "503"):
        assert "application/problem+json" in ask[status]["content"], status
    assert "Retry-After" in ask["429"]["headers"]
    report = document["paths"]["/v1/admin/report"]["get"]
    assert "403" in report["responses"] and {} not in report["security"]
    assert {} in document["paths"]["/v1/ask"]["post"]["security"]  # anonymous allowed
    routes = {"/v1/ask", "/v1/feedback", "/v1/passages", "/v1/suggestions", "/healthz", "/readyz"}
    assert routes <= set(document["paths"])
    assert "/metrics" not in document["paths"]
