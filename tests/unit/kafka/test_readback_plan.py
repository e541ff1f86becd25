"""What one read-back pass reads and keeps (``worker.kafka.readback_plan``)."""

from __future__ import annotations

import pytest

from worker.kafka.readback_plan import Budget, Span, present, spans
from worker.records import SourceRecord


def test_offsets_outside_the_watermarks_are_not_read():
    """Below the low watermark retention removed them; at or past the high one nothing was
    ever written: both are missing without a read, the rest are read once each, in order."""
    assert present([9, 3, 12, 3, 2, 10], low=3, high=10) == [3, 9]
    assert present([10, 11], low=0, high=10) == []


@pytest.mark.parametrize(
    ("offsets", "max_gap", "expected"),
    [
        ([], 10, []),
        ([5], 10, [Span(5, 5)]),
        ([5, 10, 15], 5, [Span(5, 15)]),  # a gap of exactly max_gap is read through
        ([5, 11, 12], 5, [Span(5, 5), Span(11, 12)]),
        ([0, 1, 5_000, 5_001, 9_999], 2_000, [Span(0, 1), Span(5_000, 5_001), Span(9_999, 9_999)]),
    ],
    ids=["none", "one", "gap-at-the-bound", "gap-past-the-bound", "sparse"],
)  # fmt: skip
def test_a_wide_gap_between_wanted_offsets_is_skipped_not_read_through(offsets, max_gap, expected):
    """Every span starts and ends at a wanted offset, so the first record of a span is never
    skipped and no span reads past its last wanted record."""
    assert spans(offsets, max_gap) == expected


def _record(offset: int, size: int) -> SourceRecord:
    return SourceRecord("users", 2, offset, b"k", b"v" * (size - 1), headers=(("trace", b"t"),))


def test_records_within_the_bounds_are_kept_as_read():
    budget = Budget(per_record=100, total=250)
    first, second = _record(1, 90), _record(2, 90)
    assert budget.keep(first) is first
    assert budget.keep(second) is second


def test_a_record_over_the_bounds_keeps_its_coordinates_and_says_why_it_has_no_value():
    """A record larger than one record may be, or one that would take the pass past what it
    keeps in all, is kept without key, value and headers: its dead letter still names where
    the record is, and why its value is not there; what fits is kept whole."""
    budget = Budget(per_record=100, total=150)
    too_big = budget.keep(_record(1, 96))  # 96 + len("trace") + len("t") = 102
    assert (too_big.topic, too_big.partition, too_big.offset) == ("users", 2, 1)
    assert (too_big.key, too_big.value) == (None, None)
    assert too_big.headers == ()
    assert too_big.omitted == "102 bytes: over the read-back bound of 100 a record"
    kept = _record(2, 94)  # 100: exactly the bound
    assert budget.keep(kept) is kept
    over_total = budget.keep(_record(3, 60))
    assert over_total.value is None
    assert over_total.omitted == "66 bytes: over what one read-back pass keeps"
    small = _record(4, 44)  # 50: exactly what is left
    assert budget.keep(small) is small
