"""Scenario 4: FullStory misbehaves mid-stream (429s, 5xx bursts, resets, slow answers, jobs
that outlast max.poll.interval.ms); the worker rides it out without losing or repeating."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.faults.checker import (
    Verdict,
    check,
    events_named,
    logged_job_ids,
    publish,
    retry_after_breaches,
)
from tests.integration.faults.commits import CommitWatcher, wait_for_commits
from tests.integration.faults.topics import StreamProducer
from tests.integration.oracle import random_events
from tests.integration.worker_process import WorkerProcess, wait_until

pytestmark = pytest.mark.integration


def _storm(sandbox, *bursts: dict[str, Any], timeout_s: float = 60) -> None:
    """Apply each burst in turn once the previous one was used up (bounded)."""
    for burst in bursts:
        sandbox.set_faults(burst)
        kind = next(k for k in ("rate_limit", "server_error", "reset", "slow") if k in burst)
        endpoint = burst[kind].get("endpoint", "any")
        wait_until(
            lambda kind=kind, endpoint=endpoint: all(
                f["endpoint"] != endpoint for f in sandbox.faults()[kind]
            ),
            timeout_s,
            f"the worker to meet the {kind} burst on {endpoint}",
            step=0.05,
        )


def _run(
    broker,
    sandbox,
    stream,
    start_worker,
    storm: Callable[[], None],
    *,
    seed: int,
    env: dict[str, str] | None = None,
) -> tuple[Verdict, WorkerProcess, list[dict[str, Any]]]:
    """A stream over three partitions (part up front, part while the worker runs), the
    storm once the first job exists, then a drain; returns the oracle's verdict, the worker
    and the sandbox's request log."""
    topic, dlq, group = stream(3)
    sandbox.set_faults(job_delay_ms=300)
    events = random_events(6_000, uids=800, seed=seed)
    producer = StreamProducer(broker.bootstrap, topic)
    producer.send(events[:2_000])
    settings = {"BATCH_MAX_USERS": "100", "MAX_JOBS_IN_FLIGHT": "4", **(env or {})}
    with CommitWatcher(broker.bootstrap, group, topic) as watcher:
        worker = start_worker(topic, dlq, group, **settings)
        producer.start_background(events[2_000:], chunk=500, pause_s=1.0)
        wait_until(lambda: sandbox.jobs(), 60, "the first job")
        storm()
        producer.join()
        wait_for_commits(watcher, broker.end_offsets(topic), 120, "the stream to drain")
        requests = sandbox.requests()
        verdict = check(
            bootstrap=broker.bootstrap,
            sandbox=sandbox,
            topic=topic,
            dlq=dlq,
            group=group,
            watcher=watcher,
            workers=[worker],
            started_s=producer.started_s,
        )
    assert worker.terminate() == 0
    return verdict, worker, requests


def _assert_one_job_per_batch(verdict: Verdict, worker: WorkerProcess, sandbox) -> None:
    """Each batch the worker sent made exactly one job, and no record went twice."""
    assert verdict.problems == []
    assert verdict.numbers["duplicates"] == 0, verdict.numbers
    assert logged_job_ids([worker]) == {job["id"] for job in sandbox.jobs()}
    keys = Counter(job["idempotency_key"] for job in sandbox.jobs())
    assert max(keys.values()) == 1, "two jobs were made under one idempotency key"


def test_429_holds_back_every_request_for_retry_after(
    broker, sandbox, stream, start_worker, capsys, record_property
):
    """After a 429 with Retry-After R, no request of any job thread reaches FullStory for R
    seconds (whichever endpoint answered it), and the stream still drains exactly."""

    def storm() -> None:
        _storm(
            sandbox,
            {"rate_limit": {"count": 3, "retry_after_s": 1}},
            {"rate_limit": {"count": 2, "retry_after_s": 2, "endpoint": "batch_status"}},
            {"rate_limit": {"count": 2, "retry_after_s": 1, "endpoint": "batch_create"}},
        )

    verdict, worker, requests = _run(broker, sandbox, stream, start_worker, storm, seed=41)
    limited, crossed, breaches = retry_after_breaches(requests)
    publish(
        capsys,
        record_property,
        "429",
        {
            **verdict.numbers,
            "answered_429": limited,
            "in_flight_at_a_429": len(crossed),
            "latest_in_flight_s": round(max(crossed, default=0), 4),
        },
    )
    assert limited >= 7
    assert breaches == []
    _assert_one_job_per_batch(verdict, worker, sandbox)


def test_5xx_bursts_are_retried_until_accepted(
    broker, sandbox, stream, start_worker, capsys, record_property
):
    """Bursts of 500/502/503 (replayed under their idempotency key, so the worker has to move
    to a new key) delay the stream but lose nothing and import nothing twice."""

    def storm() -> None:
        _storm(
            sandbox,
            {"server_error": {"count": 6, "status": 503}},
            {"server_error": {"count": 4, "status": 500, "endpoint": "batch_create"}},
            {"server_error": {"count": 3, "status": 502, "endpoint": "batch_status"}},
        )

    verdict, worker, requests = _run(broker, sandbox, stream, start_worker, storm, seed=42)
    errors = sum(1 for r in requests if (r["status"] or 0) >= 500)
    rotated = len(events_named(worker, "idempotency_key_rotated"))
    publish(
        capsys,
        record_property,
        "5xx",
        {**verdict.numbers, "answered_5xx": errors, "keys_rotated": rotated},
    )
    assert errors >= 13
    _assert_one_job_per_batch(verdict, worker, sandbox)


@pytest.mark.parametrize("when", ["before", "after"])
def test_connection_resets_reuse_the_idempotency_key(
    broker, sandbox, stream, start_worker, capsys, record_property, when
):
    """A dropped connection is retried with the same Idempotency-Key: when FullStory had
    already made the job ("after"), the retry gets that job back instead of a second one."""

    def storm() -> None:
        _storm(
            sandbox,
            {"reset": {"count": 4, "when": when, "endpoint": "batch_create"}},
            {"reset": {"count": 4, "when": when}},
            {"reset": {"count": 3, "when": when, "endpoint": "batch_create"}},
        )

    verdict, worker, requests = _run(broker, sandbox, stream, start_worker, storm, seed=43)
    resets = [r for r in requests if r["status"] is None]
    posts = [r for r in requests if r["endpoint"] == "batch_create"]
    keys = {r["idempotency_key"] for r in posts}
    replayed = [r for r in posts if r["replayed"]]
    publish(
        capsys,
        record_property,
        f"reset {when}",
        {
            **verdict.numbers,
            "resets": len(resets),
            "create_keys": len(keys),
            "replayed_posts": len(replayed),
        },
    )
    assert len(resets) >= 11
    if when == "after":
        # Each POST whose answer was lost is retried and answered with the job it made.
        assert len(replayed) >= sum(r["status"] is None for r in posts) >= 7
    assert len(keys) == len(sandbox.jobs()), "a retried POST made another job"
    _assert_one_job_per_batch(verdict, worker, sandbox)


def test_answers_slower_than_the_http_timeout(
    broker, sandbox, stream, start_worker, capsys, record_property
):
    """FullStory answers after the worker's 1 s timeout (the job was made meanwhile): the
    retry under the same key gets the job back; nothing is lost and no key makes two jobs."""

    def storm() -> None:
        _storm(
            sandbox,
            {"slow": {"count": 3, "delay_ms": 2500, "endpoint": "batch_create"}},
            {"slow": {"count": 3, "delay_ms": 2500}},
        )

    verdict, worker, requests = _run(
        broker,
        sandbox,
        stream,
        start_worker,
        storm,
        seed=44,
        env={"FULLSTORY_HTTP_TIMEOUT_S": "1"},
    )
    slow = [r for r in requests if r["answered_monotonic"] - r["time_monotonic"] >= 2.4]
    timeouts = [
        e for e in events_named(worker, "fullstory_retry") if "timed out" in e.get("error", "")
    ]
    keys = {r["idempotency_key"] for r in requests if r["endpoint"] == "batch_create"}
    publish(
        capsys,
        record_property,
        "slow answers",
        {**verdict.numbers, "slow_answers": len(slow), "worker_timeouts": len(timeouts)},
    )
    assert len(slow) >= 6
    assert len(timeouts) >= 6
    assert len(keys) == len(sandbox.jobs()), "a timed-out POST made another job"
    _assert_one_job_per_batch(verdict, worker, sandbox)


def test_jobs_longer_than_max_poll_interval_keep_the_worker_in_its_group(
    broker, sandbox, stream, start_worker, capsys, record_property
):
    """Jobs that stay PROCESSING for 15 s, past max.poll.interval.ms (7 s), with the buffer
    full and the partitions paused: the worker keeps polling, keeps its partitions and its
    group membership, and drains once FullStory is quick again."""
    topic, dlq, group = stream(2)
    sandbox.set_faults(job_delay_ms=15_000)
    events = random_events(1_500, uids=600, seed=45)
    producer = StreamProducer(broker.bootstrap, topic)
    producer.send(events)
    with CommitWatcher(broker.bootstrap, group, topic) as watcher:
        worker = start_worker(
            topic,
            dlq,
            group,
            KAFKA_CFG_SESSION_TIMEOUT_MS="6000",
            KAFKA_CFG_HEARTBEAT_INTERVAL_MS="1000",
            KAFKA_CFG_MAX_POLL_INTERVAL_MS="7000",
            MAX_PENDING_USERS="100",
            BATCH_MAX_USERS="50",
            MAX_JOBS_IN_FLIGHT="1",
        )
        wait_until(lambda: len(sandbox.jobs()) >= 1, 60, "the first long job")
        members = _members(broker, group)
        wait_until(lambda: len(sandbox.jobs()) >= 2, 40, "the second long job")
        sandbox.set_faults(job_delay_ms=200)  # jobs from now on are quick
        long_jobs = [job["id"] for job in sandbox.jobs()[:2]]
        wait_until(
            lambda: all(j["finished"] for j in sandbox.jobs()[:2]), 40, "the long jobs to end"
        )
        members_after = _members(broker, group)
        wait_for_commits(watcher, broker.end_offsets(topic), 120, "the stream to drain")
        verdict = check(
            bootstrap=broker.bootstrap,
            sandbox=sandbox,
            topic=topic,
            dlq=dlq,
            group=group,
            watcher=watcher,
            workers=[worker],
            started_s=producer.started_s,
        )
    assert worker.terminate() == 0
    jobs = {job["id"]: job for job in sandbox.jobs()}
    longest = max(jobs[j]["finished_monotonic"] - jobs[j]["created_monotonic"] for j in long_jobs)
    paused = events_named(worker, "partitions_paused")
    numbers = {
        **verdict.numbers,
        "long_jobs_s": round(longest, 1),
        "pauses": len(paused),
        "members": members,
    }
    publish(capsys, record_property, "jobs past max.poll.interval", numbers)
    assert longest >= 14
    assert paused, "the buffer never filled, so the partitions were never paused"
    # Before the final SIGTERM (whose shutdown revokes everything on leaving the group):
    before_stop = _until_signal(worker)
    assert [e for e in before_stop if e["event"] in ("partitions_lost", "partitions_revoked")] == []
    assert [e["event"] for e in before_stop].count("partitions_assigned") == 1
    assert len(members) == 1 and members == members_after, (members, members_after)
    running = sorted((j["created_monotonic"], j["finished_monotonic"]) for j in jobs.values())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(running)), (
        "more than MAX_JOBS_IN_FLIGHT=1 job ran at once"
    )
    assert verdict.problems == []
    assert verdict.numbers["duplicates"] == 0


def _until_signal(worker: WorkerProcess) -> list[dict[str, Any]]:
    """The worker's log events up to the signal that stopped it."""
    events = [e for e in worker.events() if "event" in e]
    names = [e["event"] for e in events]
    return events[: names.index("stop_requested")] if "stop_requested" in names else events


def _members(broker, group: str) -> list[str]:
    """The group's member ids, as the coordinator sees them now."""
    for _ in range(20):
        described = broker.admin().describe_consumer_groups([group])[group].result(timeout=10)
        if str(described.state).endswith("STABLE"):
            return sorted(member.member_id for member in described.members)
        time.sleep(0.25)
    raise AssertionError(f"group {group} did not settle: {described.state}")
