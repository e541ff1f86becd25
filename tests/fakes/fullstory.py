"""FullStory's batch import API as the importer sees it
(``worker.fullstory.importer.FullStoryApi``).

Jobs stay PROCESSING until the test finishes them (COMPLETED, or FAILED with per-user errors
listed over pages); calls can be scripted to fail (429 with Retry-After, 5xx, 400); a repeated
Idempotency-Key gets the first answer's job back. It notes what a real FullStory would make
visible: every job's users, how often each job was polled, and any two jobs that shared a uid
while both were running (``violations``). Thread-safe: job threads call it.

Users (``worker.fullstory.deleter.DeleteApi``): a uid exists once a job carried it. A DELETE
starts its deletion, which runs until the test ends it (``finish_deletion``) or, with
``deletion_polls`` set, after that many look-ups; meanwhile a look-up says
``BEING_DELETED``. A DELETE of a uid a running job carries, and a job carrying a uid whose
deletion still runs, are violations (FullStory could apply them in either order).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from worker.errors import NotFound, RejectedRequest, Unreachable
from worker.fullstory.client import JobState, JobStatus, UserError, UserPresence

CALLS = ("create_batch", "job_status", "job_errors", "delete_user", "user_presence")


@dataclass
class FakeJob:
    id: str
    key: str
    users: dict[str, dict[str, Any]]  # uid -> the request object FullStory received
    status: str = "PROCESSING"
    errors: list[UserError] = field(default_factory=list)
    polls: int = 0

    @property
    def uids(self) -> list[str]:
        return list(self.users)

    @property
    def running(self) -> bool:
        return self.status == "PROCESSING"


class ScriptedFullStory:
    def __init__(self, error_page_size: int = 1) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._page_size = error_page_size
        self._jobs: dict[str, FakeJob] = {}
        self._by_key: dict[str, str] = {}
        self._script: dict[str, deque[Exception]] = {call: deque() for call in CALLS}
        self._lose_answers = False
        self._refused: dict[str, tuple[str, str]] = {}
        self.posts: list[str] = []  # the Idempotency-Key of every POST that reached us
        # When set, a running job COMPLETES on this status poll (for drains the test cannot
        # step through: a revoke or a shutdown runs to its end inside one call).
        self.complete_on_poll: int | None = None
        self.violations: list[str] = []
        self.users: set[str] = set()  # uids FullStory holds (a job carried them)
        self.deleting: dict[str, int] = {}  # uid -> look-ups while its deletion runs
        self.deletes: list[str] = []  # every DELETE's uid, in order
        self.deletion_polls: int | None = None
        self.log: list[tuple[str, str]] = []  # ("upsert" | "delete", uid), in order
        self._creates_open = threading.Event()
        self._creates_open.set()
        self.creates_held = 0  # POSTs waiting at a hold

    def finish_deletion(self, uid: str) -> None:
        with self._lock:
            del self.deleting[uid]
            self.users.discard(uid)

    # -- what the test scripts and reads ------------------------------------------------

    def fail_next(self, call: str, *errors: Exception) -> None:
        """The next calls of ``call`` raise these (as the HTTP adapter translates answers)."""
        self._script[call].extend(errors)

    def lose_answers(self, lose: bool = True) -> None:
        """While set, a POST creates its job (or finds its key's) and its answer is lost on the
        way back (``Unreachable``): the worker cannot know the job it made."""
        self._lose_answers = lose

    def hold_creates(self) -> None:
        """Hold every POST before it is answered until ``release_creates`` (10 s at most), so a
        test can have several in flight at once."""
        self._creates_open.clear()

    def release_creates(self) -> None:
        self._creates_open.set()

    def refuse(self, uid: str, code: str, message: str) -> None:
        """Any body carrying ``uid`` is refused as a whole with a 400 (no job), as FullStory
        does for an invalid request object."""
        self._refused[uid] = (code, message)

    def started_elsewhere(self, job_id: str, uids: tuple[str, ...] = ()) -> FakeJob:
        """A job another replica created (a previous owner's), running."""
        with self._lock:
            job = FakeJob(job_id, key=f"other-{job_id}", users={u: {"uid": u} for u in uids})
            self._jobs[job_id] = job
            return job

    def finish(self, job_id: str | None = None, failed: dict[str, str] | None = None) -> FakeJob:
        """End a running job (the oldest if ``job_id`` is None): COMPLETED, or FAILED with an
        error for each uid in ``failed`` (uid -> error code)."""
        with self._lock:
            job = (
                self._jobs[job_id] if job_id else next(j for j in self._jobs.values() if j.running)
            )
            if not job.running:
                raise AssertionError(f"job {job.id} already ended")
            errors = [
                UserError(uid, code, f"{code} (scripted)") for uid, code in (failed or {}).items()
            ]
            unknown = {e.uid for e in errors} - set(job.users)
            if unknown:
                raise AssertionError(f"job {job.id} has no users {sorted(unknown)}")
            job.errors = errors
            job.status = "FAILED" if errors else "COMPLETED"
            return job

    def jobs(self) -> list[FakeJob]:
        """Every job, in the order they were created."""
        with self._lock:
            return list(self._jobs.values())

    def job_of(self, uid: str) -> FakeJob:
        """The latest job that carried ``uid`` (job threads create jobs in any order)."""
        return next(job for job in reversed(self.jobs()) if uid in job.users)

    def running(self) -> list[FakeJob]:
        return [job for job in self.jobs() if job.running]

    def job(self, job_id: str) -> FakeJob:
        with self._lock:
            return self._jobs[job_id]

    # -- worker.fullstory.importer.FullStoryApi ----------------------------------------------------

    def _scripted(self, call: str) -> None:
        if self._script[call]:
            raise self._script[call].popleft()

    def create_batch(self, body: bytes, idempotency_key: str) -> str:
        if not self._creates_open.is_set():
            with self._lock:
                self.creates_held += 1
            if not self._creates_open.wait(10.0):
                raise AssertionError("a POST was held for 10 s: release_creates() was never called")
        with self._lock:
            self.posts.append(idempotency_key)
            self._scripted("create_batch")
            if idempotency_key in self._by_key:
                return self._answer(self._by_key[idempotency_key])
            requests = json.loads(body)["requests"]
            users = {str(r["uid"]): r for r in requests}
            for uid in users.keys() & self._refused.keys():
                raise RejectedRequest(400, *self._refused[uid])
            for other in self._jobs.values():
                shared = set(users) & set(other.users)
                if other.running and shared:
                    self.violations.append(
                        f"a new job shares {sorted(shared)} with running job {other.id}"
                    )
            for uid in users.keys() & self.deleting.keys():
                self.violations.append(f"a job carries {uid} while its deletion runs")
            job = FakeJob(f"job-{next(self._ids)}", idempotency_key, users)
            self._jobs[job.id] = job
            self.users |= users.keys()
            self.log += [("upsert", uid) for uid in users]
            self._by_key[idempotency_key] = job.id
            return self._answer(job.id)

    def _answer(self, job_id: str) -> str:
        if self._lose_answers:
            raise Unreachable("create batch: connection reset after the request was sent")
        return job_id

    def job_status(self, job_id: str) -> JobStatus:
        with self._lock:
            self._scripted("job_status")
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFound("job status: HTTP 404")
            job.polls += 1
            if job.running and self.complete_on_poll and job.polls >= self.complete_on_poll:
                job.status = "COMPLETED"
            return JobStatus(
                job.id,
                JobState(job.status),
                imports=len(job.users) - len(job.errors),
                errors=len(job.errors),
            )

    def job_errors(
        self, job_id: str, page_token: str | None = None
    ) -> tuple[list[UserError], str | None]:
        with self._lock:
            self._scripted("job_errors")
            errors = self._jobs[job_id].errors
            start = int(page_token or 0)
            end = start + self._page_size
            return errors[start:end], (str(end) if end < len(errors) else None)

    # -- worker.fullstory.deleter.DeleteApi ------------------------------------------------

    def delete_user(self, uid: str) -> bool:
        with self._lock:
            self._scripted("delete_user")
            self.deletes.append(uid)
            for job in self._jobs.values():
                if job.running and uid in job.users:
                    self.violations.append(f"{uid} deleted while job {job.id} carrying it runs")
            if uid not in self.users:
                return False
            self.log.append(("delete", uid))
            self.deleting[uid] = 0
            return True

    def user_presence(self, uid: str) -> UserPresence:
        with self._lock:
            self._scripted("user_presence")
            if uid in self.deleting:
                self.deleting[uid] += 1
                if self.deletion_polls is None or self.deleting[uid] < self.deletion_polls:
                    return UserPresence.BEING_DELETED
                del self.deleting[uid]
                self.users.discard(uid)
            return UserPresence.PRESENT if uid in self.users else UserPresence.ABSENT
