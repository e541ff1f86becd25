"""SIGTERM while a FullStory call hangs: the deadline holds even mid-request."""

from __future__ import annotations

import time

import pytest

from tests.integration.faults.checker import events_named
from tests.integration.oracle import random_events
from tests.integration.test_end_to_end import _produce_events
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration

SHUTDOWN_TIMEOUT_S = 2
HOLD_MS = 12_000  # under the 30 s HTTP timeout: only the shutdown deadline can end the wait


def test_sigterm_exits_within_the_deadline_while_a_request_hangs(
    broker, sandbox, stream, start_worker
):
    """A POST that FullStory holds for 12 s (under the 30 s HTTP timeout) does not keep the
    process alive past SHUTDOWN_TIMEOUT_S: it exits 0 soon after the deadline, without
    waiting for the job thread still in that call, and nothing is committed for the records
    that request carried."""
    topic, dlq, group = stream(1)
    events = random_events(50, uids=10, seed=91)
    _produce_events(broker, topic, events)
    sandbox.set_faults(slow={"count": 1, "delay_ms": HOLD_MS}, endpoint="batch_create")
    worker = start_worker(
        topic,
        dlq,
        group,
        SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S),
        FULLSTORY_HTTP_TIMEOUT_S="30",
        BATCH_MAX_WAIT_MS="100",
    )
    # The POST reached FullStory and is held: the sandbox made its job and used the fault up
    # (it logs the request only once it answers), while the worker waits for the answer.
    wait_until(lambda: sandbox.jobs() and not sandbox.faults()["slow"], 60, "the POST to be held")
    held = sandbox.jobs()[0]
    assert events[0]["uid"] in held["uids"], "the held POST carries the first record"
    assert not events_named(worker, "batch_submitted"), "the worker already has an answer"

    started = time.monotonic()
    assert worker.terminate(timeout=30) == 0
    assert time.monotonic() - started < SHUTDOWN_TIMEOUT_S + 3  # plus leaving the group
    assert events_named(worker, "exit_without_waiting"), "no job thread was left in its call"
    answered = [r for r in sandbox.requests() if r["endpoint"] == "batch_create"]
    assert all(r["job_id"] != held["id"] for r in answered), "the POST was answered in time"
    # The first record was sent, in the held POST, and never acknowledged: nothing passes it.
    assert all(offset <= 0 for offset in broker.committed(group, topic).values())
