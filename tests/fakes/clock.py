"""A clock the test controls."""

from __future__ import annotations

import threading
import time


class FakeClock:
    """Monotonic seconds that move only through ``advance``.

    The fakes advance it where the real peer would have made the loop wait (an empty poll
    takes its timeout), and yield a moment of real time there so job threads can progress.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def waited(self, seconds: float) -> None:
        """A peer made the caller wait ``seconds``: move on, and let other threads run."""
        if seconds > 0:
            self.advance(seconds)
            time.sleep(0.0005)
