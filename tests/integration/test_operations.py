"""What operators do with the worker: scale it out, replay, probe it, use a registry."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

import fastavro
import httpx
import pytest

from tests.fakes.avro import encode, event
from tests.integration.oracle import fold_events, random_events
from tests.integration.registry import Registry
from tests.integration.test_end_to_end import _assert_sandbox_holds, _drained, _produce_events
from tests.integration.worker_process import ROOT, run_command, wait_until

pytestmark = pytest.mark.integration


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamps(broker, topic, count, late=False):
    """The broker-stored timestamps (ms) of the first ``count`` records of ``topic``; with
    ``late``, only of those whose key ends in ``-late``."""
    messages = broker.read_all(topic, expected=count)
    assert len(messages) == count, f"read {len(messages)} of {count} records"
    return [m.timestamp()[1] for m in messages if not late or m.key().endswith(b"-late")]


def _replay(broker, topic, group, *args):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": group,
    }
    return run_command(["replay", *args], env)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_two_replicas_share_the_partitions_and_lose_nothing(
    broker, sandbox, stream, start_worker, protocol
):
    """Two replicas in one group split the partitions; together they import every user; and
    each leaves on SIGTERM with exit 0. Under both group protocols."""
    topic, dlq, group = stream(4)
    env = {
        **broker.quick_handover(group, protocol),
        "BATCH_MAX_USERS": "100",
        "MAX_JOBS_IN_FLIGHT": "2",
    }
    first = start_worker(topic, dlq, group, **env)
    second = start_worker(topic, dlq, group, **env)

    def owned(worker) -> set:
        owned: set = set()
        for e in worker.events():
            if e.get("event") == "partitions_assigned":
                owned |= {tuple(p) for p in e["partitions"]}
            elif e.get("event") in ("partitions_revoked", "partitions_lost"):
                owned -= {tuple(p) for p in e["partitions"]}
        return owned

    wait_until(lambda: owned(first) and owned(second), 60, "both replicas to own partitions")
    assert not owned(first) & owned(second)
    events = random_events(4000, uids=500, seed=5)
    _produce_events(broker, topic, events)
    wait_until(_drained(broker, group, topic), 180, "both replicas to drain the topic")
    _assert_sandbox_holds(sandbox, events)
    for worker in (first, second):
        assert any(e.get("event") == "job_completed" for e in worker.events())
    assert first.terminate() == 0 and second.terminate() == 0


def test_replay_from_a_point_in_time_and_from_the_start(broker, sandbox, stream, start_worker):
    """`replay --to-datetime` re-imports only later events; `--to-earliest` everything."""
    topic, dlq, group = stream(2)
    before = random_events(300, uids=60, seed=6)
    _produce_events(broker, topic, before)
    # The cut goes between the records' own timestamps (what --to-datetime is matched
    # against), not between two readings of the test's clock around fixed sleeps.
    last_before = max(_timestamps(broker, topic, len(before)))
    wait_until(lambda: time.time() * 1000 > last_before + 1, 5, "the clock to move on", step=0.01)
    after = [dict(e, uid=e["uid"] + "-late") for e in random_events(200, uids=40, seed=7)]
    _produce_events(broker, topic, after)
    first_after = min(_timestamps(broker, topic, len(before) + len(after), late=True))
    assert first_after > last_before, "the producer's clock went back; no cut separates them"
    cut_ms = last_before + 1

    worker = start_worker(topic, dlq, group)
    wait_until(_drained(broker, group, topic), 90, "the first pass")
    refused = _replay(broker, topic, group, "--to-earliest", "--execute")
    assert refused.returncode == 1 and "active member" in refused.stderr
    assert worker.terminate() == 0

    sandbox.reset()
    # Half a millisecond past cut_ms, so the worker's float conversion cannot round below it.
    moment = (EPOCH + timedelta(microseconds=cut_ms * 1000 + 500)).isoformat()
    done = _replay(broker, topic, group, "--to-datetime", moment, "--execute")
    assert done.returncode == 0, done.stderr
    worker = start_worker(topic, dlq, group)
    wait_until(_drained(broker, group, topic), 90, "the replay from the cut")
    _assert_sandbox_holds(sandbox, after)
    assert worker.terminate() == 0

    sandbox.reset()
    assert _replay(broker, topic, group, "--to-earliest", "--execute").returncode == 0
    worker = start_worker(topic, dlq, group)
    wait_until(
        lambda: set(sandbox.users()) == set(fold_events(before + after)), 90, "the full replay"
    )
    wait_until(_drained(broker, group, topic), 90, "the full replay to commit")
    _assert_sandbox_holds(sandbox, before + after)
    assert worker.terminate() == 0


def test_health_readiness_and_metrics_endpoints(broker, sandbox, stream, start_worker):
    """/healthz answers while the loop turns, /readyz turns ready once the group is joined,
    and /metrics counts what was consumed, imported and dead-lettered."""
    topic, dlq, group = stream(1)
    worker = start_worker(topic, dlq, group, health=True)
    base = f"http://127.0.0.1:{worker.health_port}"

    def answers(path: str, status: int) -> bool:
        try:
            return httpx.get(base + path, timeout=2).status_code == status
        except httpx.HTTPError:
            return False

    wait_until(lambda: answers("/healthz", 200), 30, "/healthz to answer 200")
    wait_until(lambda: answers("/readyz", 200), 60, "/readyz to turn ready")
    events = random_events(50, uids=10, seed=9)
    broker.produce(topic, [(e["uid"].encode(), encode(e)) for e in events] + [(b"x", b"junk")])
    wait_until(_drained(broker, group, topic), 60, "the events to be committed")
    text = httpx.get(base + "/metrics", timeout=2).text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples["fsus_records_consumed_total"] == 51
    assert samples['fsus_records_acknowledged_total{outcome="imported"}'] == 50
    assert samples['fsus_dead_letters_total{code="undecodable"}'] == 1
    assert samples['fsus_import_jobs_total{status="COMPLETED"}'] >= 1
    assert samples['fsus_offset_commits_total{result="ok"}'] >= 1
    assert worker.terminate() == 0


EVOLVED_SCHEMA = {
    "type": "record",
    "name": "UserChange",
    "namespace": "usersync.v1",
    "fields": [
        {
            "name": "properties",
            "type": {"type": "map", "values": ["null", "boolean", "long", "double", "string"]},
            "default": {},
        },
        {"name": "uid", "type": "string"},
        {"name": "region", "type": "string", "default": "eu"},
        {"name": "changed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "email", "type": ["null", "string"], "default": None},
        {"name": "display_name", "type": ["null", "string"], "default": None},
    ],
}


def test_registry_wire_format_with_an_evolved_writer_schema(broker, sandbox, stream, start_worker):
    """Records written with v1 and a later v2 schema (reordered, one field added) both import;
    an unknown schema id goes to the DLQ."""
    topic, dlq, group = stream(1)
    with Registry() as registry:
        registry.register(1, json.loads((ROOT / "schemas" / "user_change.avsc").read_text()))
        registry.register(2, EVOLVED_SCHEMA)
        v2 = fastavro.parse_schema(EVOLVED_SCHEMA)
        events = [
            event("reg-1", display_name="One", properties={"n": 1}),
            {**event("reg-2", email="two@x.io", properties={"n": 2}), "region": "us"},
            event("reg-1", properties={"n": 3}),
        ]
        broker.produce(
            topic,
            [
                (b"reg-1", encode(events[0], schema_id=1)),
                (b"reg-2", encode(events[1], v2, schema_id=2)),
                (b"ghost", encode(event("ghost"), schema_id=99)),
                (b"reg-1", encode(events[2], v2, schema_id=2)),
            ],
        )
        worker = start_worker(topic, dlq, group, SCHEMA_REGISTRY_URL=registry.url)
        wait_until(_drained(broker, group, topic), 60, "the registry-encoded records")
        assert worker.terminate() == 0
    _assert_sandbox_holds(sandbox, events)
    letters = broker.read_all(dlq, expected=1)
    assert [dict(m.headers())["dlq.error.code"] for m in letters] == [b"unknown_schema_id"]
