"""When the loop takes records in (``Backpressure``) and when it holds users back
(``BacklogHold``): the thresholds a user sees as memory held and batches sent."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from worker.loop.flow import BacklogHold, Backpressure
from worker.records import TopicPartition

P0, P1 = ("users", 0), ("users", 1)


class Source:
    """What backpressure asks of the source: which partitions are fetched."""

    def __init__(self) -> None:
        self.paused: set[TopicPartition] = set()
        self.calls: list[tuple[str, set[TopicPartition]]] = []

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self.calls.append(("pause", set(partitions)))
        self.paused |= set(partitions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self.calls.append(("resume", set(partitions)))
        self.paused -= set(partitions)


def test_paused_partitions_resume_only_once_half_the_bound_is_left():
    """At the bound every partition pauses; they stay paused while more than half the bound
    waits (no pause-resume flapping around the bound), and resume at half."""
    source, backpressure = Source(), Backpressure(limit=10)
    backpressure.apply(source, 9, {P0, P1})
    assert source.paused == set()
    backpressure.apply(source, 10, {P0, P1})
    assert source.paused == {P0, P1}
    for waiting in (9, 7, 6):
        backpressure.apply(source, waiting, {P0, P1})
        assert source.paused == {P0, P1}, f"resumed with {waiting} of 10 waiting"
    backpressure.apply(source, 5, {P0, P1})
    assert source.paused == set() and backpressure.paused == set()


def test_nothing_paused_means_nothing_to_resume():
    """Below the bound with nothing paused, the source is left alone turn after turn."""
    source, backpressure = Source(), Backpressure(limit=10)
    for waiting in (0, 3, 5):
        backpressure.apply(source, waiting, {P0, P1})
    assert source.calls == []


def test_a_revoked_partition_is_resumed_and_forgotten_the_others_stay_paused():
    """Only the partition moving away has its pause undone; the others stay paused until
    few enough users wait."""
    source, backpressure = Source(), Backpressure(limit=10)
    backpressure.apply(source, 10, {P0, P1})
    backpressure.forget(source, [P0, ("users", 7)])
    assert source.calls[-1] == ("resume", {P0})
    assert source.paused == {P1} and backpressure.paused == {P1}


@pytest.mark.parametrize(
    ("lags", "holding"),
    [
        ([5_000], False),  # started behind, but not far: batches go as usual
        ([9_999], False),
        ([10_000], True),  # the backlog threshold itself holds
        ([10_000, 5_000], True),  # on the way down: still held
        ([10_000, 101], True),
        ([10_000, 100], False),  # caught up at the threshold itself
        ([10_000, 100, 5_000], False),  # falling behind a little does not hold again
    ],
    ids=["start-near", "below-threshold", "at-threshold", "draining", "almost", "caught-up",
         "behind-again-a-little"],
)  # fmt: skip
def test_the_hold_starts_at_the_backlog_lag_and_ends_once_caught_up(lags, holding):
    """From BACKLOG_LAG records behind until CAUGHT_UP_LAG, users keep merging (held);
    outside that window, batches go as usual."""
    hold = BacklogHold(backlog_lag=10_000, caught_up_lag=100)
    seen = [hold.holding(lag) for lag in lags]
    assert seen[-1] is holding
