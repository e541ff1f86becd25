"""The partitions this replica owns: the one answer to "is this partition ours?".

The group's rebalance callbacks (run inside ``consume``, on the poll loop's thread) add and
remove partitions; every stage asks here instead of keeping its own idea of ownership.
Records of a partition no longer owned are never taken in, its acknowledgements never
committed, its jobs never named. Only the poll loop calls this.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.records import TopicPartition


class Assignment:
    def __init__(self) -> None:
        self._owned: set[TopicPartition] = set()

    def __len__(self) -> int:
        return len(self._owned)

    def add(self, partitions: Iterable[TopicPartition]) -> None:
        self._owned.update(partitions)

    def remove(self, partitions: Iterable[TopicPartition]) -> None:
        """Revoked or lost: this replica acts for them no more."""
        self._owned.difference_update(partitions)

    def owns(self, tp: TopicPartition) -> bool:
        return tp in self._owned

    def owned(self) -> set[TopicPartition]:
        """A copy: the caller may keep it across a rebalance."""
        return set(self._owned)
