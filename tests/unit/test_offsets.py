from worker.offsets import OffsetTracker

TP = ("users", 0)


def _tracker(*offsets: int) -> OffsetTracker:
    tracker = OffsetTracker()
    tracker.assign([TP])
    for offset in offsets:
        tracker.track(TP, offset)
    return tracker


def test_commit_stops_below_the_first_unacknowledged_record():
    """An acknowledged later record never lets the commit skip an earlier failed one."""
    tracker = _tracker(10, 11, 12)
    tracker.ack(TP, 10)
    tracker.ack(TP, 12)
    assert tracker.committable() == {TP: 11}
    tracker.ack(TP, 11)
    assert tracker.committable() == {TP: 13}


def test_nothing_acknowledged_commits_the_first_offset_only_once():
    """Before any acknowledgement the commit is the first offset seen (no progress past it)."""
    tracker = _tracker(5, 6)
    assert tracker.committable() == {TP: 5}
    tracker.mark_committed({TP: 5})
    assert tracker.committable() == {}


def test_gaps_in_offsets_are_fine():
    """Compacted topics skip offsets; the commit is 1 + the last acknowledged one."""
    tracker = _tracker(3, 7, 20)
    for offset in (3, 7, 20):
        tracker.ack(TP, offset)
    assert tracker.committable() == {TP: 21}


def test_revoked_partition_is_never_committed_and_ignores_late_acks():
    """After a revoke, late acknowledgements are dropped and nothing is offered for commit."""
    tracker = _tracker(1, 2)
    tracker.revoke([TP])
    assert tracker.ack(TP, 1) is False
    assert tracker.committable() == {}
    assert tracker.track(TP, 3) is False


def test_commit_offers_only_moved_partitions():
    """A partition whose watermark did not move since the last commit is not committed again."""
    tracker = _tracker(0)
    tracker.ack(TP, 0)
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == {}
    tracker.track(TP, 1)
    tracker.ack(TP, 1)
    assert tracker.committable() == {TP: 2}


def test_a_failed_commit_is_offered_again():
    """When Kafka reports a queued commit failed, the same watermark is committed again."""
    tracker = _tracker(0)
    tracker.ack(TP, 0)
    offsets = tracker.committable()
    tracker.mark_committed(offsets)
    assert tracker.committable() == {}
    tracker.uncommit([TP])
    assert tracker.committable() == {TP: 1}
