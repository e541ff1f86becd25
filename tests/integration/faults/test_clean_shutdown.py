"""Scenario 7: SIGTERM mid-stream, then a restart."""

from __future__ import annotations

import time

import pytest

from tests.integration.faults.checker import check, events_named, publish
from tests.integration.faults.commits import CommitWatcher, wait_for_commits
from tests.integration.faults.topics import StreamProducer
from tests.integration.oracle import random_events
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration

# The process still closes its consumer (leaving the group) and exits after the drain deadline.
LEAVE_ALLOWANCE_S = 2.0


def _running(sandbox) -> int:
    return sum(job["status"] == "PROCESSING" for job in sandbox.jobs())


@pytest.mark.parametrize(
    ("job_delay_ms", "shutdown_timeout_s"),
    [(500, 15), (8_000, 2)],
    ids=["jobs-end-in-time", "jobs-outlast-the-deadline"],
)
def test_sigterm_mid_stream_exits_zero_in_time_and_a_restart_resumes(
    broker, sandbox, stream, start_worker, capsys, record_property, job_delay_ms, shutdown_timeout_s
):
    """SIGTERM while jobs run: the worker exits 0 within SHUTDOWN_TIMEOUT_S (plus leaving the
    group). When the jobs end in time it commits them, so the restart imports nothing twice;
    when they outlast the deadline, only what was sent and not acknowledged is sent again.
    Either way nothing is lost and no commit passes an unacknowledged record."""
    topic, dlq, group = stream(3)
    sandbox.set_faults(job_delay_ms=job_delay_ms)
    events = random_events(8_000, uids=1_000, seed=71)
    producer = StreamProducer(broker.bootstrap, topic)
    producer.send(events)
    env = {
        "BATCH_MAX_USERS": "100",
        "MAX_JOBS_IN_FLIGHT": "4",
        "SHUTDOWN_TIMEOUT_S": str(shutdown_timeout_s),
        "KAFKA_CFG_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_CFG_HEARTBEAT_INTERVAL_MS": "1000",
    }
    with CommitWatcher(broker.bootstrap, group, topic) as watcher:
        first = start_worker(topic, dlq, group, **env)
        wait_until(lambda: sum(watcher.latest().values()) > 0, 60, "a first commit")
        wait_until(lambda: _running(sandbox) >= 2, 60, "jobs in flight")
        running_at_stop = _running(sandbox)
        stopping = time.monotonic()
        status = first.terminate(timeout=shutdown_timeout_s + 30)
        exit_s = time.monotonic() - stopping
        watcher.poll_now()  # its final commit is sampled; nobody commits until the restart
        stopped_at = time.time()
        sandbox.set_faults(job_delay_ms=300)
        second = start_worker(topic, dlq, group, **env)
        wait_for_commits(watcher, broker.end_offsets(topic), 120, "the restarted worker to drain")
        verdict = check(
            bootstrap=broker.bootstrap,
            sandbox=sandbox,
            topic=topic,
            dlq=dlq,
            group=group,
            watcher=watcher,
            workers=[first, second],
            started_s=producer.started_s,
            stopped_s={0: stopped_at},
        )
    assert second.terminate() == 0
    abandoned = events_named(first, "shutdown_abandoned_jobs")
    numbers = {
        **verdict.numbers,
        "jobs_running_at_sigterm": running_at_stop,
        "exit_s": round(exit_s, 2),
        "shutdown_timeout_s": shutdown_timeout_s,
        "abandoned_jobs": sum(e["jobs"] for e in abandoned),
    }
    publish(capsys, record_property, f"sigterm (jobs {job_delay_ms} ms)", numbers)
    assert status == 0
    assert events_named(first, "shutdown_complete")
    assert verdict.problems == []
    if job_delay_ms / 1000 < shutdown_timeout_s:
        assert exit_s < shutdown_timeout_s
        assert abandoned == []
        assert numbers["duplicates"] == 0, (
            f"every job ended before the worker exited, yet the restart imported "
            f"{numbers['duplicates']} records again: the clean stop left acknowledged records "
            f"uncommitted ({numbers})"
        )
    else:
        assert exit_s < shutdown_timeout_s + LEAVE_ALLOWANCE_S
        assert abandoned, "the jobs outlasted the deadline, yet none was abandoned"
        # Only what it had sent and not got committed goes again (the checker also shows
        # that each of those records is one the first worker left uncommitted).
        assert 0 <= numbers["duplicates"] <= numbers["sent_uncommitted_at_stop"][0], numbers
