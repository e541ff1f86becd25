"""What one read-back pass of a partition reads and keeps: pure, no I/O.

A pass reads every wanted offset of one partition with one consumer, forward. Wanted offsets
outside the partition's watermarks are missing without a read (retention removed those below
the low watermark; nothing is at or past the high one). The rest are read in *spans*: a span
starts at a wanted offset and ends at a wanted offset, and a gap wider than ``max_gap``
between two wanted offsets starts a new span (the consumer is moved there instead of reading
through records nobody asked for).

What a pass keeps is bounded (``Budget``): a record over the per-record bound, or one that
would take the pass past its total, is kept without its key, value and headers, saying
why (``SourceRecord.omitted``, its letter's ``dlq.value.omitted``); its dead letter still
names its coordinates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from worker.records import SourceRecord


@dataclass(frozen=True, slots=True)
class Span:
    """Wanted offsets ``first``..``last`` (both wanted) of one partition, read forward."""

    first: int
    last: int


def present(offsets: Iterable[int], low: int, high: int) -> list[int]:
    """The wanted offsets the partition may still hold (``low <= o < high``), increasing and
    once each."""
    return sorted({o for o in offsets if low <= o < high})


def spans(offsets: Sequence[int], max_gap: int) -> list[Span]:
    """``offsets`` (increasing) cut where the next wanted offset is more than ``max_gap``
    past the previous one."""
    found: list[Span] = []
    for offset in offsets:
        if found and offset - found[-1].last <= max_gap:
            found[-1] = Span(found[-1].first, offset)
        else:
            found.append(Span(offset, offset))
    return found


def record_size(record: SourceRecord) -> int:
    """The bytes a kept record holds: key, value, header names and values."""
    size = len(record.key or b"") + len(record.value or b"")
    return size + sum(len(name) + len(value or b"") for name, value in record.headers)


class Budget:
    """The bytes one pass may keep: ``per_record`` at most each, ``total`` at most in all."""

    def __init__(self, per_record: int, total: int) -> None:
        self.per_record = per_record
        self.left = total

    def keep(self, record: SourceRecord) -> SourceRecord:
        """``record`` if it fits (then counted), else its stand-in without key, value and
        headers, naming its size and the bound it is over."""
        size = record_size(record)
        if size > self.per_record:
            why = f"{size} bytes: over the read-back bound of {self.per_record} a record"
        elif size > self.left:
            why = f"{size} bytes: over what one read-back pass keeps"
        else:
            self.left -= size
            return record
        return SourceRecord(
            record.topic,
            record.partition,
            record.offset,
            None,
            None,
            omitted=why,
        )
