import pytest

from tests.unit.factories import change, record
from worker.batch import Batcher


def _fill(batcher: Batcher, uids: list[str], now: float = 0.0) -> None:
    for offset, uid in enumerate(uids):
        batcher.add(record(offset), change(uid, plan=f"p{offset}"), now)


def test_events_of_one_uid_merge_in_offset_order():
    """Two events of a uid become one request object with the later value."""
    batcher = Batcher(max_users=10, max_wait_s=1.0)
    _fill(batcher, ["a", "b", "a"])
    batch = batcher.take(blocked=set(), now=0.0)
    assert batch is not None
    assert [r["uid"] for r in batch.requests()] == ["a", "b"]
    assert batch.updates["a"].properties == {"plan": "p2"}
    assert [r.offset for r in batch.records["a"]] == [0, 2]


@pytest.mark.parametrize(
    ("max_users", "uids", "expected_first", "left"),
    [
        (1, ["a", "b"], ["a"], 1),
        (2, ["a", "b", "c", "a"], ["a", "b"], 1),
        (2, ["a", "a", "a"], ["a"], 0),
    ],
    ids=["one-per-batch", "overflow-uid-waits-later-a-joins", "same-uid-counts-once"],
)
def test_batch_never_exceeds_max_users(max_users, uids, expected_first, left):
    """A batch holds at most max_users distinct uids; the rest stay buffered."""
    batcher = Batcher(max_users=max_users, max_wait_s=0)
    _fill(batcher, uids)
    batch = batcher.take(blocked=set(), now=0.0)
    assert batch is not None
    assert list(batch.uids) == expected_first
    assert len(batcher) == left


def test_blocked_uid_and_its_later_events_stay_behind():
    """A uid in an in-flight job is not put in a second job; its order is kept for later."""
    batcher = Batcher(max_users=10, max_wait_s=0)
    _fill(batcher, ["a", "b", "a"])
    batch = batcher.take(blocked={"a"}, now=0.0)
    assert batch is not None and list(batch.uids) == ["b"]
    later = batcher.take(blocked=set(), now=0.0)
    assert later is not None and [r.offset for r in later.records["a"]] == [0, 2]


@pytest.mark.parametrize(
    ("now", "max_users", "uids", "blocked", "ready"),
    [
        (0.5, 10, ["a"], set(), False),
        (1.0, 10, ["a"], set(), True),
        (0.0, 2, ["a", "b"], set(), True),
        (5.0, 10, ["a"], {"a"}, False),
        (0.0, 10, [], set(), False),
    ],
    ids=["too-young", "waited-enough", "full", "only-blocked", "empty"],
)
def test_ready_when_full_or_waited(now, max_users, uids, blocked, ready):
    """A batch goes when full or once its oldest record waited max_wait, never when empty."""
    batcher = Batcher(max_users=max_users, max_wait_s=1.0)
    _fill(batcher, uids, now=0.0)
    assert batcher.ready(now, blocked) is ready


def test_drop_partitions_forgets_revoked_records():
    """Records of a revoked partition leave the buffer (the new owner reads them again)."""
    batcher = Batcher(max_users=10, max_wait_s=0)
    batcher.add(record(0, partition=0), change("a"), 0)
    batcher.add(record(0, partition=1), change("b"), 0)
    assert batcher.drop_partitions({("users", 1)}) == 1
    batch = batcher.take(blocked=set(), now=0.0)
    assert batch is not None and list(batch.uids) == ["a"]


def test_max_users_is_limited_by_the_api():
    """FullStory takes at most 50,000 request objects per batch."""
    with pytest.raises(ValueError):
        Batcher(max_users=50_001, max_wait_s=1)


def test_partial_batches_go_at_most_once_per_max_wait():
    """Records held behind a running job do not trickle out as a stream of tiny jobs."""
    batcher = Batcher(max_users=100, max_wait_s=1.0)
    _fill(batcher, ["a", "b"], now=0.0)
    assert batcher.ready(1.0, blocked={"b"})
    batch = batcher.take(blocked={"b"}, now=1.0)
    assert batch is not None and list(batch.uids) == ["a"]
    assert not batcher.ready(1.5, blocked=set()), "b became eligible, but a batch just went"
    assert batcher.ready(2.0, blocked=set())


def test_fenced_partition_records_wait():
    """Records of a partition whose previous owner's jobs still run are held back."""
    batcher = Batcher(max_users=10, max_wait_s=0)
    batcher.add(record(0, partition=0), change("a"), 0)
    batcher.add(record(0, partition=1), change("b"), 0)
    batch = batcher.take(blocked=set(), now=0.0, fenced={("users", 1)})
    assert batch is not None and list(batch.uids) == ["a"]
    assert len(batcher) == 1


def test_flush_sends_young_records_of_the_draining_partitions_only():
    """Before a stop or revoke, buffered records go at once, but only the leaving partitions'."""
    batcher = Batcher(max_users=10, max_wait_s=60)
    batcher.add(record(0, partition=0), change("a"), 0)
    batcher.add(record(0, partition=1), change("b"), 0)
    assert not batcher.ready(0.0, blocked=set())
    assert batcher.ready(0.0, blocked=set(), force=True)
    batch = batcher.take(blocked=set(), now=0.0, only={("users", 1)})
    assert batch is not None and list(batch.uids) == ["b"]
    assert batcher.buffered_for({("users", 0)}) == 1


@pytest.mark.parametrize(
    ("max_users", "accepted"),
    [(0, False), (1, True), (50_000, True), (50_001, False)],
    ids=["zero", "one", "api-maximum", "over-api-maximum"],
)
def test_max_users_bounds(max_users, accepted):
    """Every BATCH_MAX_USERS the configuration accepts (1..50000) starts a batcher."""
    if accepted:
        assert Batcher(max_users=max_users, max_wait_s=1).max_users == max_users
    else:
        with pytest.raises(ValueError):
            Batcher(max_users=max_users, max_wait_s=1)


def test_uids_cut_into_a_batch_no_longer_count_towards_the_next():
    """After a batch is cut, a new young record does not look like a full batch because of
    uids that already left: partial batches still wait for max_wait."""
    batcher = Batcher(max_users=2, max_wait_s=60)
    _fill(batcher, ["a", "a", "c"])
    batch = batcher.take(blocked=set(), now=0.0)
    assert batch is not None and sorted(batch.uids) == ["a", "c"]
    batcher.add(record(3), change("b"), 1.0)
    assert not batcher.ready(1.0, blocked=set())


@pytest.mark.parametrize(
    ("blocked", "ready"),
    [(set(), True), ({"a"}, False), ({"a", "x"}, False), ({"x", "y"}, True)],
    ids=["none-blocked", "one-of-two-blocked", "blocked-outnumber-buffered", "blocked-elsewhere"],
)
def test_a_full_batch_counts_only_uids_that_may_go(blocked, ready):
    """Before max_wait, a batch goes only when max_users uids may go now; buffered uids that
    wait behind a running job do not count."""
    batcher = Batcher(max_users=2, max_wait_s=60)
    _fill(batcher, ["a", "b"])
    assert batcher.ready(0.0, blocked) is ready


@pytest.mark.parametrize(
    ("uids", "blocked", "ready"),
    [(["a"], {"a"}, False), (["a", "b"], {"a"}, True), (["a"], set(), True)],
    ids=["only-blocked", "one-eligible", "none-blocked"],
)
def test_a_drain_sends_whenever_some_uid_may_go(uids, blocked, ready):
    """Before a stop or a revoke, even one young eligible uid goes at once; uids behind a
    running job have nothing to send yet."""
    batcher = Batcher(max_users=10, max_wait_s=60)
    _fill(batcher, uids)
    assert batcher.ready(0.0, blocked, force=True) is ready


@pytest.mark.parametrize(
    "held_by",
    [{"fenced": {("users", 1)}}, {"only": {("users", 0)}}],
    ids=["fenced-partition", "draining-the-other-partition"],
)
def test_a_uid_held_back_on_one_partition_holds_its_later_records_elsewhere(held_by):
    """A uid can move partition (partitions added to the topic remap keys): while its older
    record waits, its newer one must not reach FullStory first and be overwritten later."""
    batcher = Batcher(max_users=10, max_wait_s=0)
    batcher.add(record(5, partition=1), change("a", plan="old"), 0)
    batcher.add(record(9, partition=0), change("a", plan="new"), 0)
    batcher.add(record(10, partition=0), change("b"), 0)
    batch = batcher.take(blocked=set(), now=0.0, **held_by)
    assert batch is not None and list(batch.uids) == ["b"]
    later = batcher.take(blocked=set(), now=0.0)
    assert later is not None and later.updates["a"].properties == {"plan": "new"}
    assert [(r.partition, r.offset) for r in later.records["a"]] == [(1, 5), (0, 9)]


def test_records_kept_by_drop_partitions_still_go():
    """After a revoke, the buffered records of the partitions still owned go when they have
    waited max_wait, as before."""
    batcher = Batcher(max_users=10, max_wait_s=1.0)
    batcher.add(record(0, partition=0), change("a"), 0)
    batcher.add(record(0, partition=1), change("b"), 0)
    batcher.drop_partitions({("users", 1)})
    assert batcher.ready(1.0, blocked=set())
