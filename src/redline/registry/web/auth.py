"""Who may read and who may write.

Writes (submitting an incident) need the write token, sent as ``Authorization: Bearer`` or
as the ``token`` field of the form itself. A token never travels in a cookie for a write, so
a page on another site cannot make a visitor's browser write on their behalf (the classic
cross-site request forgery needs a credential the browser adds by itself).

Reads are open unless a read token is configured. Then a read needs the read or the write
token as a bearer header, or the cookie that the sign-in form sets; that cookie is
HttpOnly and SameSite=Strict and is accepted for reads only.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["READ_COOKIE", "TokenRules", "bearer"]

READ_COOKIE = "redline_registry_read"


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, else None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _same(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    # Constant-time comparison, so response timing tells nothing about the token.
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class TokenRules:
    """``write_tokens``: every token allowed to write (a team may give each writer one)."""

    def __init__(self, write_tokens: Sequence[str], read_token: str | None = None):
        self.write_tokens = tuple(write_tokens)
        self.read_token = read_token

    @property
    def reads_open(self) -> bool:
        return not self.read_token

    def may_write(self, token: str | None) -> bool:
        # Compare with every token, not just until one matches, so timing says nothing either.
        return sum(_same(token, t) for t in self.write_tokens) > 0

    def may_read(self, token: str | None, cookie: str | None = None) -> bool:
        if self.reads_open:
            return True
        if _same(token, self.read_token) or self.may_write(token):
            return True
        return _same(cookie, self.cookie_value())

    def cookie_value(self) -> str:
        """What the sign-in cookie holds: a digest of the read token, never the token itself."""
        return hashlib.sha256(b"redline-registry-read\0" + (self.read_token or "").encode("utf-8")).hexdigest()
