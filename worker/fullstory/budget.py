"""This replica's share of the org's FullStory budget, and its adaptive limit within it.

FullStory's limits are per org, shared by every replica and every other tool of the org: at
200 in-progress batch jobs or 500,000 in-flight operations (one per user in a job) the API
answers 429 to everyone. ``FULLSTORY_ORG_MAX_JOBS`` and ``FULLSTORY_ORG_MAX_OPERATIONS`` are
what the whole group may have in flight, laid over the group's partitions in order (each
carries its ``slots``); each replica takes the part its partitions carry (``share``,
re-computed on every rebalance by the loop), so the shares add up to the budget exactly as
replicas come and go, and a replica with partitions always has at least one job.

Within its share the replica adapts its job limit as Vector's adaptive request concurrency
does: a 429 on creating a job (the org is busy: other tools, or a share another replica has
not yet given up) halves it, at most once per ``decrease_every_s``; each job FullStory accepts
grows it by ``1 / limit`` (one job per round of ``limit`` healthy answers), up to the share. A
new share keeps the limit's place in it. As in TCP's recovery, answers to creates sent before the
last decrease do not grow it: they tell nothing of the org since, and a burst of jobs already in
flight would otherwise undo the halving at once.

Thread-safe: the loop sets the share and reads the limits; job threads report answers.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from worker.runtime.clock import Clock, SystemClock


@dataclass(frozen=True, slots=True)
class Share:
    jobs: int  # import jobs this replica may have in flight
    operations: int  # users in those jobs


def slots(budget: int, index: int, total: int) -> int:
    """The part of ``budget`` that partition ``index`` of ``total`` carries: the budget laid
    over the group's partitions in order, so the parts add up to it exactly. Pure."""
    return (index + 1) * budget // total - index * budget // total


def share_of(org_jobs: int, org_operations: int, owned: Iterable[int], total: int) -> Share:
    """The part of the org's budget the partitions at positions ``owned`` (among the
    ``total`` partitions of the source topics, in order) carry; at least one job and one
    operation when any is owned. Replicas owning disjoint partitions get parts that add up
    to the budget (above it only by that one job each, when there are more replicas than
    jobs). Pure."""
    positions = [i for i in set(owned) if 0 <= i < total]
    if not positions:
        return Share(0, 0)
    return Share(
        max(1, sum(slots(org_jobs, i, total) for i in positions)),
        max(1, sum(slots(org_operations, i, total) for i in positions)),
    )


class OrgBudget:
    def __init__(
        self,
        org_jobs: int,
        org_operations: int,
        *,
        max_jobs: int,
        decrease_every_s: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        """``max_jobs``: the replica's own ceiling (``MAX_JOBS_IN_FLIGHT``, its job threads)."""
        self._org_jobs = org_jobs
        self._org_operations = org_operations
        self._max_jobs = max_jobs
        self._decrease_every_s = decrease_every_s
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        # Until the first assignment: the replica's ceiling within the whole budget.
        self._share = Share(min(max_jobs, org_jobs), org_operations)
        self._limit = float(self._share.jobs)
        self._decreased_at = -math.inf
        self._epoch = 0  # decreases so far: a create's ticket

    def share(self, owned: Iterable[int], total: int) -> Share:
        """Owns the partitions at positions ``owned`` of the ``total`` partitions of the
        source topics (``share_of``): the new share.
        The limit keeps its place within the share (a replica running at half its share
        after 429s runs at half the new one), and is at least one job."""
        found = share_of(self._org_jobs, self._org_operations, owned, total)
        with self._lock:
            old = self._share.jobs
            self._share = Share(min(found.jobs, self._max_jobs), found.operations)
            fill = self._limit / old if old else 1.0
            self._limit = max(1.0, fill * self._share.jobs) if self._share.jobs else 0.0
            return self._share

    @property
    def current(self) -> Share:
        with self._lock:
            return self._share

    def jobs_limit(self) -> int:
        """Jobs the replica may have in flight now: at least 1 while it has a share."""
        with self._lock:
            if self._share.jobs == 0:
                return 0
            return max(1, math.floor(self._limit))

    def operations_room(self, in_flight: int, jobs_in_flight: int) -> int:
        """Users the next batch may carry with ``in_flight`` users in this replica's jobs; a
        replica without jobs may always send one batch (of at least one user)."""
        with self._lock:
            room = self._share.operations - in_flight
        return max(room, 1) if jobs_in_flight == 0 else max(room, 0)

    def rate_limited(self) -> None:
        """A 429 on creating a job: halve the limit (once per ``decrease_every_s``)."""
        with self._lock:
            now = self._clock.monotonic()
            if now - self._decreased_at < self._decrease_every_s:
                return
            self._decreased_at = now
            self._epoch += 1
            self._limit = max(1.0, self._limit / 2)

    def sending(self) -> int:
        """A create is about to be sent: its ticket, to hand back to ``accepted``."""
        with self._lock:
            return self._epoch

    def accepted(self, ticket: int) -> None:
        """FullStory accepted a job created with ``ticket`` (``sending``): grow the limit by
        one job per round of answers, unless it was sent before the last decrease."""
        with self._lock:
            if self._share.jobs and ticket == self._epoch:
                self._limit = min(float(self._share.jobs), self._limit + 1 / max(self._limit, 1))
