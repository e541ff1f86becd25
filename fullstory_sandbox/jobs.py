"""Batch import jobs and the per-org job book (the pure core of the scheduler).

Lifecycle: `queued` -> `running` -> `completed` | `failed`. The API shows queued and
running jobs as `PROCESSING`; a job ends `FAILED` when any user failed validation (its
valid users are still imported), else `COMPLETED`.

Limits (FullStory, per org), enforced by `JobBook`:
- at most `max_running` jobs run at once; more wait in FIFO order and start the moment a
  slot frees;
- `check_capacity` refuses a new job while `max_in_progress` jobs are queued or running,
  or when its request objects would take the in-flight total past `max_in_flight`.
A running job is due `duration_s()` seconds after it started; due jobs complete in due
order (ties by submission order), which is the order their users are applied.
Nothing here reads a clock or takes a lock: callers pass the time and hold the lock.
"""

from __future__ import annotations

import copy
import math
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from fullstory_sandbox.clock import isoformat
from fullstory_sandbox.messages import JsonObject
from fullstory_sandbox.validation import ValidUser


class JobState(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass
class Job:
    """One batch import. `errors` are `{"code", "message", "user"}` results."""

    id: str
    seq: int
    requests: Sequence[Any]
    valid: Sequence[ValidUser]
    errors: Sequence[JsonObject]
    idempotency_key: str | None
    created: datetime
    created_mono: float
    state: JobState = JobState.QUEUED
    started: datetime | None = None
    started_mono: float | None = None
    due_mono: float | None = None
    finished: datetime | None = None
    finished_mono: float | None = None
    imports: list[JsonObject] = field(default_factory=list)

    @property
    def in_progress(self) -> bool:
        return self.state in (JobState.QUEUED, JobState.RUNNING)

    @property
    def api_status(self) -> str:
        return "PROCESSING" if self.in_progress else self.state.name

    def metadata(self) -> JsonObject:
        """The API's JobMetadata: `id`, `status`, `created`, and `finished` once ended."""
        body: JsonObject = {
            "id": self.id,
            "status": self.api_status,
            "created": isoformat(self.created),
        }
        if self.finished is not None:
            body["finished"] = isoformat(self.finished)
        return body

    def contents(self) -> list[Any]:
        """The admin view (`GET /_sandbox/job_requests`): the request objects exactly as the
        batch carried them (invalid ones included), in the order they were sent."""
        return copy.deepcopy(list(self.requests))

    def describe(self) -> JsonObject:
        """The admin view (`GET /_sandbox/jobs`): timings, uids and counts."""
        return {
            "id": self.id,
            "status": self.api_status,
            "state": self.state.value,
            "created": isoformat(self.created),
            "started": _iso_or_none(self.started),
            "finished": _iso_or_none(self.finished),
            "created_monotonic": self.created_mono,
            "started_monotonic": self.started_mono,
            "finished_monotonic": self.finished_mono,
            "uids": [
                r["uid"]
                for r in self.requests
                if isinstance(r, dict) and isinstance(r.get("uid"), str)
            ],
            "request_count": len(self.requests),
            "imports": len(self.imports) if not self.in_progress else 0,
            "errors": len(self.errors),
            "idempotency_key": self.idempotency_key,
        }


@dataclass(frozen=True)
class JobLimits:
    max_running: int = 100
    max_in_progress: int = 200
    max_in_flight: int = 500_000


class CapacityExceeded(Exception):
    """The org is at a job limit; retry after `retry_after_s` seconds."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class JobBook:
    """Every job of the org, the FIFO queue and the running set."""

    def __init__(self, limits: JobLimits, duration_s: Callable[[], float]) -> None:
        self._limits = limits
        self._duration_s = duration_s
        self._jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._running: dict[str, Job] = {}
        self._in_flight = 0
        self._seq = 0
        self.max_running_seen = 0

    def check_capacity(self, request_count: int, now_mono: float) -> None:
        """Raises `CapacityExceeded` when a job of `request_count` objects may not be added."""
        in_progress = len(self._queue) + len(self._running)
        if in_progress >= self._limits.max_in_progress:
            reason = f"{in_progress} batch jobs in progress (limit {self._limits.max_in_progress})"
        elif self._in_flight + request_count > self._limits.max_in_flight:
            reason = (
                f"{self._in_flight} request objects in flight; {request_count} more would "
                f"exceed {self._limits.max_in_flight}"
            )
        else:
            return
        raise CapacityExceeded(reason, self._seconds_until_a_slot(now_mono))

    def submit(
        self,
        requests: Sequence[Any],
        valid: Sequence[ValidUser],
        errors: Sequence[JsonObject],
        idempotency_key: str | None,
        now_mono: float,
        now_wall: datetime,
    ) -> Job:
        """Queues a new job (starting it at once when a slot is free) and returns it."""
        self._seq += 1
        job = Job(
            id=str(uuid.uuid4()),
            seq=self._seq,
            requests=requests,
            valid=valid,
            errors=errors,
            idempotency_key=idempotency_key,
            created=now_wall,
            created_mono=now_mono,
        )
        self._jobs[job.id] = job
        self._queue.append(job)
        self._in_flight += len(requests)
        self.start_queued(now_mono, now_wall)
        return job

    def start_queued(self, now_mono: float, now_wall: datetime) -> list[Job]:
        """Moves queued jobs into free running slots, oldest first; returns those started."""
        started: list[Job] = []
        while self._queue and len(self._running) < self._limits.max_running:
            job = self._queue.popleft()
            job.state = JobState.RUNNING
            job.started, job.started_mono = now_wall, now_mono
            job.due_mono = now_mono + max(0.0, self._duration_s())
            self._running[job.id] = job
            started.append(job)
        self.max_running_seen = max(self.max_running_seen, len(self._running))
        return started

    def due(self, now_mono: float) -> list[Job]:
        """Running jobs whose time has come, in completion order."""
        ready = [job for job in self._running.values() if _due(job) <= now_mono]
        return sorted(ready, key=lambda job: (_due(job), job.seq))

    def finish(
        self, job: Job, imports: list[JsonObject], now_mono: float, now_wall: datetime
    ) -> None:
        """Ends a running job with the import results of its valid users."""
        del self._running[job.id]
        self._in_flight -= len(job.requests)
        job.imports = imports
        job.state = JobState.FAILED if job.errors else JobState.COMPLETED
        job.finished, job.finished_mono = now_wall, now_mono

    def next_due(self) -> float | None:
        """The monotonic time the next running job is due, None when nothing runs."""
        return min((_due(job) for job in self._running.values()), default=None)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def __len__(self) -> int:
        return len(self._jobs)

    def all(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda job: job.seq)

    def counts(self) -> JsonObject:
        by_state = {state.value: 0 for state in JobState}
        for job in self._jobs.values():
            by_state[job.state.value] += 1
        return {
            "total": len(self._jobs),
            "processing": by_state["queued"] + by_state["running"],
            **by_state,
            "in_flight_requests": self._in_flight,
            "max_running": self.max_running_seen,
        }

    @property
    def in_progress(self) -> int:
        return len(self._queue) + len(self._running)

    def clear(self) -> None:
        self._jobs.clear()
        self._queue.clear()
        self._running.clear()
        self._in_flight = 0
        self.max_running_seen = 0

    def _seconds_until_a_slot(self, now_mono: float) -> int:
        next_due = self.next_due()
        if next_due is None:
            return 1
        return max(1, math.ceil(next_due - now_mono))


def _due(job: Job) -> float:
    return job.due_mono if job.due_mono is not None else math.inf


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else isoformat(moment)
