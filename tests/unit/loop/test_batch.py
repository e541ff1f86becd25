"""Merging on arrival and cutting batches (``worker.loop.batch``): pure, time passed in."""

import tracemalloc

import pytest

from tests.fakes.factories import change
from worker.loop.batch import Batcher

P0, P1 = ("users", 0), ("users", 1)


def _fill(batcher: Batcher, uids: list[str], now: float = 0.0, tp=P0, start: int = 0) -> None:
    for offset, uid in enumerate(uids, start=start):
        batcher.add(tp, offset, change(uid, plan=f"p{offset}"), now)


def test_a_users_records_merge_on_arrival_into_one_unit():
    """A decoded record joins its user's pending unit at once: one request per user with the
    later values, and the unit remembers every offset it stands for (nothing else)."""
    batcher = Batcher(max_users=10, max_wait_s=1.0)
    first = batcher.add(P0, 0, change("a", plan="p0"), 0.0)
    assert first is not None and first.first == 0
    assert batcher.add(P0, 1, change("b"), 0.0) is not None
    assert batcher.add(P0, 2, change("a", plan="p2"), 0.0) is None
    assert len(batcher) == 2
    batch = batcher.take(now=0.0)
    assert batch is not None
    assert list(batch.uids) == ["a", "b"]
    assert batch.units["a"].update.properties == {"plan": "p2"}
    assert list(batch.units["a"].offsets) == [0, 2]
    assert batch.record_count() == 3


def test_pending_memory_grows_with_users_not_records():
    """A backlog of many records for few users keeps one merged unit per user and 8 bytes a
    record: 50,000 records of 10 users hold well under a megabyte."""
    batcher = Batcher(max_users=100, max_wait_s=1.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for offset in range(50_000):
            batcher.add(P0, offset, change(f"u{offset % 10}", visits=offset), 0.0)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(batcher) == 10
    assert grown < 1_000_000, f"{grown} bytes for 50,000 records of 10 users"


@pytest.mark.parametrize(
    ("max_users", "uids", "expected_first", "left"),
    [
        (1, ["a", "b"], ["a"], 1),
        (2, ["a", "b", "c", "a"], ["a", "b"], 1),
        (2, ["a", "a", "a"], ["a"], 0),
    ],
    ids=["one-per-batch", "overflow-uid-waits", "same-uid-counts-once"],
)
def test_batch_never_exceeds_max_users(max_users, uids, expected_first, left):
    """A batch holds at most max_users users, oldest first; the rest stay pending."""
    batcher = Batcher(max_users=max_users, max_wait_s=0)
    _fill(batcher, uids)
    batch = batcher.take(now=0.0)
    assert batch is not None
    assert list(batch.uids) == expected_first
    assert len(batcher) == left


def test_a_user_in_flight_keeps_merging_and_waits_for_its_job():
    """A user whose job runs is in no second job: its later records merge into a new unit
    that goes only once the job ended, carrying just the later changes."""
    batcher = Batcher(max_users=10, max_wait_s=0)
    _fill(batcher, ["a"])
    running = batcher.take(now=0.0)
    assert running is not None
    _fill(batcher, ["a", "b", "a"], start=1)
    later = batcher.take(now=0.0)
    assert later is not None and list(later.uids) == ["b"]
    assert batcher.take(now=0.0) is None
    assert not batcher.ready(10.0, force=True)
    batcher.release(running)
    assert batcher.ready(10.0)
    last = batcher.take(now=10.0)
    assert last is not None and list(last.units["a"].offsets) == [1, 3]


@pytest.mark.parametrize(
    ("now", "max_users", "uids", "in_flight", "ready"),
    [
        (0.5, 10, ["a"], [], False),
        (1.0, 10, ["a"], [], True),
        (0.0, 2, ["a", "b"], [], True),
        (5.0, 10, ["a"], ["a"], False),
        (0.0, 10, [], [], False),
        (0.0, 2, ["a", "b", "c"], ["a"], True),
        (0.0, 2, ["a", "b"], ["a"], False),
    ],
    ids=[
        "young",
        "waited",
        "full",
        "only-in-flight",
        "empty",
        "full-without-the-one-in-flight",
        "not-full-without-the-one-in-flight",
    ],
)
def test_ready_when_full_or_waited(now, max_users, uids, in_flight, ready):
    """A batch goes when max_users users may go, or when the oldest waited max_wait; users
    whose job runs do not count."""
    batcher = Batcher(max_users=max_users, max_wait_s=1.0)
    if in_flight:
        _fill(batcher, in_flight, start=100)
        assert batcher.take(now=-10.0) is not None
    _fill(batcher, uids)
    assert batcher.ready(now) is ready


def test_partial_batches_go_at_most_once_per_max_wait():
    """Users held back behind their running job do not trickle out as tiny jobs."""
    batcher = Batcher(max_users=100, max_wait_s=1.0)
    _fill(batcher, ["a", "b"])
    assert batcher.ready(1.0)
    assert batcher.take(now=1.0) is not None
    _fill(batcher, ["c"], now=0.0, start=2)
    assert not batcher.ready(1.5), "c waited long enough, but a batch just went"
    assert batcher.ready(2.0)


def test_fenced_partitions_units_wait():
    """Records of a partition a previous owner's job may still write to are not sent."""
    batcher = Batcher(max_users=10, max_wait_s=0)
    batcher.add(P0, 0, change("a"), 0)
    batcher.add(P1, 0, change("b"), 0)
    batch = batcher.take(now=0.0, fenced={P1})
    assert batch is not None and list(batch.uids) == ["a"]
    assert len(batcher) == 1


def test_a_drain_sends_the_draining_partitions_only():
    """Before a revoke, the leaving partition's users go however young they are; the others
    keep waiting."""
    batcher = Batcher(max_users=10, max_wait_s=60)
    batcher.add(P0, 0, change("a"), 0)
    batcher.add(P1, 0, change("b"), 0)
    assert not batcher.ready(0.0)
    assert batcher.ready(0.0, force=True)
    batch = batcher.take(now=0.0, only={P1})
    assert batch is not None and list(batch.uids) == ["b"]
    assert batcher.pending_for({P0}) == 1 and batcher.pending_for({P1}) == 0


def test_dropping_a_partition_forgets_its_users_and_their_blocking():
    """A revoked partition's pending users are the next owner's: forgotten, and not counted
    as waiting behind jobs any more."""
    batcher = Batcher(max_users=10, max_wait_s=0)
    batcher.add(P1, 0, change("a"), 0)
    running = batcher.take(now=0.0)
    assert running is not None
    batcher.add(P0, 0, change("b"), 0)
    batcher.add(P1, 1, change("a"), 0)
    assert batcher.drop_partitions({P1}) == 1
    assert batcher.eligible() == 1
    batcher.release(running)
    assert batcher.eligible() == 1
    batch = batcher.take(now=0.0)
    assert batch is not None and list(batch.uids) == ["b"]


def test_a_user_on_two_partitions_goes_in_one_batch_at_a_time():
    """A uid with records on two partitions (two topics) is never in two jobs at once: its
    second unit waits for the first one's job."""
    batcher = Batcher(max_users=10, max_wait_s=0)
    batcher.add(P0, 0, change("a", plan="x"), 0)
    batcher.add(P1, 0, change("a", plan="y"), 0)
    first = batcher.take(now=0.0)
    assert first is not None and first.units["a"].tp == P0
    assert batcher.take(now=0.0) is None
    assert batcher.eligible() == 0
    batcher.release(first)
    second = batcher.take(now=0.0)
    assert second is not None and second.units["a"].tp == P1


@pytest.mark.parametrize(
    ("max_users", "accepted"),
    [(0, False), (1, True), (50_000, True), (50_001, False)],
    ids=["zero", "one", "api-limit", "over-api-limit"],
)
def test_max_users_bounds(max_users, accepted):
    """FullStory takes at most 50,000 users a batch."""
    if accepted:
        assert Batcher(max_users=max_users, max_wait_s=1).max_users == max_users
    else:
        with pytest.raises(ValueError):
            Batcher(max_users=max_users, max_wait_s=1)


def test_every_unit_of_users_in_flight_counts_as_held():
    """Several users' later records arriving while their job runs all wait: none of them
    makes a batch look ready, and all of them go once the job ended."""
    batcher = Batcher(max_users=2, max_wait_s=60)
    _fill(batcher, ["a", "b"])
    running = batcher.take(now=0.0)
    assert running is not None
    _fill(batcher, ["a", "b", "c"], start=2)
    assert batcher.eligible() == 1
    assert not batcher.ready(0.0)
    batcher.release(running)
    assert batcher.eligible() == 3
    assert batcher.ready(0.0)


# -- deletes -------------------------------------------------------------------------------


def test_a_delete_takes_over_the_users_pending_changes_unsent():
    """Upserts then a delete of one user in a window: one delete unit standing for every
    record (acknowledged with it), no upsert left to send; other users are untouched."""
    batcher = Batcher(max_users=10, max_wait_s=0.0)
    unit = batcher.add(P0, 0, change("a", plan="p0"), 0.0)
    batcher.add(P0, 1, change("b"), 0.0)
    assert batcher.delete(P0, 2, "a", 0.0) is None  # joined the unit the watermark tracks
    assert batcher.deletes_waiting() == 1
    deletes = batcher.take_deletes()
    assert deletes is not None and deletes.deletes
    assert deletes.units["a"] is unit and unit.deletes
    assert list(unit.offsets) == [0, 2]
    assert unit.update.to_request() == {"uid": "a"}
    upserts = batcher.take(now=1.0)
    assert upserts is not None and list(upserts.uids) == ["b"]


def test_changes_after_a_pending_delete_wait_behind_it_until_it_is_released():
    """A re-created user's change starts a span of its own, goes in no batch while the delete
    waits or runs, and is sent (with only what came after the delete) once it was released."""
    batcher = Batcher(max_users=10, max_wait_s=0.0)
    assert batcher.delete(P0, 0, "a", 0.0) is not None
    successor = batcher.add(P0, 1, change("a", plan="new"), 0.0)
    assert successor is not None and successor.first == 1
    assert batcher.take(now=5.0) is None
    deletes = batcher.take_deletes()
    assert deletes is not None
    assert batcher.take(now=5.0) is None, "the re-created user went while its delete runs"
    batcher.release(deletes)
    batch = batcher.take(now=5.0)
    assert batch is not None and batch.units["a"] is successor
    assert successor.update.to_request()["properties"] == {"plan": "new"}


def test_a_user_deleted_again_after_its_re_creation_is_one_delete():
    batcher = Batcher(max_users=10, max_wait_s=0.0)
    unit = batcher.delete(P0, 0, "a", 0.0)
    successor = batcher.add(P0, 1, change("a"), 0.0)
    assert batcher.delete(P0, 2, "a", 0.0) is None
    deletes = batcher.take_deletes()
    assert deletes is not None and deletes.units["a"] is unit
    assert list(unit.offsets) == [0, 1, 2]
    assert unit.spans() == [unit, successor], "the re-creation's span is acknowledged with it"
    assert len(batcher) == 0


def test_a_delete_waits_while_its_user_is_in_flight():
    batcher = Batcher(max_users=10, max_wait_s=0.0)
    batcher.add(P0, 0, change("a"), 0.0)
    running = batcher.take(now=0.0)
    assert running is not None
    batcher.delete(P0, 1, "a", 0.0)
    assert batcher.take_deletes() is None
    batcher.release(running)
    deletes = batcher.take_deletes()
    assert deletes is not None and list(deletes.uids) == ["a"]


def test_deletes_of_partitions_that_moved_away_are_forgotten():
    batcher = Batcher(max_users=10, max_wait_s=0.0)
    batcher.delete(P0, 0, "a", 0.0)
    batcher.add(P0, 1, change("a"), 0.0)
    batcher.delete(P1, 0, "b", 0.0)
    assert batcher.pending_for({P0}) == 1
    assert batcher.drop_partitions({P0}) == 1
    assert len(batcher) == 1
    deletes = batcher.take_deletes()
    assert deletes is not None and list(deletes.uids) == ["b"]


def _batch_of(records: list[tuple[tuple[str, int], int, str]]):
    batcher = Batcher(max_users=10, max_wait_s=0.0)
    for tp, offset, uid in records:
        batcher.add(tp, offset, change(uid, plan="A"), 0.0)
    batch = batcher.take(now=0.0)
    assert batch is not None
    return batch


def test_a_batch_formed_again_from_the_same_records_names_them_alike_and_no_other_does():
    """The records' digest is half of each POST's idempotency key: the same records merged
    again (after a crash) name the same batch, so its key takes over the job the first POST
    made; records at other offsets or partitions (a user changed back to an earlier value,
    with the very same body) name another batch, so FullStory never answers them with the
    first job."""
    first = _batch_of([(P0, 0, "a"), (P0, 1, "b"), (P0, 2, "a")])
    again = _batch_of([(P0, 0, "a"), (P0, 1, "b"), (P0, 2, "a")])
    assert first.records_digest() == again.records_digest()
    others = [
        [(P0, 3, "a"), (P0, 4, "b"), (P0, 5, "a")],  # later offsets, same body
        [(P1, 0, "a"), (P1, 1, "b"), (P1, 2, "a")],  # another partition
        [(("users2", 0), 0, "a"), (("users2", 0), 1, "b"), (("users2", 0), 2, "a")],
        [(P0, 0, "a"), (P0, 1, "b")],  # fewer records of the same users
        [(P0, 0, "a"), (P0, 2, "b"), (P0, 1, "a")],  # the same offsets, others merged
    ]
    digests = {first.records_digest()} | {_batch_of(r).records_digest() for r in others}
    assert len(digests) == 1 + len(others)
