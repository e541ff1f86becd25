"""Job completion: applies due jobs to the user store, in completion order.

`complete_due_jobs` is the step (callers hold the lock); `CompletionThread` runs it
whenever the earliest running job falls due or a submission wakes it. A job's valid users
are upserted at the moment it completes, so two jobs touching the same uid apply in the
order they finish, not the order they were created; freed slots start queued jobs at once.
"""

from __future__ import annotations

import threading

from fullstory_sandbox.jobs import Job
from fullstory_sandbox.messages import JsonObject
from fullstory_sandbox.state import SandboxState


def complete_due_jobs(state: SandboxState) -> list[Job]:
    """Finishes every running job due by now (and any started in freed slots that are due
    too); returns them in the order they were applied. Bounded by the number of jobs."""
    finished: list[Job] = []
    for _ in range(len(state.book) + 1):
        now_mono, now_wall = state.clock.monotonic(), state.clock.now()
        due = state.book.due(now_mono)
        if not due:
            break
        for job in due:
            imports = [_import_result(state, job, index) for index in range(len(job.valid))]
            state.book.finish(job, imports, now_mono, now_wall)
            finished.append(job)
        state.book.start_queued(now_mono, now_wall)
    return finished


def _import_result(state: SandboxState, job: Job, index: int) -> JsonObject:
    user = job.valid[index]
    stored = state.store.upsert(user)
    result: JsonObject = {"id": stored.id, "uid": user.uid, **user.fields}
    if user.properties:
        result["properties"] = user.properties
    return result


class CompletionThread:
    """A daemon thread completing jobs on time until `stop`."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._state.wakeup:
            self._stopping = True
            self._state.wakeup.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        state = self._state
        with state.wakeup:
            while not self._stopping:
                if complete_due_jobs(state):
                    state.wakeup.notify_all()  # wakes Sandbox.wait_idle
                next_due = state.book.next_due()
                timeout = None if next_due is None else max(0.0, next_due - state.clock.monotonic())
                state.wakeup.wait(timeout)
