"""Static membership (``KAFKA_CFG_GROUP_INSTANCE_ID``) on the real broker: a replica killed and
back under its id gets its partitions at once; a static replica stopped with SIGTERM drains and
commits, but does not leave the group, so its partitions wait out the session timeout."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from tests.fakes.avro import encode
from tests.integration.faults.checker import events_named
from tests.integration.oracle import random_events
from tests.integration.test_end_to_end import _assert_sandbox_holds, _drained
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration


def _produce(broker, topic, events) -> None:
    broker.produce(topic, ((e["uid"].encode(), encode(e)) for e in events))


MOVES = ("partitions_assigned", "partitions_revoked", "partitions_lost")


def _moves(worker) -> list[tuple[float, str, set[int]]]:
    """(wall time, event, partitions) of each assign/revoke/lost line the worker logged."""
    return [
        (
            datetime.fromisoformat(e["timestamp"]).timestamp(),
            e["event"],
            {int(partition) for _topic, partition in e["partitions"]},
        )
        for e in events_named(worker, *MOVES)
    ]


def _owned(worker) -> set[int]:
    owned: set[int] = set()
    for _at, event, moved in _moves(worker):
        owned = owned | moved if event == "partitions_assigned" else owned - moved
    return owned


def _first_got(worker, partitions: set[int], since: float) -> float | None:
    """When ``worker`` logged an assignment holding some of ``partitions`` after ``since``."""
    for at, event, moved in _moves(worker):
        if at >= since and event == "partitions_assigned" and moved & partitions:
            return at
    return None


def _members(broker, group) -> dict[str | None, int]:
    """The group's members on the broker: group.instance.id (None if dynamic) -> partitions."""
    description = broker.admin().describe_consumer_groups([group])[group].result(timeout=30)
    return {m.group_instance_id: len(m.assignment.topic_partitions) for m in description.members}


def _config_loaded(worker) -> dict:
    [loaded] = events_named(worker, "config_loaded")
    return loaded


def test_a_killed_static_member_back_under_its_id_gets_its_partitions_at_once(
    broker, sandbox, stream, start_worker, capsys
):
    """SIGKILL one of two static replicas and start it again under the same
    KAFKA_CFG_GROUP_INSTANCE_ID within a second: it holds the same partitions again well
    inside the 15 s session timeout (a dynamic member's partitions wait the timeout out), the
    other replica keeps its own and never takes the dead one's, and nothing is lost."""
    topic, dlq, group = stream(4)
    events = random_events(4_000, uids=500, seed=171)
    _produce(broker, topic, events[:2_000])
    sandbox.set_faults(job_delay_ms=200)
    # The worker's default session timeout (15 s) and heartbeat (3 s): what the chart runs.
    env = {"BATCH_MAX_USERS": "100", "MAX_JOBS_IN_FLIGHT": "2"}
    first = start_worker(topic, dlq, group, KAFKA_CFG_GROUP_INSTANCE_ID="replica-0", **env)
    second = start_worker(topic, dlq, group, KAFKA_CFG_GROUP_INSTANCE_ID="replica-1", **env)
    wait_until(lambda: _owned(first) and _owned(second), 60, "two replicas sharing the work")
    assert _config_loaded(first)["group_instance_id"] == "replica-0"
    wait_until(lambda: _members(broker, group).keys() == {"replica-0", "replica-1"}, 30,
               "both static members on the broker")  # fmt: skip
    wait_until(lambda: sum(broker.committed(group, topic).values()) > 0, 60, "first commits")
    held, kept = _owned(first), _owned(second)

    first.kill()
    killed_at = time.time()
    _produce(broker, topic, events[2_000:])
    time.sleep(0.5)  # a pod restarted by the kubelet: back within a second, under its name
    back = start_worker(topic, dlq, group, KAFKA_CFG_GROUP_INSTANCE_ID="replica-0", **env)
    wait_until(lambda: _owned(back) == held, 30, "the restarted replica to hold its partitions")
    returned_s = _first_got(back, held, killed_at) - killed_at
    with capsys.disabled():
        print(f"\nstatic member back: partitions {sorted(held)} returned {returned_s:.2f} s "
              "after the SIGKILL (session timeout 15 s)")  # fmt: skip

    wait_until(_drained(broker, group, topic), 120, "the group to commit to the log end")
    _assert_sandbox_holds(sandbox, events)
    assert returned_s < 5, returned_s
    # The other replica never lost its partitions nor took the dead one's.
    assert _owned(second) == kept
    assert _first_got(second, held, killed_at) is None
    assert back.terminate() == 0
    assert second.terminate() == 0


SESSION_TIMEOUT_S = 10


def test_a_static_member_stopped_with_sigterm_drains_but_keeps_its_partitions_until_the_session_times_out(  # noqa: E501
    broker, sandbox, stream, start_worker, capsys
):
    """SIGTERM of a static replica: it drains, commits and exits 0 as any member does, but
    librdkafka sends no LeaveGroup for a static member, so the broker keeps it in the group
    and the other replica gets its partitions only once the session timeout expires."""
    topic, dlq, group = stream(4)
    events = random_events(6_000, uids=3_000, seed=172)
    _produce(broker, topic, events)
    sandbox.set_faults(job_delay_ms=1_000)
    env = {
        "BATCH_MAX_USERS": "50",
        "MAX_JOBS_IN_FLIGHT": "2",
        "SHUTDOWN_TIMEOUT_S": "20",
        "KAFKA_CFG_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_S * 1000),
        "KAFKA_CFG_HEARTBEAT_INTERVAL_MS": "1000",
    }
    first = start_worker(topic, dlq, group, KAFKA_CFG_GROUP_INSTANCE_ID="replica-0", **env)
    second = start_worker(topic, dlq, group, KAFKA_CFG_GROUP_INSTANCE_ID="replica-1", **env)
    wait_until(lambda: _owned(first) and _owned(second), 60, "two replicas sharing the work")
    # SIGTERM right after the replica to stop created a job (jobs take 1 s): one is in flight.
    seen = {e["job_id"] for e in events_named(first, "batch_submitted")}
    wait_until(
        lambda: {e["job_id"] for e in events_named(first, "batch_submitted")} - seen,
        60,
        "a new job of the replica to stop",
        step=0.02,
    )
    held = _owned(first)
    committed_before = broker.committed(group, topic)

    stopping = time.time()
    assert first.terminate(timeout=60) == 0
    exited_at = time.time()
    committed_at_exit = broker.committed(group, topic)
    members_after_exit = _members(broker, group)
    wait_until(lambda: _owned(second) == set(range(4)), SESSION_TIMEOUT_S + 20,
               "the other replica to take the stopped one's partitions")  # fmt: skip
    moved_s = _first_got(second, held, exited_at) - exited_at
    with capsys.disabled():
        print(f"\nstatic member SIGTERM: exit after {exited_at - stopping:.2f} s; its partitions "
              f"{sorted(held)} moved {moved_s:.2f} s after the exit (session timeout "
              f"{SESSION_TIMEOUT_S} s); members after the exit: {members_after_exit}")  # fmt: skip

    # It drained as any member does: the jobs in flight ended and were committed.
    [started] = events_named(first, "shutdown_started")
    assert started["jobs_in_flight"] > 0
    assert not events_named(first, "shutdown_abandoned_jobs")
    assert events_named(first, "shutdown_complete")
    assert any(committed_at_exit.get(p, 0) > committed_before.get(p, 0) for p in held)
    # But it did not leave: the broker still counts it, holding its partitions...
    assert members_after_exit == {"replica-0": len(held), "replica-1": 4 - len(held)}
    # ...until its session timed out (measured from its last heartbeat, at most 1 s before).
    assert SESSION_TIMEOUT_S - 2 < moved_s < SESSION_TIMEOUT_S + 10, moved_s
    wait_until(_drained(broker, group, topic), 120, "the group to commit to the log end")
    _assert_sandbox_holds(sandbox, events)
    assert second.terminate() == 0


def test_under_the_consumer_protocol_a_killed_static_member_is_refused_its_id_and_exits(
    broker, sandbox, stream, start_worker
):
    """Kafka 4's consumer protocol (KIP-848) keeps a crashed static member's instance id
    taken until its session expires: a restart under that id within the session gets a fatal
    UNRELEASED_INSTANCE_ID. The worker exits 1 (the pod restarts and tries again) instead of
    running on without partitions; once the session expired, the id joins again."""
    topic, dlq, group = stream(2)
    _produce(broker, topic, random_events(200, uids=50, seed=173))
    env = broker.quick_handover(group, "consumer")  # a 6 s session
    first = start_worker(topic, dlq, group, KAFKA_CFG_GROUP_INSTANCE_ID="replica-0", **env)
    wait_until(lambda: _owned(first) == {0, 1}, 60, "the replica to hold both partitions")
    first.kill()
    killed_at = time.monotonic()
    refused = start_worker(topic, dlq, group, KAFKA_CFG_GROUP_INSTANCE_ID="replica-0", **env)
    assert refused.proc.wait(30) == 1
    assert "instance ID is still used" in refused.log_path.read_text()
    assert events_named(refused, "worker_crashed")
    assert time.monotonic() - killed_at < 6  # refused within the session, not after it
    wait_until(lambda: time.monotonic() - killed_at > 7, 10, "the session to expire")
    back = start_worker(topic, dlq, group, KAFKA_CFG_GROUP_INSTANCE_ID="replica-0", **env)
    wait_until(lambda: _owned(back) == {0, 1}, 60, "the replica back under its id")
    wait_until(_drained(broker, group, topic), 60, "the group to commit to the log end")
    assert back.terminate() == 0
