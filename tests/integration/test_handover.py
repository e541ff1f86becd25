"""A partition changes hands while its previous owner's FullStory job is still running."""

from __future__ import annotations

import pytest

from tests.fakes.avro import event
from tests.integration.test_end_to_end import (
    _drained,
    _overlapping_jobs_with_a_shared_uid,
    _produce_events,
)
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_new_owner_waits_for_the_old_owners_running_job(
    broker, sandbox, stream, start_worker, protocol
):
    """After a SIGKILL, the replacement does not race the dead worker's still-running job:
    the user ends with its latest value, not the one the old job carried; under both group
    protocols (Kafka 4's consumer protocol assigns on the broker)."""
    topic, dlq, group = stream(1)
    # The old job must outlive the dead member's session, or the hand-over waits it out anyway.
    sandbox.set_faults(job_delay_ms=12_000)
    quick = {**broker.quick_handover(group, protocol), "BATCH_MAX_WAIT_MS": "50"}
    _produce_events(broker, topic, [event("handover", properties={"plan": "old"})])
    first = start_worker(topic, dlq, group, **quick)
    wait_until(lambda: len(sandbox.jobs()) == 1, 30, "the first worker's job")
    job_id = sandbox.jobs()[0]["id"]
    wait_until(
        lambda: job_id in broker.committed_with_metadata(group, topic)[0][1],
        10,
        "the running job to be named in the commit metadata",
    )
    first.kill()
    sandbox.set_faults(job_delay_ms=100)
    _produce_events(broker, topic, [event("handover", properties={"plan": "new"})])
    second = start_worker(topic, dlq, group, **quick)
    wait_until(_drained(broker, group, topic), 60, "the replacement to drain")
    wait_until(lambda: all(j.get("finished") for j in sandbox.jobs()), 30, "all jobs to end")
    assert sandbox.users()["handover"]["properties"] == {"plan": "new"}
    assert _overlapping_jobs_with_a_shared_uid(sandbox.jobs()) == []
    fenced = [e for e in second.events() if e.get("event") == "partition_fenced"]
    assert fenced and fenced[0]["jobs"] == [job_id]
    assert second.terminate() == 0
