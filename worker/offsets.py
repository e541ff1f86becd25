"""The offset watermark: what may be committed. Pure.

Every consumed record is ``track``ed in offset order and later ``ack``ed (imported by
FullStory, or written to the DLQ). ``committable`` gives, per owned partition, 1 + the
highest offset below which everything was acknowledged, never past an unacknowledged
record. Offsets need not be contiguous (compaction, transaction markers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from worker.records import TopicPartition


@dataclass(slots=True)
class _PartitionState:
    outstanding: deque[int] = field(default_factory=deque)
    acked: set[int] = field(default_factory=set)
    next_offset: int | None = None  # the watermark: first offset not yet acknowledged
    committed: int | None = None

    def advance(self) -> None:
        while self.outstanding and self.outstanding[0] in self.acked:
            offset = self.outstanding.popleft()
            self.acked.discard(offset)
            self.next_offset = offset + 1
        if self.outstanding:
            self.next_offset = self.outstanding[0]


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

    def track(self, tp: TopicPartition, offset: int) -> bool:
        """Note a consumed record (offsets of a partition arrive increasing).

        Returns False, tracking nothing, for a partition this replica does not own.
        """
        state = self._parts.get(tp)
        if state is None:
            return False
        if state.outstanding and offset <= state.outstanding[-1]:
            raise ValueError(f"offset {offset} of {tp} arrived out of order")
        if not state.outstanding:
            state.next_offset = offset
        state.outstanding.append(offset)
        return True

    def ack(self, tp: TopicPartition, offset: int) -> bool:
        """Acknowledge one record. Returns False (and ignores it) for a partition not owned."""
        state = self._parts.get(tp)
        if state is None:
            return False
        state.acked.add(offset)
        state.advance()
        return True

    def position(self, tp: TopicPartition) -> int | None:
        """The current watermark of ``tp`` (None before its first record)."""
        state = self._parts.get(tp)
        return state.next_offset if state else None

    def pending(self, tp: TopicPartition) -> int:
        state = self._parts.get(tp)
        return len(state.outstanding) if state else 0

    def committable(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Offsets to commit now: those that moved since the last ``mark_committed``."""
        result: dict[TopicPartition, int] = {}
        for tp in self._parts if partitions is None else partitions:
            state = self._parts.get(tp)
            if state is None or state.next_offset is None:
                continue
            if state.committed is None or state.next_offset > state.committed:
                result[tp] = state.next_offset
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
