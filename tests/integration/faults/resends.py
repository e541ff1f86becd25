"""Records sent to FullStory again: never once they were committed.

A commit covering a record means the group will not read it again, so no job created after
the record was seen committed may carry it (certain carriers only, see ``carriage``). Per
stopped worker, what was sent again after its stop is among what it had sent and left
uncommitted; ``WorkerSends`` holds both sets, for the checks and the report.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tests.integration.faults.carriage import TOLERANCE_S, Key, Links
from tests.integration.faults.commits import Sample
from tests.integration.faults.jobs import JobSpan
from tests.integration.faults.topics import Record


def _committed_by(records: Sequence[Record], samples: Iterable[Sample]) -> dict[Key, float]:
    """When each record was first seen below a committed offset (absent: never)."""
    seen: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for sample in samples:
        seen[sample.partition].append((sample.seen_s, sample.offset))
    highest: dict[int, tuple[list[float], list[int]]] = {}
    for partition, found in seen.items():
        found.sort()
        times, running = [], []
        for seen_s, offset in found:
            times.append(seen_s)
            running.append(max(offset, running[-1]) if running else offset)
        highest[partition] = (times, running)
    committed: dict[Key, float] = {}
    for record in records:
        if record.partition not in highest:
            continue
        times, running = highest[record.partition]
        at = bisect.bisect_right(running, record.offset)  # first commit past the record
        if at < len(times):
            committed[(record.partition, record.offset)] = times[at]
    return committed


def resent_after_commit(
    records: Sequence[Record], jobs: Sequence[JobSpan], links: Links, samples: Iterable[Sample]
) -> list[str]:
    """Records certainly carried by a job created after they were seen committed."""
    committed = _committed_by(records, samples)
    created = {job.id: job.created_s for job in jobs}
    problems = []
    for key, when in sorted(committed.items()):
        for job_id in sorted(links.certain.get(key, ())):
            if created[job_id] > when + TOLERANCE_S:
                problems.append(
                    f"record {key[0]}:{key[1]} was committed by {when:.3f} and sent again "
                    f"in job {job_id} created {created[job_id] - when:.3f}s later"
                )
    return problems


@dataclass(frozen=True, slots=True)
class WorkerSends:
    """What one stopped worker left behind: the records it sent (possibly carried by the
    jobs it logged) that were not committed when it stopped, and those of its records
    (certainly carried) that a job created after its stop sent again."""

    uncommitted: frozenset[Key]
    resent: frozenset[Key]


def worker_sends(
    records: Sequence[Record],
    jobs: Sequence[JobSpan],
    links: Links,
    samples: Iterable[Sample],
    logged_jobs: set[str],
    stopped_s: float,
) -> WorkerSends:
    """One stopped worker's sends (``logged_jobs``: the job ids of its ``batch_submitted``
    lines; ``stopped_s``: a time after which it committed nothing)."""
    committed: dict[int, int] = {}
    for sample in samples:
        if sample.seen_s <= stopped_s:
            committed[sample.partition] = max(committed.get(sample.partition, 0), sample.offset)
    later = {job.id for job in jobs if job.created_s > stopped_s + TOLERANCE_S} - logged_jobs
    uncommitted, resent = set(), set()
    for record in records:
        key = (record.partition, record.offset)
        mine = links.possible.get(key, set()) & logged_jobs
        if mine and record.offset >= committed.get(record.partition, 0):
            uncommitted.add(key)
        certain = links.certain.get(key, set())
        if certain & logged_jobs and certain & later:
            resent.add(key)
    return WorkerSends(frozenset(uncommitted), frozenset(resent))


def stop_problems(index: int, sends: WorkerSends) -> list[str]:
    """Records a stopped worker had got committed, yet sent again after its stop."""
    extra = sorted(sends.resent - sends.uncommitted)
    if not extra:
        return []
    listed = ", ".join(f"{p}:{o}" for p, o in extra[:5])
    return [
        f"worker {index}: {len(extra)} records committed by its stop were sent again after "
        f"it, e.g. {listed}"
    ]
