"""Users waiting for an import job, merged as their records arrive; batches cut from them.
Pure: the caller passes the time.

A decoded record is folded at once into its user's pending ``Unit`` (one uid's records from
one partition, merged in offset order) and is not kept: a unit holds the merged update and
the offsets it stands for (8 bytes a record), which is what acknowledging the records, or
reading them back for the DLQ, needs. Memory grows with the users waiting, not the records.

A batch holds at most ``max_users`` uids, oldest units first. The uids of a batch stay
blocked until ``release``: their later records merge into new units that wait, so two
in-flight jobs never share a uid and a uid's changes reach FullStory in order. A uid with
units on several partitions (several topics) sends them in separate batches, one at a time.

Deletes (``delete``) keep that order across a user's deletion. A delete takes over its user's
pending unit: the changes before it are never sent (upsert then delete is one delete), and
it is acknowledged with it. Changes after a pending delete wait in its ``successor`` unit
(tracked as a span of its own), which becomes an ordinary pending unit when the delete goes
out, blocked, like any unit of a uid in flight, until the delete's batch is released; the
dispatcher releases it only once the user is gone. A delete of a re-created user folds the
successor into it (``riders``: spans acknowledged with the delete). Delete batches
(``take_deletes``) hold deletes only, at most ``DELETE_BATCH_MAX``, and are cut whenever one is
eligible: never held back by the backlog hold or ``max_wait_s``.
"""

from __future__ import annotations

import hashlib
import itertools
from array import array
from collections.abc import Collection
from dataclasses import dataclass, field

from worker.events.change import UserChange
from worker.events.merge import UserUpdate
from worker.loop.commit.watermark import Span
from worker.records import TopicPartition

_batch_ids = itertools.count(1)


# Deletes in one delete batch: each is a call of its own (FullStory has no batch delete).
DELETE_BATCH_MAX = 100


class Unit(Span):
    """One uid's pending records of one partition, merged; acknowledged together. A delete
    unit (``deletes``) stands for records ending with the user's deletion."""

    __slots__ = ("arrived", "deletes", "offsets", "riders", "successor", "tp", "update")

    def __init__(self, tp: TopicPartition, offset: int, change: UserChange, now: float) -> None:
        super().__init__(offset)
        self.tp = tp
        self.update = UserUpdate(uid=change["uid"])
        self.update.apply(change)
        self.offsets = array("q", (offset,))
        self.arrived = now
        self.deletes = False
        self.successor: Unit | None = None  # a delete's later changes, waiting for it
        self.riders: list[Span] = []  # spans acknowledged with this one

    @classmethod
    def deletion(cls, tp: TopicPartition, offset: int, uid: str, now: float) -> Unit:
        nothing: UserChange = {
            "uid": uid, "changed_at": 0, "display_name": None, "email": None, "properties": {}
        }  # fmt: skip
        unit = cls(tp, offset, nothing, now)
        unit.deletes = True
        return unit

    @property
    def uid(self) -> str:
        return self.update.uid

    def spans(self) -> list[Span]:
        """Every span acknowledged with this unit: itself and its riders."""
        return [self, *self.riders] if self.riders else [self]


@dataclass(slots=True)
class Batch:
    """One import job's worth of users: a unit per uid, acknowledged when the job ends."""

    id: int
    units: dict[str, Unit] = field(default_factory=dict)
    deletes: bool = False  # a delete batch: every unit deletes its user

    @property
    def uids(self) -> Collection[str]:
        return self.units.keys()

    def partitions(self) -> set[TopicPartition]:
        return {unit.tp for unit in self.units.values()}

    def record_count(self) -> int:
        return sum(len(unit.offsets) for unit in self.units.values())

    def records_digest(self) -> bytes:
        """The records this batch carries, as a SHA-256 (``Importer.run``'s ``records``):
        equal for a batch of the same records in the same order, as one read again after a
        crash forms it; different for any other batch, whatever its users' values."""
        digest = hashlib.sha256()
        for unit in self.units.values():
            topic, partition = unit.tp
            name = topic.encode()
            digest.update(b"%d:%s %d %d\x00" % (len(name), name, partition, len(unit.offsets)))
            digest.update(unit.offsets.tobytes())
        return digest.digest()


class Batcher:
    """Pending units by (uid, partition), oldest first, and the uids in flight."""

    def __init__(self, max_users: int, max_wait_s: float) -> None:
        if not 1 <= max_users <= 50_000:
            raise ValueError("max_users must be within 1..50000")
        self.max_users = max_users
        self.max_wait_s = max_wait_s
        self._units: dict[tuple[str, TopicPartition], Unit] = {}
        self._deletes: dict[tuple[str, TopicPartition], Unit] = {}  # pending delete units
        self._successors = 0  # delete units' successors
        self._blocked: set[str] = set()
        self._units_of: dict[str, int] = {}  # pending units per uid
        self._held = 0  # pending units whose uid is blocked
        self._last_cut = float("-inf")

    def __len__(self) -> int:
        """Users waiting (pending units, deletes and their successors included)."""
        return len(self._units) + len(self._deletes) + self._successors

    def deletes_waiting(self) -> int:
        """Pending delete units."""
        return len(self._deletes)

    def add(self, tp: TopicPartition, offset: int, change: UserChange, now: float) -> Unit | None:
        """Fold a decoded record into its user's pending unit; returns the unit when the
        record starts a new one (None when it joined one)."""
        uid = change["uid"]
        key = (uid, tp)
        unit = self._units.get(key)
        if unit is not None:
            unit.update.apply(change)
            unit.offsets.append(offset)
            return None
        if self._deletes:
            deleting = self._deletes.get(key)
            if deleting is not None:  # after a pending delete: waits for it
                successor = deleting.successor
                if successor is None:
                    successor = deleting.successor = Unit(tp, offset, change, now)
                    self._successors += 1
                    return successor
                successor.update.apply(change)
                successor.offsets.append(offset)
                return None
        unit = self._units[key] = Unit(tp, offset, change, now)
        self._units_of[uid] = self._units_of.get(uid, 0) + 1
        if uid in self._blocked:
            self._held += 1
        return unit

    def delete(self, tp: TopicPartition, offset: int, uid: str, now: float) -> Unit | None:
        """Note the deletion of ``uid``; returns the unit when the record starts a new one.
        The user's pending changes of this partition go with it, unsent."""
        key = (uid, tp)
        unit = self._units.pop(key, None)
        if unit is not None:  # never sent: the delete stands for those changes
            self._forget_unit(uid)
            if uid in self._blocked:
                self._held -= 1
            unit.deletes = True
            unit.update = UserUpdate(uid=uid)
            unit.offsets.append(offset)
            self._deletes[key] = unit
            return None
        deleting = self._deletes.get(key)
        if deleting is not None:
            successor = deleting.successor
            if successor is not None:  # re-created, then deleted again: one delete
                deleting.riders.append(successor)
                deleting.offsets.extend(successor.offsets)
                deleting.successor = None
                self._successors -= 1
            deleting.offsets.append(offset)
            return None
        unit = self._deletes[key] = Unit.deletion(tp, offset, uid, now)
        return unit

    def take_deletes(
        self,
        fenced: Collection[TopicPartition] = (),
        only: Collection[TopicPartition] | None = None,
    ) -> Batch | None:
        """Cut a delete batch of the eligible deletes (their uids not in flight, their
        partitions neither ``fenced`` nor outside ``only``), and block their uids until
        ``release``; each one's successor becomes a pending unit, held behind it."""
        if not self._deletes:
            return None
        batch = self._cut(self._deletes, DELETE_BATCH_MAX, fenced, only, deletes=True)
        if batch is None:
            return None
        for uid, unit in batch.units.items():
            self._blocked.add(uid)
            self._held += self._units_of.get(uid, 0)
            successor = unit.successor
            if successor is not None:
                unit.successor = None
                self._successors -= 1
                self._units[(uid, unit.tp)] = successor
                self._units_of[uid] = self._units_of.get(uid, 0) + 1
                self._held += 1
        return batch

    def _oldest(self) -> Unit | None:
        return next(iter(self._units.values()), None)

    def eligible(self) -> int:
        """Pending units whose uid is not in flight."""
        return len(self._units) - self._held

    def ready(self, now: float, force: bool = False, cap: int | None = None) -> bool:
        """True when a batch should go now: full, or the oldest user has waited enough.

        ``force`` (draining before a stop or a revoke): whenever any uid is eligible.
        ``cap``: the users the next batch may carry (the org budget's room), below
        ``max_users``: a batch that large is full.
        """
        eligible = self.eligible()
        if eligible <= 0:
            return False
        if force or eligible >= min(self.max_users, cap or self.max_users):
            return True
        oldest = self._oldest()
        # A partial batch goes at most once per max_wait: users held back behind a running
        # job of theirs are old when it ends, and must not trickle out as tiny jobs.
        return (
            oldest is not None
            and now - oldest.arrived >= self.max_wait_s
            and now - self._last_cut >= self.max_wait_s
        )

    def take(
        self,
        now: float,
        fenced: Collection[TopicPartition] = (),
        only: Collection[TopicPartition] | None = None,
        cap: int | None = None,
    ) -> Batch | None:
        """Cut the next batch, oldest units first, and block its uids until ``release``; at
        most ``max_users`` users, or ``cap`` when that is fewer.

        Units of blocked uids, of ``fenced`` partitions (a previous owner's jobs may still
        run) and, when ``only`` is given, of other partitions stay pending.
        """
        limit = min(self.max_users, cap) if cap else self.max_users
        batch = self._cut(self._units, limit, fenced, only)
        if batch is None:
            return None
        for uid in batch.units:
            self._forget_unit(uid)
            self._blocked.add(uid)
            self._held += self._units_of.get(uid, 0)
        self._last_cut = now
        return batch

    def _cut(
        self,
        pending: dict[tuple[str, TopicPartition], Unit],
        limit: int,
        fenced: Collection[TopicPartition],
        only: Collection[TopicPartition] | None,
        deletes: bool = False,
    ) -> Batch | None:
        """Take up to ``limit`` units out of ``pending``, oldest first, one per uid: not of a
        uid in flight, nor of a ``fenced`` partition, nor outside ``only``."""
        batch = Batch(id=next(_batch_ids), deletes=deletes)
        units = batch.units
        for key, unit in pending.items():
            if len(units) >= limit:
                break
            uid = key[0]
            if (
                uid in self._blocked
                or uid in units
                or unit.tp in fenced
                or (only is not None and unit.tp not in only)
            ):
                continue
            units[uid] = unit
        if not units:
            return None
        for uid, unit in units.items():
            del pending[(uid, unit.tp)]
        return batch

    def release(self, batch: Batch) -> None:
        """The batch's job ended: its uids may go in new batches."""
        for uid in batch.uids:
            if uid in self._blocked:
                self._blocked.discard(uid)
                self._held -= self._units_of.get(uid, 0)

    def _forget_unit(self, uid: str) -> None:
        left = self._units_of[uid] - 1
        if left:
            self._units_of[uid] = left
        else:
            del self._units_of[uid]

    def pending_for(self, partitions: Collection[TopicPartition]) -> int:
        """Pending units of ``partitions`` (deletes included)."""
        return sum(1 for unit in self._units.values() if unit.tp in partitions) + sum(
            1 for unit in self._deletes.values() if unit.tp in partitions
        )

    def drop_partitions(self, partitions: Collection[TopicPartition]) -> int:
        """Forget pending units of partitions this replica no longer owns (their records
        are the next owner's to send)."""
        dropped = [key for key, unit in self._units.items() if unit.tp in partitions]
        for key in dropped:
            del self._units[key]
            uid = key[0]
            if uid in self._blocked:
                self._held -= 1
            self._forget_unit(uid)
        deletes = [key for key, unit in self._deletes.items() if unit.tp in partitions]
        for key in deletes:
            if self._deletes.pop(key).successor is not None:
                self._successors -= 1
        return len(dropped) + len(deletes)
