"""API keys: read from a ``--keys`` file, kept as SHA-256 only, matched in constant time.

A keys file has one ``name:key`` per line (``#`` comments and blank lines allowed). Each
key is hashed as it is read and the clear text is dropped; from then on the guard holds
the same thing a policy's ``clients`` list holds. A request presents its key as
``X-API-Key: KEY`` or ``Authorization: Bearer KEY``; :meth:`KeyRing.identify` hashes it and
compares the digest with every client's with :func:`hmac.compare_digest`, never stopping
early, so the time taken says nothing about which client (if any) nearly matched.
"""
from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path

from ..defences.policy import CLIENT_NAME, Client, hash_key
from ..errors import UsageError

MAX_KEY_LENGTH = 4096  # longer headers are refused without hashing them


def read_keys_file(path: str | Path) -> list[Client]:
    """The clients of a ``name:key`` file, their keys hashed. Errors name the line, never the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the keys file: {getattr(exc, 'strerror', None) or exc}") from None
    clients: list[Client] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, key = line.partition(":")
        name, key = name.strip(), key.strip()
        if not sep or not key:
            raise UsageError(f"{path}:{number}: expected name:key")
        if not CLIENT_NAME.fullmatch(name):
            raise UsageError(f"{path}:{number}: client names are 1-64 letters, digits, '_', '.' or '-'")
        if len(key) < 16 or len(key) > MAX_KEY_LENGTH:
            raise UsageError(f"{path}:{number}: a key must be 16 to {MAX_KEY_LENGTH} characters long")
        client = Client(name, hash_key(key))
        for other in clients:
            if other.name == name:
                raise UsageError(f"{path}:{number}: client {name!r} is declared twice")
            if other.key_sha256 == client.key_sha256:
                raise UsageError(f"{path}:{number}: clients {other.name!r} and {name!r} have the same key")
        clients.append(client)
    return clients


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries (``X-API-Key`` first, then a Bearer token), or None."""
    key = headers.get("x-api-key")
    if key is None or not key.strip():  # an empty X-API-Key must not hide a Bearer token
        auth = headers.get("authorization", "")
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "bearer":
            key = token
    key = (key or "").strip()
    return key or None


class KeyRing:
    """Finds the client whose key a request presents."""

    def __init__(self, clients: tuple[Client, ...] | list[Client]):
        self._digests = [(c, bytes.fromhex(c.key_sha256)) for c in clients]

    def identify(self, key: str | None) -> Client | None:
        if key is None or len(key) > MAX_KEY_LENGTH:
            return None
        digest = bytes.fromhex(hash_key(key))
        found = None
        for client, expected in self._digests:  # every comparison is made, match or not
            if hmac.compare_digest(digest, expected):
                found = client
        return found

    def __len__(self) -> int:
        return len(self._digests)


def metrics_refusal(token_sha256: str | None, headers: Mapping[str, str], peer: str | None) -> tuple[int, str] | None:
    """Why ``GET /metrics`` is refused, as (status, reason), or None to serve it.

    The metrics name every client and count each one's flagged queries, which would tell an
    attacker when its probing starts to show: with ``metrics.token_sha256`` in the policy the
    scraper must present that token (a client's API key is not enough); without it only
    scrapers on this host (loopback) are answered."""
    if token_sha256 is not None:
        key = presented_key(headers)
        if key is not None and len(key) <= MAX_KEY_LENGTH and hmac.compare_digest(
                bytes.fromhex(hash_key(key)), bytes.fromhex(token_sha256)):
            return None
        return 401, "GET /metrics needs the metrics token (X-API-Key or Authorization: Bearer)"
    if any(name in headers for name in _FORWARDING_HEADERS):
        # a proxy on this host makes every client look local: without a token, refuse what it forwards
        return 403, "GET /metrics through a proxy needs metrics.token_sha256 in the policy"
    if peer is not None and _is_loopback(peer):
        return None
    return 403, "GET /metrics answers this host only; set metrics.token_sha256 in the policy to scrape from elsewhere"


_FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack listener
    return (mapped or address).is_loopback
