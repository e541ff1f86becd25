"""FullStory calls under the worker's retry policy, for the import and the job stages.

Threads: one ``Policy`` is shared by every job thread (its ``RateGate`` locks; its health
callbacks and metrics are thread-safe). ``Calls`` is one thread's use of it, with that
thread's cancel event, and is touched by that thread alone.

- ``once`` makes one call, after any Retry-After a 429 gave any thread has elapsed, and tells
  health how FullStory did: ``ServerError`` and ``Unreachable`` are API failures, every other
  answer (429, 404, a refused body, a bad answer) is an answer.
- ``retrying`` repeats a call until it succeeds, waiting its backoff (or Retry-After) between
  tries; it never gives up on its own.
- After a ``ServerError`` or ``Unreachable``, the backoff ends early once another thread's
  call *to the same endpoint* succeeded (``Recovery``): when FullStory comes back, every thread
  tries again at once, instead of sleeping out its own backoff (up to 30 s after a long
  outage); an endpoint that still fails is not hammered because another one answers. So that
  someone notices it is back, one thread per endpoint at a time (the *prober*) waits at most
  ``probe_s`` (2 s) between its tries; the others wait out their backoff or that success.
- Every wait ends with ``Abandoned`` once the thread's cancel event or the worker's
  ``abandon`` event (the shutdown deadline) is set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from structlog.typing import FilteringBoundLogger

from worker.errors import (
    Abandoned,
    AuthFailed,
    BadAnswer,
    RateLimited,
    RejectedRequest,
    RetriableError,
    ServerError,
    Unreachable,
)
from worker.runtime.metrics import Metrics, retry_reason
from worker.runtime.retry import Backoff

T = TypeVar("T")


class RateGate:
    """After a 429, no request goes out before Retry-After, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._not_before = 0.0

    def close_for(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def wait_s(self) -> float:
        with self._lock:
            return max(0.0, self._not_before - time.monotonic())


class Recovery:
    """Successful FullStory calls by endpoint (``create_batch``, ``job_status``, ...), counted
    across job threads, and a way to wait for one."""

    _SLICE_S = 0.1  # how often a waiting thread checks its cancel event

    def __init__(self, probe_s: float = 2.0) -> None:
        self.probe_s = probe_s
        self._changed = threading.Condition()
        self._successes: dict[str, int] = {}
        self._probing: set[str] = set()

    def claim_probe(self, name: str) -> bool:
        """True when no other thread is the prober of ``name``: the caller is, until
        ``release_probe``."""
        with self._changed:
            if name in self._probing:
                return False
            self._probing.add(name)
            return True

    def release_probe(self, name: str) -> None:
        with self._changed:
            self._probing.discard(name)

    def successes(self, name: str) -> int:
        return self._successes.get(name, 0)

    def succeeded(self, name: str) -> None:
        with self._changed:
            self._successes[name] = self.successes(name) + 1
            self._changed.notify_all()

    def wait(self, seconds: float, name: str, since: int, stopped: Callable[[float], bool]) -> bool:
        """Wait up to ``seconds`` for a success of ``name`` after its ``since``-th; True if
        one came. ``stopped(timeout)`` waits on the caller's cancel event (True: stop now)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            with self._changed:
                if self.successes(name) != since:
                    return True
                self._changed.wait(min(left, self._SLICE_S))
                if self.successes(name) != since:
                    return True
            if stopped(0):
                return False
        return False


@dataclass(frozen=True, slots=True)
class Policy:
    """What every job thread's calls share."""

    abandon: threading.Event
    backoff: Callable[[], Backoff]
    on_api_answer: Callable[[], None]
    on_api_failure: Callable[[], None]
    metrics: Metrics
    gate: RateGate = field(default_factory=RateGate)
    recovery: Recovery = field(default_factory=Recovery)


class Calls:
    """One job thread's FullStory calls; ``cancel`` None: only ``abandon`` stops them."""

    def __init__(self, policy: Policy, cancel: threading.Event | None) -> None:
        self._policy = policy
        self._cancel = cancel

    def backoff(self) -> Backoff:
        """A fresh backoff, for one call's series of tries."""
        return self._policy.backoff()

    def successes(self, name: str) -> int:
        """Calls to the endpoint ``name`` that succeeded so far, on every thread."""
        return self._policy.recovery.successes(name)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; raises ``Abandoned`` when cancelled or abandoned, even at 0."""
        if self._stopped(seconds):
            raise Abandoned("cancelled, or the shutdown deadline was reached")

    def _stopped(self, seconds: float) -> bool:
        abandon = self._policy.abandon
        stopped = (self._cancel if self._cancel is not None else abandon).wait(seconds)
        return stopped or abandon.is_set()

    def sleep_until_recovered(self, seconds: float, name: str, since: int) -> None:
        """Like ``sleep``, but over as soon as a call to ``name`` succeeded after its
        ``since``-th."""
        self._policy.recovery.wait(seconds, name, since, self._stopped)
        self.sleep(0)

    def once(self, call: Callable[[], T], name: str) -> T:
        """One call to the endpoint ``name``, after any Retry-After another job thread was
        given has elapsed."""
        policy = self._policy
        while (wait := policy.gate.wait_s()) > 0:
            self.sleep(wait)
        self.sleep(0)  # raises if cancelled meanwhile
        try:
            result = call()
        except (ServerError, Unreachable, BadAnswer, AuthFailed):
            # Down, refusing our key, or answering what no documentation promises: /readyz
            # says so after its grace period, and the batch is retried, never acknowledged.
            policy.on_api_failure()
            raise
        except RateLimited as exc:
            if exc.retry_after is not None:
                policy.gate.close_for(exc.retry_after)
            policy.on_api_answer()
            raise
        except (RetriableError, RejectedRequest):
            policy.on_api_answer()
            raise
        policy.on_api_answer()
        policy.recovery.succeeded(name)
        return result

    def back_off(
        self,
        backoff: Backoff,
        exc: RetriableError | RejectedRequest,
        call: str,
        bound: FilteringBoundLogger,
    ) -> None:
        """Log the failed call, count it, and wait its backoff (or Retry-After); after a 5xx or
        an unreachable API, only until another thread's call to the same endpoint succeeds,
        and at most ``probe_s`` for the endpoint's prober."""
        since = self.successes(call)
        delay = backoff.next_delay(exc if isinstance(exc, RetriableError) else None)
        self._policy.metrics.api_retries.labels(call, retry_reason(exc)).inc()
        recovery = self._policy.recovery
        down = isinstance(exc, ServerError | Unreachable)
        probing = down and recovery.claim_probe(call)
        try:
            if probing:
                delay = min(delay, recovery.probe_s)
            bound.warning(
                "fullstory_retry",
                call=call,
                error=str(exc),
                attempt=backoff.attempt,
                delay_s=round(delay, 3),
                probing=probing,
            )
            if down:
                self.sleep_until_recovered(delay, call, since)
            else:
                self.sleep(delay)
        finally:
            if probing:
                recovery.release_probe(call)

    def retrying(
        self,
        call: Callable[[], T],
        name: str,
        bound: FilteringBoundLogger,
        ends_on: tuple[type[RetriableError], ...] = (),
    ) -> T:
        """``call`` until it succeeds; an error of a class in ``ends_on`` is raised instead.

        A refused request is retried too: this is for reading jobs this worker created,
        where a 4xx is FullStory's problem, not the data's.
        """
        backoff = self.backoff()
        while True:
            try:
                return self.once(call, name)
            except ends_on:
                raise
            except (RetriableError, RejectedRequest) as exc:
                self.back_off(backoff, exc, name, bound)
