"""Scenario 3: the broker goes away mid-stream and comes back."""

from __future__ import annotations

import pytest

from tests.integration.kafka_tools import Broker
from tests.integration.oracle import random_events
from tests.integration.test_end_to_end import _assert_sandbox_holds, _drained, _produce_events
from tests.integration.worker_process import free_port, probe, wait_until

pytestmark = pytest.mark.integration


def test_worker_rides_out_a_broker_restart(private_broker, sandbox, start_worker):
    """The broker stops mid-stream: /readyz turns not ready, /healthz stays live, the worker
    keeps running, and once the broker is back it finishes the stream without a restart."""
    private_broker.start()
    kafka = Broker(private_broker.bootstrap)
    topic, dlq = kafka.create_topic(3), kafka.create_topic(1, prefix="dlq")
    group = "broker-restart"
    first, second = random_events(3000, uids=400, seed=31), random_events(2000, uids=400, seed=32)
    _produce_events(kafka, topic, first)
    port = free_port()
    worker = start_worker(
        topic,
        dlq,
        group,
        bootstrap=private_broker.bootstrap,
        HTTP_PORT=str(port),
        HTTP_HOST="127.0.0.1",
        BATCH_MAX_USERS="100",
    )
    wait_until(lambda: probe(port, "/readyz") == 200, 60, "the worker to be ready")
    wait_until(lambda: len(sandbox.jobs()) >= 2, 60, "the first imports")

    private_broker.stop()
    wait_until(lambda: probe(port, "/readyz") == 503, 30, "/readyz to report the outage")
    assert probe(port, "/healthz") == 200
    assert worker.proc.poll() is None

    private_broker.start()
    kafka = Broker(private_broker.bootstrap)
    _produce_events(kafka, topic, second)
    wait_until(_drained(kafka, group, topic), 180, "the stream to drain after the restart")
    wait_until(lambda: probe(port, "/readyz") == 200, 30, "/readyz to recover")
    _assert_sandbox_holds(sandbox, first + second)
    assert worker.proc.poll() is None, "recovered without a restart"
    assert worker.terminate() == 0
