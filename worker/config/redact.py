"""Keeping credentials out of reprs, logs and error messages.

``Secret`` wraps a value whose repr and str never show it. ``redact_url`` masks the userinfo
of a URL (``https://user:pass@host/`` -> ``https://***@host/``): use it wherever a configured
URL is logged or shown, since operators may put credentials there.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


class Secret:
    """A string whose repr and str never show it; call ``reveal()`` where it is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact_url(url: str) -> str:
    """``url`` with any userinfo replaced by ``***``; a URL that does not parse is hidden
    whole (it might still hold a password, and nothing downstream needs it verbatim)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
