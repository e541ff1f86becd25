"""The sandbox's shared state and its one lock.

Every piece of mutable state (users, jobs, idempotency keys, faults, request log) lives in
one `SandboxState` and is touched only while holding `lock`. `wakeup` is a condition on
that same lock: the completion thread sleeps on it until the next job is due or a new job
is submitted.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from fullstory_sandbox.clock import Clock, SystemClock
from fullstory_sandbox.faults import Faults, Tunables
from fullstory_sandbox.idempotency import IdempotencyKeys
from fullstory_sandbox.jobs import JobBook, JobLimits
from fullstory_sandbox.requestlog import RequestLog
from fullstory_sandbox.settings import Settings
from fullstory_sandbox.store import UserStore


@dataclass
class SandboxState:
    settings: Settings
    clock: Clock
    lock: threading.RLock
    wakeup: threading.Condition
    rng: random.Random
    store: UserStore
    book: JobBook
    keys: IdempotencyKeys
    faults: Faults
    log: RequestLog

    @classmethod
    def create(cls, settings: Settings, clock: Clock | None = None) -> SandboxState:
        clock = clock or SystemClock()
        lock = threading.RLock()
        rng = random.Random(settings.seed)
        faults = Faults(
            Tunables(
                job_delay_ms=settings.job_delay_ms,
                job_jitter_ms=settings.job_jitter_ms,
                page_size=settings.page_size,
                replay_errors=settings.replay_errors,
            )
        )
        limits = JobLimits(
            max_running=settings.max_running_jobs,
            max_in_progress=settings.max_in_progress_jobs,
            max_in_flight=settings.max_in_flight_requests,
        )
        return cls(
            settings=settings,
            clock=clock,
            lock=lock,
            wakeup=threading.Condition(lock),
            rng=rng,
            store=UserStore(clock, settings.user_delete_ms / 1000),
            book=JobBook(limits, lambda: faults.job_duration_s(rng)),
            keys=IdempotencyKeys(settings.idempotency_ttl_s),
            faults=faults,
            log=RequestLog(settings.request_log_limit),
        )

    def reset(self) -> None:
        """Forgets users, jobs, keys, faults and the request log; restores start-up tunables."""
        with self.lock:
            self.store.clear()
            self.book.clear()
            self.keys.clear()
            self.faults.clear()
            self.log.clear()
            self.wakeup.notify_all()
