"""Time as an argument, so pure logic is tested without patching ``time``."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()
