"""Scenario 1: the worker is SIGKILLed at random points while a stream arrives."""

from __future__ import annotations

import random
import time

import pytest

from tests.integration.faults.checker import check, publish
from tests.integration.faults.commits import CommitWatcher, wait_for_commits
from tests.integration.faults.topics import StreamProducer
from tests.integration.oracle import random_events
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration

SEED = 20_240_611
KILLS = 4
# A dead member's partitions move after its session times out (the broker's minimum is 6 s).
QUICK_HANDOVER = {"KAFKA_CFG_SESSION_TIMEOUT_MS": "6000", "KAFKA_CFG_HEARTBEAT_INTERVAL_MS": "1000"}


def test_sigkill_at_random_points_loses_nothing_and_commits_only_acknowledged_records(
    broker, sandbox, stream, start_worker, capsys, record_property
):
    """SIGKILL mid-job, again and again, while events keep arriving: every commit the group
    ever shows covers only records FullStory acknowledged (or the DLQ holds), every user ends
    as the fold of its events, jobs of one uid never overlap, and the only records imported
    twice are those a killed worker had sent but not yet committed: per killed worker, what
    was sent again after it died is among what it left uncommitted, and in all no more
    records went twice than the killed workers left uncommitted."""
    rng = random.Random(SEED)
    topic, dlq, group = stream(6)
    sandbox.set_faults(job_delay_ms=300, job_jitter_ms=200)
    events = random_events(22_000, uids=2_500, seed=SEED)
    producer = StreamProducer(broker.bootstrap, topic)
    producer.send(events[:12_000])
    env = {"BATCH_MAX_USERS": "300", "MAX_JOBS_IN_FLIGHT": "4", **QUICK_HANDOVER}
    workers, killed_at, kill_points, running_at_kill = [], {}, [], []
    with CommitWatcher(broker.bootstrap, group, topic) as watcher:
        producer.start_background(events[12_000:], chunk=400, pause_s=0.6)
        for _ in range(KILLS):
            jobs_before = len(sandbox.jobs())
            worker = start_worker(topic, dlq, group, **env)
            workers.append(worker)
            wait_until(lambda n=jobs_before: len(sandbox.jobs()) > n, 60, "the worker's first job")
            kill_points.append(round(rng.uniform(0.0, 3.0), 2))
            time.sleep(kill_points[-1])  # a random point in its work, not a speed assertion
            running_at_kill.append(sum(j["status"] == "PROCESSING" for j in sandbox.jobs()))
            worker.kill()
            watcher.poll_now()  # its last commit is sampled; nobody commits until the next
            killed_at[len(workers) - 1] = time.time()
        producer.join()
        last = start_worker(topic, dlq, group, **env)
        workers.append(last)
        wait_for_commits(watcher, broker.end_offsets(topic), 180, "the last worker to drain")
        verdict = check(
            bootstrap=broker.bootstrap,
            sandbox=sandbox,
            topic=topic,
            dlq=dlq,
            group=group,
            watcher=watcher,
            workers=workers,
            started_s=producer.started_s,
            stopped_s=killed_at,
        )
    assert last.terminate() == 0
    numbers = {
        **verdict.numbers,
        "kills": KILLS,
        "kill_after_s": kill_points,
        "jobs_running_at_kill": running_at_kill,
    }
    publish(capsys, record_property, "sigkill", numbers)
    assert verdict.problems == []
    assert numbers["dead_letters"] == 0
    assert any(running_at_kill), "no kill landed while a job was running"
    assert 0 <= numbers["duplicates"] <= sum(numbers["sent_uncommitted_at_stop"]), numbers
