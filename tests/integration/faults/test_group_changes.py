"""Scenario 2: three replicas in one group; one joins, one leaves cleanly, one dies."""

from __future__ import annotations

import time

import pytest

from tests.integration.faults.checker import check, events_named, publish
from tests.integration.faults.commits import CommitWatcher, wait_for_commits
from tests.integration.faults.topics import StreamProducer
from tests.integration.oracle import random_events
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration


def owned(worker) -> set[int]:
    """The partitions a worker holds now, from its assign/revoke/lost log lines."""
    partitions: set[int] = set()
    for event in events_named(
        worker, "partitions_assigned", "partitions_revoked", "partitions_lost"
    ):
        moved = {int(partition) for _topic, partition in event["partitions"]}
        if event["event"] == "partitions_assigned":
            partitions |= moved
        else:
            partitions -= moved
    return partitions


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_replicas_joining_leaving_and_dying_mid_stream_lose_nothing(
    broker, sandbox, stream, start_worker, capsys, record_property, protocol
):
    """Two replicas share six partitions, a third joins mid-stream, one leaves on SIGTERM
    (exit 0) and one is SIGKILLed: the survivor ends up with every partition, every partition
    commits to its log end, no commit ever passes an unacknowledged record, users end as the
    fold of their events, and only records a hand-over left uncommitted are imported twice."""
    topic, dlq, group = stream(6)
    sandbox.set_faults(job_delay_ms=300)
    events = random_events(12_000, uids=1_500, seed=22)
    producer = StreamProducer(broker.bootstrap, topic)
    producer.send(events[:4_000])
    # Under both group protocols: Kafka 4's consumer protocol assigns on the broker, with no
    # group-wide barrier; the loop's revoke drain, fence and commit on revoke must hold alike.
    env = {
        "BATCH_MAX_USERS": "200",
        "MAX_JOBS_IN_FLIGHT": "3",
        **broker.quick_handover(group, protocol),
    }
    with CommitWatcher(broker.bootstrap, group, topic) as watcher:
        producer.start_background(events[4_000:], chunk=400, pause_s=0.7)
        first = start_worker(topic, dlq, group, **env)
        second = start_worker(topic, dlq, group, **env)
        # A hand-over may make the new owner send again what the old one had sent but not
        # committed: at most the moved partitions' records between the last commit before the
        # change and the log end after it.
        handovers = []
        wait_until(lambda: owned(first) and owned(second), 60, "two replicas sharing the work")
        # The first replica may have started on the second's partitions before it joined.
        handovers.append(("start", owned(second), {}, broker.end_offsets(topic)))
        wait_until(lambda: sum(watcher.latest().values()) > 0, 60, "first commits")

        before = watcher.poll_now()
        third = start_worker(topic, dlq, group, **env)
        wait_until(lambda: owned(third), 60, "the third replica to get partitions")
        assert not producer.done(), "the stream ended before the group changes; make it longer"
        handovers.append(("join", owned(third), before, broker.end_offsets(topic)))

        before, leaving_with = watcher.poll_now(), owned(first)
        stopping = time.monotonic()
        assert first.terminate(timeout=60) == 0
        leave_s = time.monotonic() - stopping
        stopped_at = {0: time.time()}
        wait_until(lambda: len(owned(second) | owned(third)) == 6, 60, "the leaver's partitions")
        handovers.append(("sigterm", leaving_with, before, broker.end_offsets(topic)))

        wait_until(lambda: owned(second), 30, "the second replica to hold partitions")
        before, died_with = watcher.poll_now(), owned(second)
        second.kill()
        watcher.poll_now()
        stopped_at[1] = time.time()
        handovers.append(("sigkill", died_with, before, broker.end_offsets(topic)))
        backlogs = {
            name: sum(end[p] - committed.get(p, 0) for p in moved)
            for name, moved, committed, end in handovers
        }

        producer.join()
        wait_until(lambda: owned(third) == set(range(6)), 60, "the survivor to take everything")
        wait_for_commits(watcher, broker.end_offsets(topic), 120, "the survivor to drain")
        verdict = check(
            bootstrap=broker.bootstrap,
            sandbox=sandbox,
            topic=topic,
            dlq=dlq,
            group=group,
            watcher=watcher,
            workers=[first, second, third],
            started_s=producer.started_s,
            stopped_s=stopped_at,
        )
    assert third.terminate() == 0
    numbers = {
        **verdict.numbers,
        "kills": 1,
        "sigterm_exit_s": round(leave_s, 2),
        "dead_replica_partitions": sorted(died_with),
        "handover_backlogs": backlogs,
    }
    publish(capsys, record_property, "group changes", numbers)
    assert verdict.problems == []
    assert 0 <= numbers["duplicates"] <= sum(backlogs.values()), numbers
