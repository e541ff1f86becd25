"""Backlogs and replays: while the partitions are far behind their log end, users keep
merging instead of going out, so each user is sent about once; the pending-users bound still
holds, and once caught up the loop batches as usual."""

from __future__ import annotations

import random


def _backlog(kafka, events: int, users: int, partitions: int = 2) -> dict[str, int]:
    """Events keyed by uid (a uid stays on one partition); returns each uid's last visits."""
    rng = random.Random(7)
    last = {}
    for i in range(events):
        uid = f"u{rng.randrange(users)}"
        kafka.change(int(uid[1:]) % partitions, uid, properties={"visits": i})
        last[uid] = i
    return last


def test_a_backlog_sends_each_user_once(make_loop, kafka, fullstory):
    """5,000 waiting events of 200 users: the loop reads to the end before cutting, so every
    user goes in exactly one job and the log is committed; a change arriving once caught up
    goes out as usual."""
    _backlog(kafka, 5_000, 200)
    fullstory.complete_on_poll = 1
    loop = make_loop(max_users=100, backlog_lag=500)
    loop.source.assign([0, 1])
    loop.turn_until(kafka.committed_to_end, "both partitions committed to their end")
    sent = [uid for job in fullstory.jobs() for uid in job.uids]
    assert len(sent) == len(set(sent)) == 200
    assert len(fullstory.jobs()) == 2
    kafka.change(0, "u0", email="late@example.com")  # caught up: batches go as usual
    loop.turn_until(lambda: len(fullstory.jobs()) == 3, "the late change sent")


def test_a_backlog_larger_than_the_pending_bound_still_drains(make_loop, kafka, fullstory):
    """When the users waiting reach the bound, the hold ends: the oldest go in full batches,
    partitions pause meanwhile, and the backlog drains with every user's last change sent."""
    last_visits = _backlog(kafka, 5_000, 400)
    fullstory.complete_on_poll = 1
    loop = make_loop(max_users=50, max_pending=100, backlog_lag=500)
    loop.source.assign([0, 1])
    loop.turn_until(kafka.committed_to_end, "both partitions committed to their end")
    assert max(len(job.uids) for job in fullstory.jobs()) <= 50
    sent_last = {}
    for job in fullstory.jobs():
        for uid, request in job.users.items():
            sent_last[uid] = request["properties"]["visits"]
    assert sent_last == last_visits


def test_while_the_backlog_holds_users_back_the_pending_bound_still_holds(
    make_loop, kafka, fullstory
):
    """The hold keeps users merging, but never past MAX_PENDING_USERS: users pile up to the
    bound (the hold is on), the partitions pause there, and however long the backlog, no
    more users wait than the bound plus one poll's records (the worker's memory)."""
    _backlog(kafka, 5_000, 400)
    fullstory.complete_on_poll = 1
    loop = make_loop(max_users=50, max_pending=100, backlog_lag=500, consume_max_records=20)
    loop.source.assign([0, 1])
    pending: list[float] = []

    def drained() -> bool:
        pending.append(loop.metric("fsus_pending_users"))
        return kafka.committed_to_end()

    loop.turn_until(drained, "both partitions committed to their end")
    assert max(pending) >= 100, "the hold never let users merge up to the bound"
    assert max(pending) < 100 + 20
