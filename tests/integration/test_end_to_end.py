"""The worker on the real broker and the sandbox, driven through its contract."""

from __future__ import annotations

import time

import pytest

from tests.fakes.avro import encode, event
from tests.integration.oracle import fold_events, random_events
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration


def _produce_events(broker, topic, events):
    broker.produce(topic, ((e["uid"].encode(), encode(e)) for e in events))


def _drained(broker, group, topic):
    end = broker.end_offsets(topic)
    return lambda: broker.committed(group, topic) == end


def _assert_sandbox_holds(sandbox, events):
    expected = fold_events(events)
    users = sandbox.users()
    assert set(users) == set(expected)
    for uid, want in expected.items():
        got = users[uid]
        assert got.get("display_name") == want["display_name"], uid
        assert got.get("email") == want["email"], uid
        assert got.get("properties", {}) == want["properties"], uid


def _overlapping_jobs_with_a_shared_uid(jobs):
    """Pairs of jobs that were running at the same time and contain the same uid."""
    clashes = []
    ended = [j for j in jobs if j.get("finished_monotonic") is not None]
    for i, a in enumerate(ended):
        for b in ended[i + 1 :]:
            overlap = (
                a["created_monotonic"] < b["finished_monotonic"]
                and b["created_monotonic"] < a["finished_monotonic"]
            )
            if overlap and set(a["uids"]) & set(b["uids"]):
                clashes.append((a["id"], b["id"]))
    return clashes


def test_stream_is_folded_into_fullstory_and_offsets_reach_the_end(
    broker, sandbox, stream, start_worker
):
    """Every user's final state equals the fold of its events, and the group commits to the end."""
    topic, dlq, group = stream(3)
    events = random_events(3000, uids=400, seed=1)
    _produce_events(broker, topic, events)
    worker = start_worker(topic, dlq, group, BATCH_MAX_USERS="150", MAX_JOBS_IN_FLIGHT="4")
    wait_until(_drained(broker, group, topic), 120, "committed offsets to reach the log end")
    _assert_sandbox_holds(sandbox, events)
    assert _overlapping_jobs_with_a_shared_uid(sandbox.jobs()) == []
    types = sandbox.users()["user-00001"]["types"]
    assert types.get("visits") == "int"
    assert worker.terminate() == 0


def test_integer_properties_arrive_as_int_not_real(broker, sandbox, stream, start_worker):
    """A long property is declared int, a double real, so FullStory keeps their types."""
    topic, dlq, group = stream(1)
    events = [event("typed", properties={"visits": 3, "spent": 2.5, "beta": True, "plan": "x"})]
    _produce_events(broker, topic, events)
    worker = start_worker(topic, dlq, group)
    wait_until(_drained(broker, group, topic), 60, "the event to be committed")
    user = sandbox.users()["typed"]
    assert user["properties"] == {"visits": 3, "spent": 2.5, "beta": True, "plan": "x"}
    assert user["types"] == {"visits": "int", "spent": "real", "beta": "bool", "plan": "str"}
    assert worker.terminate() == 0


def test_a_user_changed_back_to_an_earlier_value_ends_with_it(
    broker, sandbox, stream, start_worker
):
    """plan A, then B, then A again, each imported before the next is produced: the sandbox,
    which answers a known Idempotency-Key with its first job as FullStory does, ends with A.
    (Under a key of the body alone the third batch got the first job back, and the user stayed
    at B while its record was committed: found by following the README with one's own topic.)"""
    topic, dlq, group = stream(1)
    worker = start_worker(topic, dlq, group)
    for plan in ["A", "B", "A"]:
        _produce_events(broker, topic, [event("toggler", properties={"plan": plan})])
        wait_until(_drained(broker, group, topic), 60, f"plan {plan} committed")
    assert sandbox.users()["toggler"]["properties"] == {"plan": "A"}
    assert len(sandbox.jobs()) == 3
    assert worker.terminate() == 0


def test_undeliverable_records_go_to_the_dlq_with_their_reason(
    broker, sandbox, stream, start_worker
):
    """Garbage, an empty uid and a user FullStory rejects land in the DLQ; the rest is applied."""
    topic, dlq, group = stream(2)
    sandbox.set_faults(reject_uids="^rejected-")
    good = [event("good-1", display_name="Ok"), event("good-2", email="g@x.io")]
    broker.produce(
        topic,
        [
            (b"good-1", encode(good[0])),
            (b"junk", b"\x07not avro at all"),
            (b"empty", encode(event(""))),
            (b"rejected-1", encode(event("rejected-1", display_name="No"))),
            (b"good-2", encode(good[1])),
        ],
    )
    worker = start_worker(topic, dlq, group)
    wait_until(_drained(broker, group, topic), 60, "all records to be acknowledged")
    _assert_sandbox_holds(sandbox, good)
    letters = broker.read_all(dlq, expected=3)
    reasons = {}
    for message in letters:
        headers = {k: v for k, v in message.headers()}
        reasons[message.key()] = headers
        assert headers["dlq.source.topic"] == topic.encode()
        assert int(headers["dlq.source.offset"]) >= 0
    assert set(reasons) == {b"junk", b"empty", b"rejected-1"}
    assert reasons[b"junk"]["dlq.error.code"] == b"undecodable"
    assert reasons[b"empty"]["dlq.error.code"] == b"empty_uid"
    assert reasons[b"rejected-1"]["dlq.error.code"] == b"fullstory_rejected"
    assert reasons[b"rejected-1"]["dlq.fullstory.code"] == b"invalid_user"
    assert "dlq.fullstory.code" not in reasons[b"junk"]
    assert "dlq.job.id" in reasons[b"rejected-1"]
    by_key = {m.key(): m.value() for m in letters}
    assert by_key[b"junk"] == b"\x07not avro at all"
    assert worker.terminate() == 0


@pytest.mark.parametrize(
    "fault",
    [
        {"rate_limit": {"count": 1_000_000, "retry_after_s": 1}},
        {"server_error": {"count": 1_000_000, "status": 503}},
    ],
    ids=["429", "503"],
)
def test_nothing_is_committed_while_fullstory_refuses(broker, sandbox, stream, start_worker, fault):
    """While FullStory answers 429/5xx nothing is committed; once it recovers, all drains."""
    topic, dlq, group = stream(2)
    canary = broker.create_topic(1, prefix="canary")
    events = random_events(200, uids=50, seed=2)
    _produce_events(broker, topic, events)
    sandbox.set_faults(**fault)
    worker = start_worker(f"{topic},{canary}", dlq, group)
    refused = 429 if "rate_limit" in fault else 503

    def refused_five_times_or_committed() -> bool:
        if any(offset >= 1 for offset in broker.committed(group, topic).values()):
            return True
        return sum(r["status"] == refused for r in sandbox.requests()) >= 5

    wait_until(refused_five_times_or_committed, 30, "five refusals (or a commit, failing the test)")
    # Instead of waiting a while for a commit that must not come: a record that needs no
    # FullStory (undecodable, so dead-lettered), sent after the refusals, is committed by
    # the same loop, whose commits carry every partition's acknowledged prefix. A refused
    # record acknowledged by then would have been committed with it (or before it).
    broker.produce(canary, [(b"canary", b"\x07not avro")])
    wait_until(
        lambda: broker.committed(group, canary) == {0: 1},
        60,
        "the loop to commit the dead-lettered canary after the refusals",
    )
    committed = broker.committed(group, topic)
    assert all(offset < 1 for offset in committed.values()), committed
    assert sandbox.users() == {}
    assert worker.proc.poll() is None, "the worker must keep retrying, not exit"
    sandbox.set_faults(rate_limit={"count": 0}, server_error={"count": 0})
    wait_until(_drained(broker, group, topic), 90, "the backlog to drain after recovery")
    _assert_sandbox_holds(sandbox, events)
    assert worker.terminate() == 0


def test_sigterm_drains_and_exits_zero_and_a_restart_resumes(broker, sandbox, stream, start_worker):
    """SIGTERM mid-stream exits 0; a new worker resumes from the commit and loses nothing."""
    topic, dlq, group = stream(3)
    events = random_events(2000, uids=300, seed=3)
    _produce_events(broker, topic, events)
    sandbox.set_faults(job_delay_ms=400)
    first = start_worker(
        topic, dlq, group, BATCH_MAX_USERS="50", MAX_JOBS_IN_FLIGHT="2", SHUTDOWN_TIMEOUT_S="20"
    )
    wait_until(lambda: len(sandbox.jobs()) >= 2, 60, "the first jobs")
    started = time.monotonic()
    assert first.terminate(timeout=60) == 0
    assert time.monotonic() - started < 25
    second = start_worker(topic, dlq, group, BATCH_MAX_USERS="500")
    wait_until(
        lambda: any(e.get("event") == "partitions_assigned" for e in second.events()),
        60,
        "the restarted worker to join",
    )
    wait_until(_drained(broker, group, topic), 120, "the restarted worker to drain")
    _assert_sandbox_holds(sandbox, events)
    assert second.terminate() == 0


def test_a_dead_letter_too_large_for_the_dlq_keeps_its_key_and_coordinates(
    broker, sandbox, stream, start_worker
):
    """A record the DLQ producer cannot carry (over its 1 MB message limit) is still
    dead-lettered, without its value, instead of crashing the worker or stalling the partition."""
    topic, dlq, group = stream(1)
    huge = b"\x07" + b"x" * 1_010_000  # undecodable, and over the producer's default limit
    broker.produce(
        topic, [(b"huge", huge), (b"ok", encode(event("ok")))], **{"message.max.bytes": 1_040_000}
    )
    worker = start_worker(topic, dlq, group)
    wait_until(_drained(broker, group, topic), 60, "both records to be acknowledged")
    [letter] = broker.read_all(dlq, expected=1)
    headers = dict(letter.headers())
    assert letter.key() == b"huge" and letter.value() is None
    assert headers["dlq.error.code"] == b"undecodable"
    assert headers["dlq.source.offset"] == b"0"
    assert headers["dlq.value.omitted"].startswith(b"1010001 bytes")
    assert "ok" in sandbox.users()
    assert worker.terminate() == 0
