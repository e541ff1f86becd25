"""Four replicas share one FullStory org (issue: scale out as one group): against an org that
allows 6 jobs in progress and 30,000 operations in flight, the group stays inside the budget
it is given, each user is sent about once, and nothing is lost."""

from __future__ import annotations

import signal

import pytest

from fullstory_sandbox import Sandbox
from tests.integration.conftest import API_KEY
from tests.integration.faults.checker import events_named
from tests.integration.faults.test_group_changes import owned as owned_partitions
from tests.integration.oracle import random_events
from tests.integration.test_end_to_end import _assert_sandbox_holds, _produce_events
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration


def test_four_replicas_stay_inside_the_orgs_limits(broker, stream, start_worker):
    topic, dlq, group = stream(12)
    with Sandbox(
        api_key=API_KEY, job_delay_ms=300, max_in_progress_jobs=6, max_in_flight_requests=30_000
    ) as org:
        budget = {
            "FULLSTORY_API_URL": org.url,
            "FULLSTORY_ORG_MAX_JOBS": "6",
            "FULLSTORY_ORG_MAX_OPERATIONS": "30000",
            "MAX_JOBS_IN_FLIGHT": "10",
            "BATCH_MAX_USERS": "1000",
        }
        workers = [start_worker(topic, dlq, group, **budget) for _ in range(4)]
        wait_until(
            lambda: (
                sum(len(owned_partitions(w)) for w in workers) == 12
                and all(owned_partitions(w) for w in workers)
            ),
            90,
            "four replicas sharing the twelve partitions",
        )
        # A backlog for the group as it stands (its replicas held still while it is produced,
        # well within their session): each replica catches up on its share of it.
        for worker in workers:
            worker.proc.send_signal(signal.SIGSTOP)
        events = random_events(80_000, uids=20_000, seed=17)
        try:
            _produce_events(broker, topic, events)
        finally:
            for worker in workers:
                worker.proc.send_signal(signal.SIGCONT)
        end = broker.end_offsets(topic)
        wait_until(lambda: broker.committed(group, topic) == end, 240, "the group at the end")
        _assert_sandbox_holds(org, events)
        org_limit_429s = [
            r
            for r in org.requests()
            if r["status"] == 429 and r["endpoint"] == "batch_create" and r["fault"] is None
        ]
        stats = org.stats()
        upserts_per_uid = stats["upserts"] / len(org.users())
    assert len(org_limit_429s) <= 4, f"{len(org_limit_429s)} 429s from the org's limits"
    assert upserts_per_uid <= 1.1
    for worker in workers:
        assert worker.terminate() == 0


def test_scaling_from_one_replica_to_four_and_back_mid_backlog_stays_inside_the_budget(
    broker, stream, start_worker
):
    """One replica drains a backlog, three more join, then leave again (SIGTERM), all in the
    middle of it: the shares follow every rebalance, so the org hardly ever has to refuse a
    job (its 429s stay a handful; 33 without the shared budget), nothing is lost, and each
    replica that left exited 0."""
    topic, dlq, group = stream(12)
    events = random_events(60_000, uids=20_000, seed=23)
    _produce_events(broker, topic, events)
    with Sandbox(
        api_key=API_KEY, job_delay_ms=1500, max_in_progress_jobs=6, max_in_flight_requests=30_000
    ) as org:
        budget = {
            "FULLSTORY_API_URL": org.url,
            "FULLSTORY_ORG_MAX_JOBS": "6",
            "FULLSTORY_ORG_MAX_OPERATIONS": "30000",
            "BATCH_MAX_USERS": "250",
            "KAFKA_CFG_MAX_POLL_INTERVAL_MS": "60000",
        }
        first = start_worker(topic, dlq, group, **budget)
        wait_until(lambda: len(org.jobs()) >= 3, 60, "the first replica's jobs")
        others = [start_worker(topic, dlq, group, **budget) for _ in range(3)]
        wait_until(lambda: all(owned_partitions(w) for w in others), 60, "four replicas sharing it")
        wait_until(
            lambda: all(events_named(w, "batch_submitted") for w in others),
            60,
            "a job of each replica that joined",
        )
        for worker in others:
            assert worker.terminate() == 0
        end = broker.end_offsets(topic)
        wait_until(lambda: broker.committed(group, topic) == end, 240, "the group at the end")
        _assert_sandbox_holds(org, events)
        org_limit_429s = [
            r
            for r in org.requests()
            if r["status"] == 429 and r["endpoint"] == "batch_create" and r["fault"] is None
        ]
    assert len(org_limit_429s) <= 8, f"{len(org_limit_429s)} 429s from the org's limits"
    assert first.terminate() == 0
