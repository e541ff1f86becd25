"""Time sources for the sandbox.

Every component takes its time from a `Clock` so the pure parts (job book, idempotency
expiry) can be driven by a fake clock in unit tests. Wall times leave the sandbox as
ISO-8601 UTC strings with microseconds and a `Z` suffix, for example
`2024-05-01T12:00:00.123456Z`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """A pair of clocks: monotonic seconds for scheduling, aware UTC datetimes for display."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


class SystemClock:
    """The process clocks (`time.monotonic`, `datetime.now(UTC)`)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """Formats an aware datetime as ISO-8601 UTC with microseconds and a `Z` suffix."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
