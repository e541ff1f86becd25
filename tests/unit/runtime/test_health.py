from tests.fakes.clock import FakeClock
from worker.runtime.health import Health


def test_not_ready_until_joined_then_ready_without_partitions():
    """A replica beyond the partition count is ready (idle), but not before it joined."""
    health = Health(liveness_timeout_s=60, clock=FakeClock())
    assert health.ready()[0] is False
    health.joined()
    assert health.ready()[0] is True


def test_liveness_fails_when_the_loop_stops_turning():
    """A stuck poll loop makes /healthz fail so Kubernetes restarts the pod."""
    clock = FakeClock()
    health = Health(liveness_timeout_s=60, clock=clock)
    clock.advance(59)
    assert health.live()[0] is True
    clock.advance(2)
    assert health.live()[0] is False
    health.beat()
    assert health.live()[0] is True


def test_fullstory_outage_turns_not_ready_only_after_the_grace():
    """A short FullStory blip does not flap readiness; a lasting outage shows."""
    clock = FakeClock()
    health = Health(liveness_timeout_s=60, api_grace_s=30, clock=clock)
    health.joined()
    health.api_failed()
    clock.advance(29)
    assert health.ready()[0] is True
    clock.advance(2)
    ready, detail = health.ready()
    assert ready is False and detail["fullstory_answering"] is False
    health.api_answered()
    assert health.ready()[0] is True


def test_kafka_or_registry_outage_is_not_ready():
    """While brokers are down or records cannot be decoded, the replica is not ready."""
    health = Health(liveness_timeout_s=60, clock=FakeClock())
    health.joined()
    health.kafka(False)
    assert health.ready()[1]["kafka_reachable"] is False and not health.ready()[0]
    health.kafka(True)
    health.decoding(False)
    assert health.ready()[0] is False


def test_an_overdue_job_turns_not_ready_and_is_named():
    """A job unfinished past JOB_MAX_WAIT_S holds its partition's commit for as long as it
    runs: /readyz says so (and names it) until it ends, without failing liveness."""
    overdue: list[str] = []
    health = Health(liveness_timeout_s=60, clock=FakeClock(), overdue_jobs=lambda: overdue)
    health.joined()
    assert health.ready() == (True, {**health.ready()[1], "jobs_within_limit": True})
    overdue.append("j1")
    ready, detail = health.ready()
    assert ready is False and detail["jobs_within_limit"] is False
    assert detail["overdue_jobs"] == ["j1"] and health.live()[0] is True
    overdue.clear()
    assert health.ready()[0] is True


def test_a_table_schema_the_mapping_cannot_read_turns_not_ready_and_says_why():
    """Its records are being dead-lettered: /readyz names the schema and the column (the
    latest five), until a restart with a mapping that fits."""
    health = Health(liveness_timeout_s=60)
    health.joined()
    for schema_id in range(7):
        health.mapping_problem(f"schema id {schema_id}: users has no column 'plan_name'")
    ok, detail = health.ready()
    assert not ok and detail["mapping_fits"] is False
    assert detail["mapping_problems"] == [
        f"schema id {i}: users has no column 'plan_name'" for i in range(2, 7)
    ]
