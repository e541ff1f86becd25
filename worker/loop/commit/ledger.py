"""Which FullStory jobs hold records of each partition, carried in the offset commit. Pure.

A job that is still running when its partition changes hands (SIGKILL, a revoke whose jobs
outlived the wait, a shutdown past its deadline) would otherwise race the new owner's job for
the same uids, and could land older values last. So every commit carries, as the partition's
commit metadata, the ids of the jobs in flight for it; the next owner reads them on assignment
and holds the partition's records back until those jobs have ended.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from worker.records import TopicPartition

# Kafka's default offset.metadata.max.bytes is 4096.
MAX_METADATA_BYTES = 4000


def encode_jobs(job_ids: Iterable[str]) -> str:
    """Commit metadata naming ``job_ids`` (empty string for none)."""
    ids = sorted(job_ids)
    if not ids:
        return ""
    text = json.dumps({"fsus": 1, "jobs": ids}, separators=(",", ":"))
    while len(text.encode()) > MAX_METADATA_BYTES and ids:
        ids.pop()  # over Kafka's limit the commit would fail; keep what fits
        text = json.dumps({"fsus": 1, "jobs": ids}, separators=(",", ":"))
    return text


def decode_jobs(metadata: str | None) -> list[str]:
    """Job ids from commit metadata; anything else (another tool's metadata) is none."""
    if not metadata:
        return []
    try:
        parsed = json.loads(metadata)
    except ValueError:
        return []
    if not isinstance(parsed, dict) or parsed.get("fsus") != 1:
        return []
    return [str(job) for job in parsed.get("jobs", []) if isinstance(job, str)]


class JobLedger:
    """In-flight job ids per partition, and which partitions' metadata changed since commit."""

    def __init__(self) -> None:
        self._jobs: dict[TopicPartition, set[str]] = {}
        self._dirty: set[TopicPartition] = set()

    def started(self, partitions: Iterable[TopicPartition], job_id: str) -> None:
        for tp in partitions:
            self._jobs.setdefault(tp, set()).add(job_id)
            self._dirty.add(tp)

    def ended(self, job_ids: Iterable[str]) -> None:
        ended = set(job_ids)
        for tp, jobs in self._jobs.items():
            if jobs & ended:
                jobs -= ended
                self._dirty.add(tp)

    def metadata(self, tp: TopicPartition) -> str:
        return encode_jobs(self._jobs.get(tp, ()))

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
