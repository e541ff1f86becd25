"""Delete users (``ON_DELETE=delete``): ``DELETE /v2/users?uid=`` for each, then wait until
each one is gone.

``Deleter.run`` runs on a job thread, through the same ``Calls`` policy as imports (429 waits
Retry-After and closes the gate for every thread, 5xx and network failures back off, never
given up, until cancelled or abandoned). 200 (FullStory took it) and 404 (no such user) both
mean deleted. A request FullStory refuses as invalid (400) cannot succeed by repetition: the
user fails with FullStory's reason and its records are dead-lettered, as an import's are.

FullStory deletes in the background: a look-up shows ``is_being_deleted`` until the user is
gone, then 404. An upsert of the uid in between may be swallowed by the deletion, so ``run``
returns only once every deleted user is absent (``GET /v2/users?uid=`` 404), polled with a
backoff from ``poll_min_s`` to ``poll_max_s``: until then the loop keeps the uid blocked and
the delete unacknowledged, so neither a later change of the user nor, after a crash, the
next owner can overtake the deletion. A user seen present again (not being deleted) is sent
its DELETE again.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import structlog
from structlog.typing import FilteringBoundLogger

from worker.errors import AuthFailed, ConfigError, RejectedRequest, RetriableError
from worker.fullstory.calls import Calls, Policy
from worker.fullstory.client import UserError, UserPresence
from worker.runtime.retry import Backoff

log: FilteringBoundLogger = structlog.get_logger(__name__)


class DeleteApi(Protocol):
    def delete_user(self, uid: str) -> bool: ...
    def user_presence(self, uid: str) -> UserPresence: ...


@dataclass(slots=True)
class DeleteOutcome:
    """What FullStory made of the deletes: users not in ``failures`` are gone."""

    deleted: int = 0  # 200: FullStory deleted them
    absent: int = 0  # 404: FullStory had no such user
    failures: dict[str, UserError] = field(default_factory=dict)


class Deleter:
    def __init__(
        self, api: DeleteApi, policy: Policy, poll_min_s: float = 0.25, poll_max_s: float = 5.0
    ) -> None:
        """``policy``: the importer's (``Importer.policy``): one rate gate for the org."""
        self._api = api
        self._policy = policy
        self._poll_min_s = poll_min_s
        self._poll_max_s = poll_max_s

    def run(
        self,
        uids: Sequence[str],
        cancel: threading.Event | None = None,
        context: Mapping[str, object] | None = None,
    ) -> DeleteOutcome:
        """Delete ``uids`` and wait until each is gone. Setting ``cancel`` or the
        policy's ``abandon`` ends any wait with ``Abandoned``."""
        calls = Calls(self._policy, cancel)
        bound = log.bind(**(context or {}))
        outcome = DeleteOutcome()
        waiting: list[str] = []
        for uid in uids:
            if self._delete(uid, calls, bound, outcome):
                waiting.append(uid)
        self._await_gone(waiting, calls, bound)
        metrics = self._policy.metrics
        metrics.deletes.labels("deleted").inc(outcome.deleted)
        metrics.deletes.labels("absent").inc(outcome.absent)
        metrics.deletes.labels("rejected").inc(len(outcome.failures))
        bound.info(
            "users_deleted",
            deleted=outcome.deleted,
            absent=outcome.absent,
            rejected=len(outcome.failures),
        )
        return outcome

    def _delete(
        self, uid: str, calls: Calls, bound: FilteringBoundLogger, outcome: DeleteOutcome
    ) -> bool:
        """One user's DELETE, tried until FullStory answers it; True when it has to be
        waited for (200)."""
        backoff = calls.backoff()
        while True:
            try:
                existed = calls.once(partial(self._api.delete_user, uid), "delete_user")
            except RejectedRequest as exc:
                bound.warning("user_delete_rejected", status=exc.status, code=exc.code)
                outcome.failures[uid] = UserError(uid, exc.code, exc.message)
                return False
            except RetriableError as exc:
                calls.back_off(backoff, exc, "delete_user", bound)
                continue
            if existed:
                outcome.deleted += 1
            else:
                outcome.absent += 1
            return existed

    def _await_gone(self, uids: list[str], calls: Calls, bound: FilteringBoundLogger) -> None:
        """Until a look-up of each of ``uids`` answers 404."""
        waiting = list(uids)
        poll = Backoff(base_s=self._poll_min_s, cap_s=self._poll_max_s)
        while waiting:
            calls.sleep(poll.next_delay())
            still: list[str] = []
            for uid in waiting:
                presence = calls.retrying(
                    partial(self._api.user_presence, uid), "user_presence", bound
                )
                if presence is UserPresence.ABSENT:
                    continue
                if presence is UserPresence.PRESENT:  # not (or no longer) being deleted
                    bound.warning("user_delete_repeated")
                    calls.retrying(partial(self._api.delete_user, uid), "delete_user", bound)
                still.append(uid)
            waiting = still


def check_may_delete(
    api: DeleteApi, stopped: Callable[[float], bool], backoff: Backoff | None = None
) -> bool:
    """At start-up with ``ON_DELETE=delete``: show that the key may delete, by looking up a
    uid that does not exist (an Admin or Architect key answers 404; a key without the role
    403), touching no user. A refused key raises ``ConfigError`` naming ``ON_DELETE`` (the
    worker exits 2 with one line, rather than dead-lettering every delete); any other failure
    is retried until FullStory answers. ``stopped(seconds)`` waits between tries and says
    whether the worker is stopping (then False is returned)."""
    backoff = backoff or Backoff(base_s=1.0, cap_s=30.0)
    probe = f"fullstory-user-sync-role-check-{uuid.uuid4().hex}"
    while True:
        try:
            api.user_presence(probe)
        except AuthFailed as exc:
            raise ConfigError(
                "ON_DELETE",
                f"=delete needs a FullStory API key with the Admin or Architect role; a user "
                f"look-up with this key answered {exc.status}",
            ) from None
        except (RetriableError, RejectedRequest) as exc:
            delay = backoff.next_delay(exc if isinstance(exc, RetriableError) else None)
            log.warning("delete_role_check_retry", error=str(exc), delay_s=round(delay, 3))
            if stopped(delay):
                return False
            continue
        log.info("delete_role_checked")
        return True
