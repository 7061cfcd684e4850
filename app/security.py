"""Who is asking: a portal or admin API key (configured as sha256 hashes), or an anonymous address.

A key is sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`. A request that presents a
key we do not know is refused (401), never quietly served as anonymous: a portal with a rotated
key should find out at once, not by hitting the anonymous rate limit.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from app.config import ApiKey

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ketamine-qa"'}


@dataclass(frozen=True)
class Client:
    """The caller as far as limits and logs care: a key's configured name and role, or anonymous."""

    name: str | None
    role: str  # anonymous | portal | admin


ANONYMOUS = Client(None, "anonymous")


class BadKey(Exception):
    """A key was presented but is malformed or unknown."""


def hash_key(key: str) -> str:
    """The sha256 hex digest that goes into KETAMINE_QA_API_KEYS for this key."""
    return hashlib.sha256(key.strip().encode("utf-8")).hexdigest()


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key in the request headers; None when none is presented. Raises BadKey when malformed."""
    keys = []
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise BadKey()
        keys.append(value.strip())
    api_key = headers.get("x-api-key")
    if api_key is not None:
        if not api_key.strip():
            raise BadKey()
        keys.append(api_key.strip())
    if len(set(keys)) > 1:
        raise BadKey()
    return keys[0] if keys else None


def authenticate(headers: Mapping[str, str], api_keys: Sequence[ApiKey]) -> Client:
    """The client a request's headers identify. Raises BadKey for a wrong or malformed key."""
    key = presented_key(headers)
    if key is None:
        return ANONYMOUS
    digest = hash_key(key)
    match: ApiKey | None = None
    # Compare against every configured hash, in constant time, without stopping at the first hit.
    for configured in api_keys:
        if hmac.compare_digest(digest, configured.sha256) and match is None:
            match = configured
    if match is None:
        raise BadKey()
    return Client(match.name, match.role)


def _client(request: Request) -> Client:
    try:
        return authenticate(request.headers, request.app.state.settings.api_keys)
    except BadKey as e:
        raise HTTPException(401, "The API key is not valid.", headers=BEARER_CHALLENGE) from e


def require_key(request: Request) -> Client:
    """FastAPI dependency: any configured key (portal or admin); 401 otherwise."""
    client = _client(request)
    if client.role == "anonymous":
        raise HTTPException(401, "This route needs an API key.", headers=BEARER_CHALLENGE)
    return client


def require_admin(request: Request) -> Client:
    """FastAPI dependency for /v1/admin/... routes: 401 without a valid key, 403 for a portal key."""
    client = require_key(request)
    if client.role != "admin":
        raise HTTPException(403, "This route needs an admin API key.")
    return client


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_address(scope: Mapping[str, Any], trusted: Sequence[IPNetwork]) -> str:
    """The client's IP: the peer, or, when the peer is a trusted proxy, the nearest untrusted
    X-Forwarded-For hop (right to left: hops left of it could be written by anyone)."""
    peer = scope.get("client")
    address = peer[0] if peer else "unknown"

    def is_trusted(value: str) -> bool:
        ip = _ip(value)
        return ip is not None and any(ip in network for network in trusted)

    if not trusted or not is_trusted(address):
        return address
    forwarded = [value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"]
    hops = [hop.strip() for hop in ",".join(forwarded).split(",") if hop.strip()]
    for hop in reversed(hops):
        if _ip(hop) is None:
            return address
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else address
