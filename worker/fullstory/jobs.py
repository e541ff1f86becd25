"""Await job: follow a FullStory job to its end, and read a FAILED job's per-user errors.

Runs on job threads, through their ``Calls``: every failure is retried, for as long as it
takes (a 4xx on a job this worker created is FullStory's problem, not the data's), until the
thread is cancelled or abandoned. Only a hand-over fence stops at ``NotFound``: a job
FullStory no longer knows has nothing left to wait for.

A job still unfinished ``JOB_MAX_WAIT_S`` after the worker started waiting for it is
*overdue* (``JobWatch``): it is still followed, since its records may only be acknowledged by
its end (taken as failed, they would be dead-lettered; sent again, the old job could still
land its older values last), but it shows: logged ``job_overdue`` once, counted in
``fsus_jobs_overdue`` and ``/readyz`` not ready while any job is.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterator
from functools import partial
from typing import Protocol

from structlog.typing import FilteringBoundLogger

from worker.errors import BadAnswer, NotFound, RetriableError
from worker.fullstory.calls import Calls
from worker.fullstory.client import JobStatus, UserError
from worker.runtime.clock import Clock, SystemClock

# Reads of a FAILED job's error listing before a listing shorter than its count is believed.
_ERROR_READS = 5


class JobApi(Protocol):
    def job_status(self, job_id: str) -> JobStatus: ...
    def job_errors(
        self, job_id: str, page_token: str | None = None
    ) -> tuple[list[UserError], str | None]: ...


class JobWatch:
    """The jobs being waited for, and since when; thread-safe. Job threads register their
    waits; the probes and ``/metrics`` ask which are overdue."""

    def __init__(self, max_wait_s: float = 3600.0, clock: Clock | None = None) -> None:
        self.max_wait_s = max_wait_s
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._waits: dict[object, tuple[str, float]] = {}  # one per wait: a job may have two

    @contextlib.contextmanager
    def waiting(self, job_id: str) -> Iterator[None]:
        key = object()
        with self._lock:
            self._waits[key] = (job_id, self._clock.monotonic())
        try:
            yield
        finally:
            with self._lock:
                del self._waits[key]

    def overdue(self) -> list[str]:
        """The jobs waited for longer than ``max_wait_s``, longest first."""
        now = self._clock.monotonic()
        with self._lock:
            waits = sorted(self._waits.values(), key=lambda wait: wait[1])
        return [job_id for job_id, since in waits if now - since > self.max_wait_s]

    def count_overdue(self) -> int:
        return len(self.overdue())


class Jobs:
    def __init__(
        self, api: JobApi, *, poll_min_s: float, poll_max_s: float, watch: JobWatch
    ) -> None:
        self._api = api
        self._poll_min = poll_min_s
        self._poll_max = poll_max_s
        self._watch = watch

    def follow(self, job_id: str, calls: Calls, bound: FilteringBoundLogger) -> JobStatus:
        """The job's status once it ended (COMPLETED or FAILED), never before.

        Polled at once, then ``poll_min_s`` after a PROCESSING answer and half as long again
        after each next one, up to ``poll_max_s``.
        """
        return self._poll(job_id, calls, bound, ends_on=())

    def await_ended(self, job_ids: list[str], calls: Calls, bound: FilteringBoundLogger) -> None:
        """Return once each job ended or FullStory no longer knows it (a partition fence)."""
        for job_id in job_ids:
            try:
                self._poll(job_id, calls, bound, ends_on=(NotFound,))
            except NotFound:  # expired, or never created: nothing left to wait for
                bound.info("fence_job_gone", job_id=job_id)

    def _poll(
        self,
        job_id: str,
        calls: Calls,
        bound: FilteringBoundLogger,
        ends_on: tuple[type[RetriableError], ...],
    ) -> JobStatus:
        interval = self._poll_min
        told = False
        with self._watch.waiting(job_id):
            while True:
                status = calls.retrying(
                    partial(self._api.job_status, job_id), "job_status", bound, ends_on
                )
                if status.done:
                    if told:
                        bound.warning("job_overdue_ended", job_id=job_id)
                    return status
                if not told and job_id in self._watch.overdue():
                    told = True
                    bound.error("job_overdue", job_id=job_id, limit_s=self._watch.max_wait_s)
                calls.sleep(interval)
                interval = min(self._poll_max, interval * 1.5)

    def errors(
        self,
        job_id: str,
        expected: int,
        uids: Collection[str],
        calls: Calls,
        bound: FilteringBoundLogger,
    ) -> list[UserError]:
        """Every per-user error of a FAILED job of ``uids`` with ``expected`` errors, across
        all pages.

        Users not listed count as imported, so a listing shorter than ``expected`` (an answer
        not yet complete) is read again, up to ``_ERROR_READS`` times, before it is believed.
        A page naming a uid the job did not carry cannot be mapped to records, and a listing
        that repeats a page token or lists more errors than the job had users cannot be its
        errors: each is a bad answer, read again for as long as it takes (nothing of the job
        is acknowledged meanwhile).
        """
        backoff = calls.backoff()
        for attempt in range(1, _ERROR_READS + 1):
            errors = self._error_pages(job_id, uids, calls, bound)
            if len(errors) >= expected or attempt == _ERROR_READS:
                break
            bound.warning("job_errors_incomplete", listed=len(errors), expected=expected)
            calls.sleep(backoff.next_delay())
        if len(errors) < expected:
            bound.error("job_errors_missing", listed=len(errors), expected=expected)
        return errors

    def _error_pages(
        self, job_id: str, uids: Collection[str], calls: Calls, bound: FilteringBoundLogger
    ) -> list[UserError]:
        """The whole listing, read again from its first page while it is a bad answer as a
        whole (``_listing``), under the usual backoff, for as long as it takes."""
        backoff = calls.backoff()
        while True:
            try:
                return self._listing(job_id, uids, calls, bound)
            except BadAnswer as exc:
                calls.back_off(backoff, exc, "job_errors", bound)

    def _listing(
        self, job_id: str, uids: Collection[str], calls: Calls, bound: FilteringBoundLogger
    ) -> list[UserError]:
        """Every page of one reading of the listing; ``BadAnswer`` when it cannot be the
        errors of these users: a page token seen before in it (a loop), more errors than the
        job had users, or more pages than could carry them (each page but the last lists at
        least one). So a listing is never followed for ever nor kept growing: at most
        ``len(uids) + 1`` pages, ``len(uids)`` errors plus one page's."""
        errors: list[UserError] = []
        token: str | None = None
        seen: set[str] = set()
        pages = 0
        while True:
            page, token = calls.retrying(
                partial(self._page, job_id, token, uids), "job_errors", bound
            )
            errors.extend(page)
            pages += 1
            if len(errors) > len(uids):
                raise BadAnswer(f"job errors: more errors than the job's {len(uids)} users", 200)
            if not token:
                bound.info("job_errors_read", errors=len(errors), pages=pages)
                return errors
            if token in seen or pages > len(uids):
                raise BadAnswer(f"job errors: the listing does not end ({pages} pages)", 200)
            seen.add(token)

    def _page(
        self, job_id: str, token: str | None, uids: Collection[str]
    ) -> tuple[list[UserError], str | None]:
        page, next_token = self._api.job_errors(job_id, token)
        foreign = sum(1 for error in page if error.uid not in uids)
        if foreign:
            raise BadAnswer(f"job errors: {foreign} name a uid the job did not carry", 200)
        return page, next_token
