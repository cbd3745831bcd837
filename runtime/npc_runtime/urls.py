"""Service URLs in logs and error messages: the password never shows."""

from __future__ import annotations


def redact(url: str) -> str:
    """`scheme://user:***@host/...` for a URL with a password; anything else unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
