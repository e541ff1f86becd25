"""Backoff for retriable failures: exponential with full jitter, or the server's Retry-After.

Pure apart from the injected random source; the caller does the waiting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from worker.errors import RateLimited, RetriableError


@dataclass(slots=True)
class Backoff:
    """Delay before attempt n+1: ``uniform(0, min(cap, base * 2**n))``, at least ``floor``."""

    base_s: float = 0.2
    cap_s: float = 30.0
    floor_s: float = 0.05
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self, error: RetriableError | None = None) -> float:
        """Seconds to wait; a 429's Retry-After is honoured exactly (never less)."""
        self.attempt += 1
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return max(error.retry_after, self.floor_s)
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempt - 1, 30)))
        return max(self.floor_s, self.rng.uniform(0, ceiling))

    def reset(self) -> None:
        self.attempt = 0
