"""URLs made safe to record: no secrets from the query string or the user-info part.

Endpoints are often given with their key in the URL (``?apikey=...``) or as
``https://user:password@host``. A report, the event log and SARIF are shared with people
who should not get the key, so what redline records is :func:`redact_url` of the URL:
every query value and any user info replaced by ``REDACTED``, the parameter names kept
so the reader still sees which were set. The request itself uses the original URL.
"""

from __future__ import annotations

import urllib.parse

__all__ = ["REDACTED", "redact_url"]

REDACTED = "REDACTED"


def redact_url(url: str) -> str:
    """``url`` with its query values and user info replaced; other text is returned as given."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # unparseable (a broken [IPv6] host): keep only what cannot be a secret
        scheme, sep, rest = url.partition("://")
        if not sep:
            return REDACTED
        host = rest.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]
        return f"{scheme}://{REDACTED + '@' if '@' in rest else ''}{host}/{REDACTED}"
    if parts.scheme.lower() not in ("http", "https") or not (parts.query or "@" in parts.netloc):
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = []
        for item in query.split("&"):
            name, sep, _value = item.partition("=")
            # a bare item (``?KEY``) may be the secret itself
            pairs.append(f"{name}={REDACTED}" if sep else (REDACTED if item else item))
        query = "&".join(pairs)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
