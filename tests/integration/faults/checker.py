"""The fault suite's oracle: what must hold after a scenario, whatever was done to the worker.

A scenario produces a stream, runs (and hurts) workers, and lets the group drain; meanwhile a
``CommitWatcher`` samples the group's committed offsets. ``check`` then reads the source topic,
the DLQ and the sandbox back and reports every broken promise:

* committed offsets never go back;
* an offset ``o`` of partition ``p`` observed committed at wall time ``t`` passes only records
  acknowledged by ``t``: each record of ``p`` below ``o`` was either dead-lettered (its DLQ
  copy was written by ``t``) or imported (a sandbox job carrying its uid, created after the
  record was produced, ended by ``t`` without that uid among its errors);
* every record below the final committed offset was acknowledged that way, and (when the
  scenario drained) the final commit is the log end;
* each uid ends in the sandbox as the fold, in offset order, of its records that were not
  dead-lettered (a dead-lettered record was never applied), with each property's type
  declared from its Avro type; a uid with nothing left is absent;
* no two jobs sharing a uid ran at the same time.

Times: Kafka CreateTime and the sandbox's wall times (``created``/``finished``) are compared
with the watcher's ``time.time()``; all run on this machine, so ``TOLERANCE_S`` covers only
clock granularity. Numbers (duplicates, time to drain, ...) are returned for the report.

Duplicates (records sent to FullStory more than once) are counted from the workers'
``batch_submitted`` log lines; ``retry_after_breaches`` reads the sandbox's request log.
The checks here are pure (``check`` only gathers their input through ``topics``, ``commits``
and ``jobs``), so ``test_checker.py`` shows they catch what they should without a broker.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.integration.faults.commits import CommitWatcher, Sample
from tests.integration.faults.jobs import NEVER, JobSpan, job_errors, job_spans
from tests.integration.faults.topics import DeadLetter, Record, dead_letters, source_records
from tests.integration.oracle import fold_events

TOLERANCE_S = 0.05
_MAX_LISTED = 8  # problems of one kind listed in full; the rest are counted
# A request the sandbox reads this soon after a 429 left may have been sent before the worker
# read the 429 (another job thread's, already on the wire); later ones must wait Retry-After.
IN_FLIGHT_SLACK_S = 0.1


# -- the pure checks ------------------------------------------------------------------------


def ack_times(
    records: Sequence[Record], letters: dict[tuple[int, int], DeadLetter], jobs: Sequence[JobSpan]
) -> dict[tuple[int, int], float]:
    """When each record was first acknowledged (``NEVER`` if it was not).

    Dead-lettered: the DLQ copy's write time. Imported: the earliest end of a job that
    carried its uid, was created after the record was produced, and did not fail that uid.
    """
    by_uid: dict[str, list[JobSpan]] = defaultdict(list)
    for job in jobs:
        for uid in job.uids:
            if uid not in job.failed_uids:
                by_uid[uid].append(job)
    acked: dict[tuple[int, int], float] = {}
    for record in records:
        when = NEVER
        letter = letters.get((record.partition, record.offset))
        if letter is not None:
            when = letter.written_s
        uid = record.uid
        if uid is not None:
            for job in by_uid.get(uid, ()):
                if job.created_s >= record.produced_s - TOLERANCE_S:
                    when = min(when, job.finished_s)
        acked[(record.partition, record.offset)] = when
    return acked


def commit_violations(
    records: Sequence[Record],
    acked: dict[tuple[int, int], float],
    samples: Iterable[Sample],
) -> list[str]:
    """Commits that passed a record not acknowledged by the time the commit was seen."""
    offsets: dict[int, list[int]] = defaultdict(list)
    latest_ack: dict[int, list[float]] = defaultdict(list)  # running max per partition
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        when = acked[(record.partition, record.offset)]
        running = latest_ack[record.partition]
        running.append(max(when, running[-1]) if running else when)
        offsets[record.partition].append(record.offset)
    problems = []
    for sample in samples:
        below = bisect.bisect_left(offsets[sample.partition], sample.offset)
        if below == 0:
            continue
        if latest_ack[sample.partition][below - 1] <= sample.seen_s + TOLERANCE_S:
            continue
        first = next(
            offset
            for offset in offsets[sample.partition][:below]
            if acked[(sample.partition, offset)] > sample.seen_s + TOLERANCE_S
        )
        when = acked[(sample.partition, first)]
        late = "never" if when == NEVER else f"{when - sample.seen_s:.3f}s later"
        problems.append(
            f"partition {sample.partition}: offset {sample.offset} committed by "
            f"{sample.seen_s:.3f} but record {first} was acknowledged {late}"
        )
    return problems


def _declared(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "real"
    return "str"


def fold_problems(
    records: Sequence[Record],
    letters: dict[tuple[int, int], DeadLetter],
    users: dict[str, dict[str, Any]],
) -> list[str]:
    """Users whose state is not the fold of their records that were not dead-lettered."""
    applied: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        uid = record.uid
        if uid is None or (record.partition, record.offset) in letters:
            continue
        applied[uid].append(record.event or {})
    problems = []
    expected = fold_events([event for events in applied.values() for event in events])
    for uid, want in sorted(expected.items()):
        got = users.get(uid)
        if got is None:
            problems.append(f"{uid}: missing from FullStory")
            continue
        for name in ("display_name", "email", "properties"):
            if got.get(name) != want[name]:
                problems.append(f"{uid}: {name} is {got.get(name)!r}, want {want[name]!r}")
        want_types = {name: _declared(value) for name, value in want["properties"].items()}
        if got.get("types") != want_types:
            problems.append(f"{uid}: types are {got.get('types')!r}, want {want_types!r}")
    every_uid = {r.uid for r in records if r.uid is not None}
    for uid in sorted(every_uid - set(expected)):
        if uid in users:
            problems.append(f"{uid}: every record was dead-lettered, yet FullStory holds it")
    return problems


def retry_after_breaches(requests: list[dict[str, Any]]) -> tuple[int, list[float], list[str]]:
    """429s seen, how long after a 429 left each request already in flight was read, and
    requests that arrived inside a 429's Retry-After window."""
    limited = [r for r in requests if r["status"] == 429]
    crossed: list[float] = []
    breaches = []
    for answer in limited:
        opens = answer["answered_monotonic"] + answer["retry_after"]
        for request in requests:
            gap = request["time_monotonic"] - answer["answered_monotonic"]
            if 0 < gap <= IN_FLIGHT_SLACK_S:
                crossed.append(gap)
            elif gap > IN_FLIGHT_SLACK_S and request["time_monotonic"] < opens:
                breaches.append(
                    f"{request['method']} {request['endpoint']} {gap:.3f}s after a 429 "
                    f"(#{answer['seq']}, Retry-After {answer['retry_after']}s)"
                )
    return len(limited), crossed, breaches


def overlaps(jobs: Sequence[JobSpan]) -> list[str]:
    """Pairs of jobs with a common uid that were running at the same time (or never ended)."""
    by_uid: dict[str, list[JobSpan]] = defaultdict(list)
    for job in jobs:
        for uid in job.uids:
            by_uid[uid].append(job)
    clashes: set[tuple[str, str]] = set()
    for spans in by_uid.values():
        spans.sort(key=lambda j: j.created_mono)
        for earlier, later in itertools.pairwise(spans):
            if later.created_mono < earlier.finished_mono:
                clashes.add((earlier.id, later.id))
    return [f"jobs {a} and {b} share a uid and overlapped" for a, b in sorted(clashes)]


def unfinished(jobs: Sequence[JobSpan]) -> list[str]:
    return [f"job {j.id} never ended" for j in jobs if j.finished_s == NEVER]


def drain_time(samples: Sequence[Sample], ends: dict[int, int], started_s: float) -> float | None:
    """Seconds from ``started_s`` until every partition was seen committed at its end."""
    current: dict[int, int] = {}
    for sample in sorted(samples, key=lambda s: s.seen_s):
        current[sample.partition] = sample.offset
        if all(current.get(p, -1) >= end for p, end in ends.items() if end > 0):
            return sample.seen_s - started_s
    return None


# -- the worker's side ----------------------------------------------------------------------


def submitted_records(workers: Iterable[Any]) -> int:
    """Records sent to FullStory, counted from every ``batch_submitted`` log line."""
    return sum(
        int(e.get("records", 0))
        for worker in workers
        for e in worker.events()
        if e.get("event") == "batch_submitted"
    )


def logged_job_ids(workers: Iterable[Any]) -> set[str]:
    return {
        str(e["job_id"])
        for worker in workers
        for e in worker.events()
        if e.get("event") == "batch_submitted"
    }


def events_named(worker: Any, *names: str) -> list[dict[str, Any]]:
    return [e for e in worker.events() if e.get("event") in names]


# -- all together ---------------------------------------------------------------------------


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def add(self, kind: str, found: Sequence[str]) -> None:
        listed = [f"{kind}: {p}" for p in found[:_MAX_LISTED]]
        if len(found) > _MAX_LISTED:
            listed.append(f"{kind}: ... and {len(found) - _MAX_LISTED} more")
        self.problems.extend(listed)


def check(
    *,
    bootstrap: str,
    sandbox: Any,
    topic: str,
    dlq: str,
    group: str,
    watcher: CommitWatcher,
    workers: Iterable[Any],
    started_s: float,
    drained: bool = True,
    final_committed: Callable[[], dict[int, int]] | None = None,
) -> Verdict:
    """Every promise of the module docstring; the scenario must be over (workers stopped or
    idle, producing done). ``final_committed`` defaults to the watcher's newest sample."""
    verdict = Verdict()
    if not sandbox.wait_idle(60):
        verdict.problems.append("sandbox: jobs still running 60 s after the scenario")
    watcher.poll_now()
    records = source_records(bootstrap, topic)
    letters = dead_letters(bootstrap, dlq, topic)
    jobs_json = sandbox.jobs()
    spans = job_spans(jobs_json, job_errors(sandbox, jobs_json))
    acked = ack_times(records, letters, spans)

    verdict.add("regression", watcher.regressions)
    verdict.add(
        "commit passed an unacknowledged record", commit_violations(records, acked, watcher.samples)
    )
    ends: dict[int, int] = defaultdict(int)
    for record in records:
        ends[record.partition] = max(ends[record.partition], record.offset + 1)
    committed = final_committed() if final_committed else watcher.latest()
    final = [Sample(NEVER, p, o) for p, o in committed.items() if o >= 0]
    verdict.add(
        "final commit passed an unacknowledged record", commit_violations(records, acked, final)
    )
    if drained:
        short = {p: (committed.get(p), end) for p, end in ends.items() if committed.get(p) != end}
        verdict.add(
            "not drained",
            [f"partition {p}: committed {c}, log end {e}" for p, (c, e) in sorted(short.items())],
        )
    verdict.add("state", fold_problems(records, letters, sandbox.users()))
    verdict.add("overlap", overlaps(spans))
    verdict.add("unfinished", unfinished(spans))

    good = sum(1 for r in records if r.uid is not None)
    submitted = submitted_records(workers)
    verdict.numbers.update(
        events=len(records),
        uids=len({r.uid for r in records if r.uid}),
        partitions=len(ends),
        dead_letters=len(letters),
        jobs=len(spans),
        submitted_records=submitted,
        duplicates=submitted - good,
        drain_s=_rounded(drain_time(watcher.samples, dict(ends), started_s)),
        commit_samples=len(watcher.samples),
    )
    return verdict


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def publish(capsys: Any, record_property: Any, scenario: str, numbers: dict[str, Any]) -> None:
    """Show a scenario's numbers on the terminal (even when it passes) and in junit XML."""
    for name, value in numbers.items():
        record_property(name, value)
    line = " ".join(f"{k}={v}" for k, v in numbers.items())
    with capsys.disabled():
        print(f"\n[faults] {scenario}: {line}")
