"""SIGTERM while a FullStory call hangs: the deadline holds even mid-request."""

from __future__ import annotations

import time

import pytest

from tests.integration.oracle import random_events
from tests.integration.test_end_to_end import _produce_events
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration


def test_sigterm_exits_within_the_deadline_while_a_request_hangs(
    broker, sandbox, stream, start_worker
):
    """A POST that FullStory holds for 12 s (under the 30 s HTTP timeout) does not keep the
    process alive past SHUTDOWN_TIMEOUT_S: it exits 0 soon after the deadline, and nothing
    is committed for the records that request carried."""
    topic, dlq, group = stream(1)
    _produce_events(broker, topic, random_events(50, uids=10, seed=91))
    sandbox.set_faults(slow={"count": 1, "delay_ms": 12_000}, endpoint="batch_create")
    worker = start_worker(
        topic,
        dlq,
        group,
        SHUTDOWN_TIMEOUT_S="2",
        FULLSTORY_HTTP_TIMEOUT_S="30",
        BATCH_MAX_WAIT_MS="100",
    )
    wait_until(
        lambda: any(e.get("event") == "partitions_assigned" for e in worker.events()),
        60,
        "the worker to join",
    )
    time.sleep(2)  # past BATCH_MAX_WAIT_MS: the POST is out, and held for 12 s
    assert not any(e.get("event") == "batch_submitted" for e in worker.events())
    started = time.monotonic()
    assert worker.terminate(timeout=30) == 0
    assert time.monotonic() - started < 2 + 3  # the deadline, plus leaving the group
    assert all(offset <= 0 for offset in broker.committed(group, topic).values())
