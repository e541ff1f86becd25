"""The offset watermark (``worker.loop.commit.watermark``): pure."""

import tracemalloc

import pytest

from worker.loop.commit.watermark import OffsetTracker, Span

TP = ("users", 0)
P0, P1 = ("users", 0), ("users", 1)


def _tracker(*offsets: int) -> tuple[OffsetTracker, dict[int, Span]]:
    """A record per offset, each its own span."""
    tracker = OffsetTracker()
    tracker.assign([TP])
    spans = {}
    for offset in offsets:
        spans[offset] = Span(offset)
        tracker.track(TP, offset, offset + 1, [spans[offset]])
    return tracker, spans


def test_commit_stops_below_the_first_unacknowledged_record():
    """An acknowledged later record never lets the commit skip an earlier one."""
    tracker, spans = _tracker(10, 11, 12)
    spans[10].acked = spans[12].acked = True
    assert tracker.committable() == {TP: 11}
    spans[11].acked = True
    assert tracker.committable() == {TP: 13}


def test_a_span_holds_the_commit_at_its_first_record_until_it_is_acknowledged():
    """A user's records merged into one span (offsets 3 and 7) keep the commit at 3 while
    another user's record between them (5) is acknowledged first, and release it together."""
    tracker = OffsetTracker()
    tracker.assign([TP])
    merged, other = Span(3), Span(5)
    tracker.track(TP, 3, 4, [merged])
    tracker.track(TP, 5, 6, [other])
    tracker.track(TP, 7, 8)  # joins ``merged``
    other.acked = True
    assert tracker.position(TP) == 3
    merged.acked = True
    assert tracker.position(TP) == 8


def test_nothing_acknowledged_commits_the_first_offset_only_once():
    """Before any acknowledgement the commit is the first offset seen (no progress past it)."""
    tracker, _ = _tracker(5, 6)
    assert tracker.committable() == {TP: 5}
    tracker.mark_committed({TP: 5})
    assert tracker.committable() == {}


def test_gaps_in_offsets_are_fine():
    """Compacted topics skip offsets; the commit is 1 + the last acknowledged one."""
    tracker, spans = _tracker(3, 7, 20)
    for span in spans.values():
        span.acked = True
    assert tracker.committable() == {TP: 21}


def test_revoked_partition_is_never_committed_and_ignores_late_acks():
    """After a revoke nothing is offered for the partition, and its records are not taken."""
    tracker, spans = _tracker(1, 2)
    tracker.revoke([TP])
    spans[1].acked = True
    assert tracker.committable() == {}
    assert tracker.track(TP, 3, 4, [Span(3)]) is False
    assert not tracker.owns(TP)


def test_commit_offers_only_moved_partitions():
    """A partition whose watermark did not move since the last commit is not committed again."""
    tracker, spans = _tracker(0)
    spans[0].acked = True
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == {}
    later = Span(1)
    tracker.track(TP, 1, 2, [later])
    later.acked = True
    assert tracker.committable() == {TP: 2}


def test_a_failed_commit_is_offered_again():
    """When Kafka reports a queued commit failed, the same watermark is committed again."""
    tracker, spans = _tracker(0)
    spans[0].acked = True
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == {}
    tracker.uncommit([TP])
    assert tracker.committable() == {TP: 1}


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(11, True), (10, False), (9, False)],
    ids=["next-offset", "same-offset-again", "older-offset"],
)
def test_an_offset_not_above_the_last_tracked_one_is_refused(offset, accepted):
    """A record delivered twice or out of order stops the worker with a message naming it,
    instead of being counted twice."""
    tracker, _ = _tracker(10)
    if accepted:
        assert tracker.track(TP, offset, offset + 1, [Span(offset)]) is True
    else:
        with pytest.raises(ValueError, match=f"offset {offset} of .* arrived out of order"):
            tracker.track(TP, offset, offset + 1, [Span(offset)])


def test_revoking_a_partition_not_owned_is_a_no_op():
    """A rebalance callback naming a partition this replica already dropped (lost, then
    revoked on close) does not crash the loop, and leaves the other partitions alone."""
    tracker, _ = _tracker(1)
    tracker.revoke([P1])
    tracker.revoke([P1])
    assert tracker.owned() == [TP]


@pytest.mark.parametrize(
    ("tracked", "acked", "position"),
    [((), (), None), ((4, 5), (), 4), ((4, 5), (4,), 5), ((4, 5), (4, 5), 6)],
    ids=["no-record-yet", "nothing-acked", "first-acked", "all-acked"],
)
def test_position_is_the_first_unacknowledged_offset(tracked, acked, position):
    """A commit made only to name new jobs carries the watermark: never past an unacknowledged
    record, and none before the first record."""
    tracker, spans = _tracker(*tracked)
    for offset in acked:
        spans[offset].acked = True
    assert tracker.position(TP) == position


def test_position_of_a_partition_not_owned_is_none():
    """A partition that moved away has no watermark to commit."""
    tracker, _ = _tracker(1)
    tracker.revoke([TP])
    assert tracker.position(TP) is None


def test_partitions_without_records_are_not_offered():
    """A partition assigned but not yet read from is never committed (there is no offset to
    commit), and does not stop the others' commits."""
    tracker = OffsetTracker()
    tracker.assign([P0, P1])
    span = Span(7)
    tracker.track(P1, 7, 8, [span])
    span.acked = True
    assert tracker.committable() == {P1: 8}


def test_committable_is_limited_to_the_partitions_asked_for():
    """A revoke commits the leaving partitions' prefix only; partitions not owned are skipped."""
    tracker = OffsetTracker()
    tracker.assign([P0, P1])
    for tp in (P0, P1):
        span = Span(0)
        tracker.track(tp, 0, 1, [span])
        span.acked = True
    assert tracker.committable([P1, ("users", 9)]) == {P1: 1}
    assert tracker.committable([("users", 9), P1]) == {P1: 1}


def test_acknowledged_spans_are_forgotten_once_the_watermark_passed_them():
    """A worker that runs for weeks keeps its memory flat: the tracker holds only the spans
    not yet behind the watermark."""
    tracker, _ = _tracker()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for offset in range(20_000):
            span = Span(offset)
            tracker.track(TP, offset, offset + 1, [span])
            span.acked = True
            tracker.position(TP)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert tracker.committable() == {TP: 20_000}
    assert grown < 100_000, f"{grown} bytes kept after 20,000 acknowledged records"
