"""Scenario 8: start-up while the broker or the schema registry is unreachable."""

from __future__ import annotations

import pytest

from tests.fakes.avro import encode
from tests.integration.faults.checker import events_named
from tests.integration.kafka_tools import Broker
from tests.integration.oracle import random_events
from tests.integration.registry import Registry
from tests.integration.test_end_to_end import _assert_sandbox_holds, _drained, _produce_events
from tests.integration.worker_process import ROOT, free_port, probe, wait_until

pytestmark = pytest.mark.integration

CONNECT_FAILURES = 20  # librdkafka backs off between attempts: this takes a few seconds


def _connect_failures(port: int) -> float:
    """The worker's failed attempts to reach a broker (librdkafka's transport errors), as
    counted on /metrics: the log says so once per outage, not once per attempt."""
    import httpx

    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0
    prefix = 'fsus_kafka_errors_total{client="consumer",code="transport"} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0


def test_start_with_the_broker_down_waits_then_consumes(private_broker, sandbox, start_worker):
    """With no broker the worker neither exits nor crash-loops: /healthz is live, /readyz is
    not ready; when the broker comes up it joins, turns ready and imports everything."""
    private_broker.start()
    kafka = Broker(private_broker.bootstrap)
    topic, dlq = kafka.create_topic(2), kafka.create_topic(1, prefix="dlq")
    events = random_events(1000, uids=200, seed=81)
    _produce_events(kafka, topic, events)
    private_broker.stop()

    port = free_port()
    worker = start_worker(
        topic,
        dlq,
        "late-broker",
        bootstrap=private_broker.bootstrap,
        HTTP_PORT=str(port),
        HTTP_HOST="127.0.0.1",
    )
    wait_until(lambda: probe(port, "/healthz") == 200, 30, "/healthz to answer")
    # It met the outage and kept trying: an exit or a crash would come at the first failures.
    wait_until(lambda: _connect_failures(port) >= CONNECT_FAILURES, 60, "connection attempts")
    assert len(events_named(worker, "kafka_unreachable")) == 1
    assert len(events_named(worker, "kafka_error")) == 1  # the first attempt, not each one
    assert worker.proc.poll() is None, "the worker must wait, not exit"
    assert probe(port, "/readyz") == 503
    assert probe(port, "/healthz") == 200

    private_broker.start()
    kafka = Broker(private_broker.bootstrap)
    wait_until(lambda: probe(port, "/readyz") == 200, 90, "/readyz once consuming")
    (back,) = events_named(worker, "kafka_reachable")
    assert back["errors"] >= CONNECT_FAILURES
    wait_until(_drained(kafka, "late-broker", topic), 90, "the backlog to drain")
    _assert_sandbox_holds(sandbox, events)
    assert worker.terminate() == 0


def test_start_with_the_registry_down_holds_records_until_it_answers(
    broker, sandbox, stream, start_worker
):
    """Records whose writer schema cannot be fetched wait (not dead-lettered, not committed)
    and /readyz says not ready; once the registry answers they are imported."""
    import json

    topic, dlq, group = stream(1)
    schema = json.loads((ROOT / "schemas" / "user_change.avsc").read_text())
    events = random_events(300, uids=50, seed=82)
    broker.produce(topic, [(e["uid"].encode(), encode(e, schema_id=1)) for e in events])
    registry_port, port = free_port(), free_port()
    worker = start_worker(
        topic,
        dlq,
        group,
        SCHEMA_REGISTRY_URL=f"http://127.0.0.1:{registry_port}",
        HTTP_PORT=str(port),
        HTTP_HOST="127.0.0.1",
    )
    # Several retries with backoff: a worker that gave up on the registry (dead-lettering
    # or skipping the record) would have done so by now.
    wait_until(
        lambda: len(events_named(worker, "decode_retry")) >= 3,
        30,
        "the worker to retry the unreachable registry",
    )
    assert probe(port, "/readyz") == 503
    assert probe(port, "/healthz") == 200
    assert not events_named(worker, "dead_lettered", "batch_submitted")
    assert all(offset <= 0 for offset in broker.committed(group, topic).values())
    assert sandbox.users() == {}
    with Registry(port=registry_port) as registry:
        registry.register(1, schema)
        wait_until(_drained(broker, group, topic), 60, "the held records to import")
        wait_until(lambda: probe(port, "/readyz") == 200, 30, "/readyz to recover")
    _assert_sandbox_holds(sandbox, events)
    # Drained: a dead letter would have been confirmed before the commit passed its record.
    assert not events_named(worker, "dead_lettered")
    assert broker.end_offsets(dlq) == {0: 0}
    assert worker.terminate() == 0
