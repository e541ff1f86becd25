"""Which FullStory jobs hold records of each partition, and how far this replica read it,
carried in the offset commit. Pure.

A job that is still running when its partition changes hands (SIGKILL, a revoke whose jobs
outlived the wait, a shutdown past its deadline) would otherwise race the new owner's job for
the same uids, and could land older values last. So every commit carries, as the partition's
commit metadata, the ids of the jobs in flight for it; the next owner reads them on assignment
and holds the partition's records back until those jobs have ended.

The same metadata carries, for ``status`` only, the partition's read position (1 + the last
offset read and merged) and the users each job carries. Why there: ``status`` already reads
the committed offsets and their metadata without joining the group, every replica writes the
metadata of exactly the partitions it owns (so several replicas never overwrite each other),
and no address of a replica is needed. The committed offset itself is never touched: the read
position is information, the fence and the next owner read only the offset and the jobs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeGuard

from worker.records import TopicPartition

# Kafka's default offset.metadata.max.bytes is 4096: a commit whose metadata is longer fails.
MAX_METADATA_BYTES = 4000


def encode_jobs(job_ids: Iterable[str]) -> str:
    """Commit metadata naming ``job_ids`` (empty string for none)."""
    return encode(job_ids)


def encode(
    job_ids: Iterable[str], read: int | None = None, users: Mapping[str, int] | None = None
) -> str:
    """Commit metadata naming ``job_ids`` (with the ``users`` each carries) and the ``read``
    position; empty string for none. Within ``MAX_METADATA_BYTES`` always: over it the users
    go first (information), then the last jobs (the commit would fail otherwise); the read
    position, a few bytes, stays."""
    ids = sorted(job_ids)
    counts = [users[job] for job in ids] if users and all(job in users for job in ids) else None
    if not ids and read is None:
        return ""

    def text() -> str:
        body: dict[str, object] = {"fsus": 1, "jobs": ids}
        if read is not None:
            body["read"] = read
        if counts is not None:
            body["users"] = counts[: len(ids)]
        return json.dumps(body, separators=(",", ":"))

    shown = text()
    if len(shown.encode()) > MAX_METADATA_BYTES:
        counts = None
        shown = text()
    while len(shown.encode()) > MAX_METADATA_BYTES and ids:
        ids.pop()  # over Kafka's limit the commit would fail; keep what fits
        shown = text()
    return shown


@dataclass(frozen=True, slots=True)
class Published:
    """What a partition's commit metadata says: the jobs in flight (id -> users, ``None``
    when not said), and the read position (``None`` when not said)."""

    read: int | None = None
    jobs: dict[str, int | None] = field(default_factory=dict)


def _parsed(metadata: str | None) -> dict[str, object] | None:
    if not metadata:
        return None
    try:
        parsed = json.loads(metadata)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or parsed.get("fsus") != 1:
        return None
    return parsed


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def decode_jobs(metadata: str | None) -> list[str]:
    """Job ids from commit metadata; anything else (another tool's metadata) is none."""
    parsed = _parsed(metadata)
    jobs = parsed.get("jobs", []) if parsed else []
    return [str(job) for job in jobs if isinstance(job, str)] if isinstance(jobs, list) else []


def decode(metadata: str | None) -> Published:
    """The read position and the jobs with their users; a field that is not what this worker
    writes (another tool's metadata, a peer's garbage) is absent, never guessed."""
    parsed = _parsed(metadata)
    if parsed is None:
        return Published()
    read = parsed.get("read")
    jobs = parsed.get("jobs")
    users = parsed.get("users")
    named: dict[str, int | None] = {}
    if isinstance(jobs, list):
        counts = users if isinstance(users, list) and len(users) == len(jobs) else None
        for i, job in enumerate(jobs):
            if isinstance(job, str):
                count = counts[i] if counts is not None else None
                named[job] = count if _count(count) else None
    return Published(read if _count(read) else None, named)


class JobLedger:
    """In-flight job ids per partition, and which partitions' metadata changed since commit."""

    def __init__(self) -> None:
        self._jobs: dict[TopicPartition, set[str]] = {}
        self._users: dict[str, int] = {}  # job id -> users it carries
        self._dirty: set[TopicPartition] = set()

    def started(self, partitions: Iterable[TopicPartition], job_id: str, users: int = 0) -> None:
        if users:
            self._users[job_id] = users
        for tp in partitions:
            self._jobs.setdefault(tp, set()).add(job_id)
            self._dirty.add(tp)

    def ended(self, job_ids: Iterable[str]) -> None:
        ended = set(job_ids)
        for job in ended:
            self._users.pop(job, None)
        for tp, jobs in self._jobs.items():
            if jobs & ended:
                jobs -= ended
                self._dirty.add(tp)

    def metadata(self, tp: TopicPartition, read: int | None = None) -> str:
        """``tp``'s commit metadata, with its ``read`` position when given."""
        jobs = self._jobs.get(tp, ())
        return encode(jobs, read, {job: self._users[job] for job in jobs if job in self._users})

    def dirty(self) -> set[TopicPartition]:
        return set(self._dirty)

    def committed(self, partitions: Iterable[TopicPartition]) -> None:
        self._dirty.difference_update(partitions)
        for tp in partitions:
            if not self._jobs.get(tp):
                self._jobs.pop(tp, None)

    def recommit(self, partitions: Iterable[TopicPartition]) -> None:
        """A commit failed: these partitions' metadata must be written again."""
        self._dirty.update(tp for tp in partitions if tp in self._jobs)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._jobs.pop(tp, None)
            self._dirty.discard(tp)
        named = set().union(*self._jobs.values())
        self._users = {job: n for job, n in self._users.items() if job in named}
