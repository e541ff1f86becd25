"""The offset watermark: what may be committed. Pure.

Records are acknowledged in ``Span``s: the records of one user merged into one pending
update (acknowledged together when its job ended), or one record on its way to the DLQ.
A span starts at its first record's offset; later records may join it. ``committable``
gives, per owned partition, the first offset of the oldest span not yet acknowledged (every
record below it belongs to an acknowledged span), or 1 + the last record tracked when all
are. Memory is per span, not per record. Offsets need not be contiguous (compaction,
transaction markers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from worker.records import TopicPartition


class Span:
    """Records acknowledged together; ``acked`` is set once, when they all are."""

    __slots__ = ("acked", "first")

    def __init__(self, first: int) -> None:
        self.first = first
        self.acked = False


@dataclass(slots=True)
class _PartitionState:
    spans: deque[Span] = field(default_factory=deque)  # by first offset
    end: int | None = None  # 1 + the last offset tracked
    committed: int | None = None

    def watermark(self) -> int | None:
        spans = self.spans
        while spans and spans[0].acked:
            spans.popleft()
        return spans[0].first if spans else self.end


class OffsetTracker:
    """Per-partition acknowledged prefix for the partitions this replica owns."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, _PartitionState] = {}

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._parts[tp] = _PartitionState()

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._parts.pop(tp, None)

    def owned(self) -> list[TopicPartition]:
        return list(self._parts)

    def owns(self, tp: TopicPartition) -> bool:
        return tp in self._parts

    def track(self, tp: TopicPartition, first: int, end: int, spans: Iterable[Span] = ()) -> bool:
        """Note the records of ``tp`` from ``first`` up to ``end`` (exclusive), consumed in
        order: ``spans`` start among them (in offset order); the others joined spans already
        tracked. Returns False, tracking nothing, for a partition this replica does not own.
        """
        state = self._parts.get(tp)
        if state is None:
            return False
        if state.end is not None and first < state.end:
            raise ValueError(f"offset {first} of {tp} arrived out of order")
        state.end = end
        state.spans.extend(spans)
        return True

    def position(self, tp: TopicPartition) -> int | None:
        """The current watermark of ``tp`` (None before its first record)."""
        state = self._parts.get(tp)
        return state.watermark() if state else None

    def read(self, tp: TopicPartition) -> int | None:
        """1 + the last offset of ``tp`` tracked (read and merged); None before the first."""
        state = self._parts.get(tp)
        return state.end if state else None

    def committable(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Offsets to commit now: those that moved since the last ``mark_committed``."""
        result: dict[TopicPartition, int] = {}
        for tp in self._parts if partitions is None else partitions:
            state = self._parts.get(tp)
            if state is None:
                continue
            watermark = state.watermark()
            if watermark is None:
                continue
            if state.committed is None or watermark > state.committed:
                result[tp] = watermark
        return result

    def uncommit(self, partitions: Iterable[TopicPartition]) -> None:
        """A commit failed: offer these partitions' watermarks again."""
        for tp in partitions:
            state = self._parts.get(tp)
            if state is not None:
                state.committed = None

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            state = self._parts.get(tp)
            if state is not None:
                state.committed = offset
