"""A backlog on the real broker: the worker reads it to its end before sending, so each user
is upserted about once, and what FullStory holds is the fold of every event."""

from __future__ import annotations

import pytest

from tests.fakes.avro import encode
from tests.integration.oracle import fold_events, random_events
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration


def test_a_backlog_upserts_each_user_about_once(broker, sandbox, stream, start_worker):
    """60,000 events of 3,000 users waiting before the worker starts (a replay, or an outage
    caught up): far behind the log end (librdkafka's cached high watermarks), the worker keeps
    merging, so FullStory sees each user about once instead of once per batch it would have
    been in; every user still ends as the fold of its events."""
    topic, dlq, group = stream(3)
    events = random_events(60_000, uids=3_000, seed=11)
    broker.produce(topic, ((e["uid"].encode(), encode(e)) for e in events))
    start_worker(topic, dlq, group, BATCH_MAX_USERS="1000", MAX_JOBS_IN_FLIGHT="4")
    end = broker.end_offsets(topic)
    wait_until(lambda: broker.committed(group, topic) == end, 180, "the backlog committed")
    expected = fold_events(events)
    users = sandbox.users()
    assert set(users) == set(expected)
    for uid, want in expected.items():
        assert users[uid].get("properties", {}) == want["properties"], uid
    upserts = sandbox.stats()["upserts"]
    assert upserts <= 1.1 * len(expected), f"{upserts} upserts for {len(expected)} users"
