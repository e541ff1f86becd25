"""Import a set of users: POST them (split in halves while refused), follow the jobs, and say
what FullStory made of each user.

``Importer.run`` runs on a job thread and returns an ``ImportOutcome``. It takes plain users
(``UserUpdate``s), not the loop's batch: what a batch stands for in Kafka is the loop's. It
never gives up on a transient failure (``calls``: 429 waits Retry-After, other failures back
off with jitter), until it is cancelled or ``abandon`` is set at the shutdown deadline, which
raises ``Abandoned``. A POST answered ``ServerError`` ``new_key_after_5xx`` times under one
idempotency key, or again after other POSTs succeeded (a saved answer replayed), moves to the
next key for the same body. Users FullStory refuses as a whole request (``RejectedRequest``)
are split in halves until the refused users stand alone; they fail with its reason.
Following a job to its end and reading its errors is ``jobs``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol

import orjson
import structlog
from structlog.typing import FilteringBoundLogger

from worker.errors import RateLimited, RejectedRequest, RetriableError, ServerError
from worker.events.merge import UserUpdate
from worker.fullstory.budget import OrgBudget
from worker.fullstory.calls import Calls, Policy
from worker.fullstory.client import JobState, UserError
from worker.fullstory.idempotency import batch_token, idempotency_key
from worker.fullstory.jobs import JobApi, Jobs, JobWatch
from worker.runtime.metrics import Metrics
from worker.runtime.retry import Backoff

JobCreated = Callable[[str], None]
log: FilteringBoundLogger = structlog.get_logger(__name__)


class FullStoryApi(JobApi, Protocol):
    def create_batch(self, body: bytes, idempotency_key: str) -> str: ...


@dataclass(slots=True)
class ImportOutcome:
    """What FullStory made of the users: those not in ``failures`` were imported."""

    job_ids: list[str] = field(default_factory=list)
    failures: dict[str, UserError] = field(default_factory=dict)


# Users encoded per orjson call: the request dicts of a whole batch never exist at once, and
# each call's output is large (orjson keeps about 4 KB of memory behind every small result).
_ENCODE_CHUNK = 500


def encode_body(users: Sequence[UserUpdate], declare_types: bool = True) -> bytes:
    """The exact bytes sent (the idempotency key is derived from them): the same as
    ``orjson.dumps({"requests": [...]})`` of the users' request objects.

    orjson: compact UTF-8, about six times faster than ``json`` and the same bytes as
    ``json.dumps(separators=(",", ":"), ensure_ascii=False)`` but for float exponents
    (``1.5e-7`` for ``1.5e-07``). ``declare_types``: False for ``PropertyTypes.SUFFIXED``.
    """
    dumps = orjson.dumps
    chunks = [
        dumps([u.to_request(declare_types) for u in users[i : i + _ENCODE_CHUNK]])[1:-1]
        for i in range(0, len(users), _ENCODE_CHUNK)
    ]
    return b'{"requests":[' + b",".join(chunks) + b"]}"


class Importer:
    def __init__(
        self,
        api: FullStoryApi,
        *,
        abandon: threading.Event,
        poll_max_interval_s: float = 2.0,
        poll_min_interval_s: float = 0.1,
        new_key_after_5xx: int = 3,
        backoff: Callable[[], Backoff] = Backoff,
        on_api_answer: Callable[[], None] = lambda: None,
        on_api_failure: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
        declare_types: bool = True,
        watch: JobWatch | None = None,
        budget: OrgBudget | None = None,
    ) -> None:
        """``declare_types``: send each property's type in ``schema`` (``PropertyTypes.V2``);
        False when the names carry type suffixes instead (``PropertyTypes.SUFFIXED``).
        ``watch``: where the jobs waited for are registered (overdue ones show on ``/readyz``
        and ``fsus_jobs_overdue``)."""
        self._api = api
        self._budget = budget  # told of each job accepted, and each 429 on creating one
        self._declare_types = declare_types
        self._new_key_after = new_key_after_5xx
        self._metrics = metrics or Metrics()
        self._policy = Policy(abandon, backoff, on_api_answer, on_api_failure, self._metrics)
        self.policy = self._policy  # shared with the ``Deleter``: one rate gate for the org
        watch = watch or JobWatch()
        self._metrics.jobs_overdue.set_function(watch.count_overdue)
        self._jobs = Jobs(
            api, poll_min_s=poll_min_interval_s, poll_max_s=poll_max_interval_s, watch=watch
        )

    def run(
        self,
        users: Sequence[UserUpdate],
        on_job_created: JobCreated = lambda _job: None,
        cancel: threading.Event | None = None,
        context: Mapping[str, object] | None = None,
        records: bytes | None = None,
    ) -> ImportOutcome:
        """Import ``users`` (one per uid); ``on_job_created(job_id)`` as soon as a job exists.
        ``context``: what the caller's log lines name (its batch id, partitions, records).
        ``records``: the digest of the records merged into ``users`` (``Batch.records_digest``),
        which with the body makes each POST's idempotency key; without it, a random token.

        Setting ``cancel`` (or the importer's ``abandon``) ends any wait with ``Abandoned``.
        """
        outcome = ImportOutcome()
        bound = log.bind(**(context or {}))
        calls = Calls(self._policy, cancel)
        batch = records if records is not None else batch_token()
        self._import(list(users), batch, outcome, calls, bound, on_job_created)
        return outcome

    def await_jobs(self, job_ids: list[str], cancel: threading.Event | None = None) -> None:
        """Wait until each job ended (or FullStory no longer knows it): a partition fence.

        Setting ``cancel`` (or the importer's ``abandon``) ends the wait with ``Abandoned``.
        """
        calls = Calls(self._policy, cancel)
        self._jobs.await_ended(job_ids, calls, log.bind(fence_jobs=job_ids))

    def _import(
        self,
        users: list[UserUpdate],
        batch: bytes,
        outcome: ImportOutcome,
        calls: Calls,
        bound: FilteringBoundLogger,
        on_job_created: JobCreated,
    ) -> None:
        body = encode_body(users, self._declare_types)
        try:
            job_id = self._create(body, batch, len(users), calls, bound)
        except RejectedRequest as exc:
            if len(users) == 1:
                uid = users[0].uid
                bound.warning("user_rejected", status=exc.status, code=exc.code)
                outcome.failures[uid] = UserError(uid, exc.code, exc.message)
                return
            bound.warning("batch_rejected_splitting", users=len(users), code=exc.code)
            middle = len(users) // 2
            self._import(users[:middle], batch, outcome, calls, bound, on_job_created)
            self._import(users[middle:], batch, outcome, calls, bound, on_job_created)
            return
        outcome.job_ids.append(job_id)
        on_job_created(job_id)
        job_log = bound.bind(job_id=job_id)
        started = time.monotonic()
        status = self._jobs.follow(job_id, calls, job_log)
        if status.state is JobState.FAILED:
            uids = {user.uid for user in users}
            for error in self._jobs.errors(job_id, status.errors, uids, calls, job_log):
                outcome.failures[error.uid] = replace(error, job_id=job_id)
        seconds = time.monotonic() - started
        self._metrics.jobs.labels(status.state.value).inc()
        self._metrics.job_duration.observe(seconds)
        self._metrics.batch_users.observe(len(users))
        job_log.info(
            "job_completed" if status.state is JobState.COMPLETED else "job_failed",
            users=len(users),
            imports=status.imports,
            errors=status.errors,
            seconds=round(seconds, 3),
        )

    def _create(
        self, body: bytes, batch: bytes, users: int, calls: Calls, bound: FilteringBoundLogger
    ) -> str:
        """The job id of one POST of ``body``, tried until FullStory accepts or refuses it.
        Every try carries this batch's key; only a replayed 5xx moves it to a new generation."""
        generation, consecutive_5xx = 0, 0
        first_5xx_at: int | None = None  # successes counted when this key first got a 5xx
        backoff = calls.backoff()
        while True:
            key = idempotency_key(body, batch, generation)
            ticket = self._budget.sending() if self._budget is not None else 0
            try:
                job_id = calls.once(partial(self._api.create_batch, body, key), "create_batch")
            except RetriableError as exc:
                if isinstance(exc, RateLimited) and self._budget is not None:
                    self._budget.rate_limited()
                if isinstance(exc, ServerError):
                    # The server may replay a saved 5xx under this key for 24 hours: after
                    # new_key_after_5xx of them, or at once when other POSTs succeeded since
                    # this key's first one (FullStory is back: this 5xx is the saved one).
                    consecutive_5xx += 1
                    replayed = (
                        first_5xx_at is not None and calls.successes("create_batch") > first_5xx_at
                    )
                    if first_5xx_at is None:
                        first_5xx_at = calls.successes("create_batch")
                    if replayed or consecutive_5xx >= self._new_key_after:
                        generation, consecutive_5xx, first_5xx_at = generation + 1, 0, None
                        bound.warning(
                            "idempotency_key_rotated", generation=generation, replayed=replayed
                        )
                        if replayed:
                            continue  # a new key's first try goes out at once
                calls.back_off(backoff, exc, "create_batch", bound)
                continue
            bound.info("batch_submitted", job_id=job_id, users=users, key=key[:17])
            if self._budget is not None:
                self._budget.accepted(ticket)
            return job_id
