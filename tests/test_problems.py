"""Every 4xx/5xx is RFC 9457 application/problem+json; a 500 shows no stack trace or message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.embedder import FakeEmbedder


def assert_problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str) and body["title"]
    return body


@pytest.fixture
def failing(settings: Settings) -> Iterator[TestClient]:
    """An app with one route that fails the way a bug would."""
    from app.main import create_app

    app = create_app(settings, embedder_factory=FakeEmbedder)

    def explode() -> None:
        raise RuntimeError("secret-internal-detail: question was 'I feel awful'")

    app.add_api_route("/v1/explode", explode, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_404_unknown_route(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404)
    assert_problem(client.get("/not-an-api-route"), 404)


def test_405_wrong_method_names_the_allowed_ones(client: TestClient) -> None:
    response = client.delete("/v1/ask")
    assert_problem(response, 405)
    assert "POST" in response.headers["allow"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "question"),
        ({"question": ""}, "question"),
        ({"question": "x" * 501}, "question"),
        ({"question": 42}, "question"),
        ({"question": "ok?", "extra": 1}, "extra"),
    ],
)
def test_422_names_the_field(client: TestClient, body: dict[str, object], field: str) -> None:
    problem = assert_problem(client.post("/v1/ask", json=body), 422)
    assert any(error["field"] == field for error in problem["errors"])  # type: ignore[union-attr, index]


def test_422_for_a_body_that_is_not_json(client: TestClient) -> None:
    response = client.post("/v1/ask", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_problem(response, 422)


def test_413_for_a_large_body(client: TestClient) -> None:
    assert_problem(client.post("/v1/ask", content=b"x" * (16 * 1024 + 1)), 413)


def test_500_hides_the_error_and_gives_a_request_id(failing: TestClient) -> None:
    response = failing.get("/v1/explode")
    body = assert_problem(response, 500)
    assert "secret-internal-detail" not in response.text
    assert "Traceback" not in response.text and "RuntimeError" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


def test_503_while_loading(settings: Settings) -> None:
    from app.main import create_app

    app = create_app(settings, embedder_factory=FakeEmbedder)
    with TestClient(app) as test_client:
        app.state.assistant, app.state.status = None, "loading"
        response = test_client.post("/v1/ask", json={"question": "Can I drive home?"})
    assert_problem(response, 503)
    assert response.headers["retry-after"]
