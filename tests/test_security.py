"""API keys: hashed configuration, constant-time check, 401/403, the admin dependency, hash-key."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from app.config import ApiKey, Settings
from app.embedder import FakeEmbedder
from app.security import BadKey, authenticate, client_address, hash_key, parse_networks

PORTAL_KEY = "portal-secret-key-0123456789"
ADMIN_KEY = "admin-secret-key-9876543210"
KEYS = [
    ApiKey(name="patient-portal", sha256=hashlib.sha256(PORTAL_KEY.encode()).hexdigest(), role="portal"),
    ApiKey(name="ops", sha256=hashlib.sha256(ADMIN_KEY.encode()).hexdigest(), role="admin"),
]
QUESTION = {"question": "Can I drive home after the infusion?"}


@pytest.fixture
def keyed(settings: Settings) -> Iterator[TestClient]:
    from app.main import create_app

    with TestClient(create_app(settings.model_copy(update={"api_keys": KEYS}), embedder_factory=FakeEmbedder)) as c:
        yield c


def test_hash_key_is_the_sha256_hex_of_the_key() -> None:
    assert hash_key(PORTAL_KEY) == hashlib.sha256(PORTAL_KEY.encode()).hexdigest()
    assert hash_key(PORTAL_KEY + "\n") == hash_key(PORTAL_KEY)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (None, "anonymous")),
        ({"authorization": f"Bearer {PORTAL_KEY}"}, ("patient-portal", "portal")),
        ({"authorization": f"bearer  {PORTAL_KEY} "}, ("patient-portal", "portal")),
        ({"x-api-key": ADMIN_KEY}, ("ops", "admin")),
        ({"authorization": f"Bearer {ADMIN_KEY}", "x-api-key": ADMIN_KEY}, ("ops", "admin")),
    ],
)
def test_authenticate_known_keys(headers: dict[str, str], expected: tuple[str | None, str]) -> None:
    client = authenticate(headers, KEYS)
    assert (client.name, client.role) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer not-a-key"},
        {"authorization": f"Basic {PORTAL_KEY}"},
        {"authorization": "Bearer "},
        {"x-api-key": ""},
        {"x-api-key": hashlib.sha256(PORTAL_KEY.encode()).hexdigest()},  # the hash is not the key
        {"authorization": f"Bearer {PORTAL_KEY}", "x-api-key": ADMIN_KEY},  # two different keys
    ],
)
def test_authenticate_refuses_wrong_or_malformed_keys(headers: dict[str, str]) -> None:
    with pytest.raises(BadKey):
        authenticate(headers, KEYS)


def test_api_keys_setting_is_json_of_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETAMINE_QA_API_KEYS", f'[{{"name": "portal", "sha256": "{KEYS[0].sha256.upper()}"}}]')
    keys = Settings().api_keys
    assert keys == [ApiKey(name="portal", sha256=KEYS[0].sha256, role="portal")]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('[{"name": "portal", "sha256": "abc"}]', "sha256"),
        ('[{"name": "portal", "sha256": "' + "a" * 64 + '", "role": "root"}]', "role"),
        ('[{"name": "p", "sha256": "' + "a" * 64 + '"}, {"name": "p", "sha256": "' + "b" * 64 + '"}]', "unique"),
    ],
)
def test_bad_key_configuration_fails_at_startup_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("KETAMINE_QA_API_KEYS", value)
    with pytest.raises(ValidationError, match=message) as error:
        Settings()
    assert "api_keys" in str(error.value)


def test_anonymous_and_portal_clients_are_served(keyed: TestClient) -> None:
    assert keyed.post("/v1/ask", json=QUESTION).status_code == 200
    assert keyed.post("/v1/ask", json=QUESTION, headers={"Authorization": f"Bearer {PORTAL_KEY}"}).status_code == 200
    assert keyed.get("/v1/passages", headers={"X-API-Key": PORTAL_KEY}).status_code == 200
    assert keyed.get("/v1/suggestions").status_code == 200


@pytest.mark.parametrize("path", ["/v1/ask", "/v1/passages", "/v1/suggestions", "/v1/feedback", "/v1/nowhere"])
def test_a_wrong_key_is_401_never_served_as_anonymous(keyed: TestClient, path: str) -> None:
    headers = {"Authorization": "Bearer wrong-key"}
    if path in ("/v1/ask", "/v1/feedback"):
        response = keyed.post(path, json=QUESTION, headers=headers)
    else:
        response = keyed.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["title"] == "Unauthorized"
    assert "wrong-key" not in response.text


def test_admin_routes_need_an_admin_key(keyed: TestClient) -> None:
    missing = keyed.get("/v1/admin/report")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert keyed.get("/v1/admin/report", headers={"X-API-Key": "guess"}).status_code == 401
    portal = keyed.get("/v1/admin/report", headers={"X-API-Key": PORTAL_KEY})
    assert portal.status_code == 403
    assert portal.headers["content-type"] == "application/problem+json"
    admin = keyed.get("/v1/admin/report", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert admin.status_code == 200
    assert set(admin.json()) == {"questions", "groups", "passages"}


def test_without_configured_keys_every_key_is_wrong(client: TestClient) -> None:
    assert client.post("/v1/ask", json=QUESTION, headers={"X-API-Key": PORTAL_KEY}).status_code == 401
    assert client.get("/v1/admin/report").status_code == 401


def test_health_widget_and_metrics_are_outside_the_key_check(keyed: TestClient) -> None:
    bad = {"Authorization": "Bearer wrong"}
    assert keyed.get("/healthz", headers=bad).status_code == 200
    assert keyed.get("/readyz", headers=bad).status_code == 200
    assert keyed.get("/metrics", headers=bad).status_code == 200


TRUSTED = parse_networks(["10.0.0.0/8", "127.0.0.1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # untrusted peer: its header is ignored
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
        ("10.1.2.3", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # left of the proxy's hop is spoofable
        ("10.1.2.3", "198.51.100.1, 10.9.9.9", "198.51.100.1"),  # two proxies
        ("127.0.0.1", "not-an-ip", "127.0.0.1"),
        ("10.1.2.3", None, "10.1.2.3"),
    ],
)
def test_client_address_believes_x_forwarded_for_only_from_trusted_proxies(
    peer: str, forwarded: str | None, expected: str
) -> None:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    assert client_address({"client": (peer, 1234), "headers": headers}, TRUSTED) == expected


def test_hash_key_command_reads_stdin_and_prints_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import cli

    result = CliRunner().invoke(cli, ["hash-key"], input=PORTAL_KEY + "\n")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == KEYS[0].sha256
    assert PORTAL_KEY not in result.output
    entry = CliRunner().invoke(cli, ["hash-key", "--name", "ops", "--role", "admin"], input=ADMIN_KEY + "\n")
    assert entry.exit_code == 0
    monkeypatch.setenv("KETAMINE_QA_API_KEYS", "[" + entry.output.strip() + "]")
    assert authenticate({"x-api-key": ADMIN_KEY}, Settings().api_keys).role == "admin"
    assert CliRunner().invoke(cli, ["hash-key"], input="\n").exit_code == 1
