"""Micro-batching by uid. Pure: the caller passes the time and the uids in flight.

A batch holds at most ``max_users`` distinct uids, each folded from its records in
arrival (offset) order. A uid that is in an in-flight job stays out of new batches, and so
do all its later records, so two in-flight jobs never contain the same uid and a uid's
changes reach FullStory in order.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from worker.mapping import UserUpdate
from worker.records import SourceRecord, TopicPartition, UserChange

_batch_ids = itertools.count(1)


@dataclass(slots=True)
class Batch:
    """One import job's worth of users, and the records it acknowledges when it ends."""

    id: int
    updates: dict[str, UserUpdate] = field(default_factory=dict)
    records: dict[str, list[SourceRecord]] = field(default_factory=dict)

    @property
    def uids(self) -> Collection[str]:
        return self.updates.keys()

    def requests(self) -> list[dict[str, Any]]:
        return [update.to_request() for update in self.updates.values()]

    def all_records(self) -> Iterable[SourceRecord]:
        return itertools.chain.from_iterable(self.records.values())

    def partitions(self) -> set[TopicPartition]:
        return {record.tp for record in self.all_records()}

    def record_count(self) -> int:
        return sum(len(records) for records in self.records.values())


@dataclass(slots=True)
class _Pending:
    record: SourceRecord
    change: UserChange
    arrived: float


class Batcher:
    """Buffers decoded records and cuts batches when full or when the oldest has waited."""

    def __init__(self, max_users: int, max_wait_s: float) -> None:
        if not 1 <= max_users <= 50_000:
            raise ValueError("max_users must be within 1..50000")
        self.max_users = max_users
        self.max_wait_s = max_wait_s
        self._pending: list[_Pending] = []
        self._uid_counts: Counter[str] = Counter()
        self._last_cut = float("-inf")

    def __len__(self) -> int:
        """Buffered records (not yet in a batch)."""
        return len(self._pending)

    def add(self, record: SourceRecord, change: UserChange, now: float) -> None:
        self._pending.append(_Pending(record, change, now))
        self._uid_counts[change.uid] += 1

    def _eligible_uids(self, blocked: Collection[str]) -> int:
        if len(blocked) < len(self._uid_counts):
            return len(self._uid_counts) - sum(1 for uid in blocked if uid in self._uid_counts)
        return sum(1 for uid in self._uid_counts if uid not in blocked)

    def ready(self, now: float, blocked: Collection[str], force: bool = False) -> bool:
        """True when a batch should go now: full, or the oldest record has waited enough.

        ``force`` (draining before a stop or a revoke): whenever any uid is eligible.
        """
        if not self._pending:
            return False
        if force:
            return self._eligible_uids(blocked) > 0
        # A partial batch goes at most once per max_wait: records held back behind a running
        # job of their uid are old when it ends, and must not trickle out as tiny jobs.
        aged = (
            now - self._pending[0].arrived >= self.max_wait_s
            and now - self._last_cut >= self.max_wait_s
        )
        if not aged and len(self._uid_counts) < self.max_users:
            return False  # cheap answer for the common case, without counting blocked uids
        eligible = self._eligible_uids(blocked)
        return eligible > 0 and (aged or eligible >= self.max_users)

    def take(
        self,
        blocked: Collection[str],
        now: float,
        fenced: Collection[TopicPartition] = (),
        only: Collection[TopicPartition] | None = None,
    ) -> Batch | None:
        """Cut the next batch from the buffer, leaving blocked and overflow uids behind.

        Records of ``fenced`` partitions (a previous owner's jobs may still run) stay too,
        and so do records outside ``only`` when it is given.

        Records of a uid that is blocked, or that did not fit, stay buffered in order;
        records of a uid already in the batch join it even after an overflow uid, since
        uids are independent of each other.
        """
        batch = Batch(id=next(_batch_ids))
        left: list[_Pending] = []
        held: set[str] = set()
        for pending in self._pending:
            uid = pending.change.uid
            update = batch.updates.get(uid)
            if update is None:
                if (
                    uid in held
                    or uid in blocked
                    or len(batch.updates) >= self.max_users
                    or pending.record.tp in fenced
                    or (only is not None and pending.record.tp not in only)
                ):
                    held.add(uid)
                    left.append(pending)
                    continue
                update = batch.updates[uid] = UserUpdate(uid=uid)
                batch.records[uid] = []
            update.apply(pending.change)
            batch.records[uid].append(pending.record)
            self._uid_counts[uid] -= 1
            if not self._uid_counts[uid]:
                del self._uid_counts[uid]
        self._pending = left
        if not batch.updates:
            return None
        self._last_cut = now
        return batch

    def buffered_for(self, partitions: Collection[TopicPartition]) -> int:
        """Buffered records of ``partitions``."""
        return sum(1 for p in self._pending if p.record.tp in partitions)

    def drop_partitions(self, partitions: Collection[TopicPartition]) -> int:
        """Forget buffered records of partitions this replica no longer owns."""
        keep = [p for p in self._pending if p.record.tp not in partitions]
        dropped = len(self._pending) - len(keep)
        self._pending = keep
        self._uid_counts = Counter(p.change.uid for p in keep)
        return dropped
