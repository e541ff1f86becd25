"""The fault suite's oracle: what must hold after a scenario, whatever was done to the worker.

A scenario produces a stream, runs (and hurts) workers, and lets the group drain; meanwhile a
``CommitWatcher`` samples the group's committed offsets. ``check`` then reads the source topic,
the DLQ and the sandbox (jobs, their request objects, their errors) back and reports every
broken promise.

Which job carried which record (``carriage``): a job's request for a uid is the fold of a run
of that uid's records (consecutive in offset order). A run *matches* a job when all its records
were produced before the job was created and folding them (non-null values win, property types
declared from the Avro value) gives exactly the job's request object. A record is *possibly
carried* by a job when it lies in some matching run, *certainly carried* when it lies in every
one. Possible carriers are used where leniency is safe, certain ones where a link must be sure.

A record is *acknowledged* at

* the LogAppendTime of its first DLQ letter (the moment Kafka accepted it; the DLQ topic must
  stamp broker time, see ``topics.create_dlq_topic``), or
* the end of the earliest-ending job that possibly carried it and did not list its uid among
  its errors,

whichever comes first, and never otherwise. Then:

* committed offsets never go back;
* an offset ``o`` of partition ``p`` seen committed at wall time ``t`` passes only records
  acknowledged by ``t``; the final commit is checked at the time it was read, so a record
  never acknowledged fails it; when the scenario drained, the final commit is the log end;
* every request object a job received is the fold of some run of its uid's records;
* a dead letter is for a record that does not decode (or has no uid), or the scenario expects
  that record with that code in the DLQ (``expected_dead_letters``) and, when the letter
  names a job, that job possibly carried the record and failed its uid with that code. Any
  other letter is a good record in the DLQ. An expected letter that names no job is for a
  record the worker refused before merging it (FullStory's published rules): it is in no
  job's run, and the user's fold goes on without it;
* no record is certainly carried by a job created after the record was seen committed (once
  committed, nobody sends it again: this bounds every worker's duplicates, not only the last
  one's); per stopped worker, the records it sent that a job created after its stop sent
  again are among those it had sent and that were not committed at its stop;
* each uid ends in the sandbox as the fold, in offset order, of its records that were not
  dead-lettered (a dead-lettered record was never applied), with each property's type
  declared from its Avro type; a uid with nothing left is absent;
* no two jobs sharing a uid ran at the same time, and every job ended.

Times: Kafka CreateTime and LogAppendTime, the sandbox's wall times (``created``/``finished``)
and the watcher's ``time.time()`` all come from this machine's clock, so ``TOLERANCE_S``
covers only clock granularity. Numbers (duplicates, time to drain, ...) are returned for the
report.

Duplicates (records sent to FullStory more than once) are counted from the workers'
``batch_submitted`` log lines, which also say which jobs each worker created;
``retry_after_breaches`` reads the sandbox's request log. The checks here are pure (``check``
only gathers their input through ``topics``, ``commits`` and ``jobs``), so ``test_checker.py``
shows they catch what they should without a broker.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.integration.faults.carriage import TOLERANCE_S, Key, Links, declared, link, unmatched
from tests.integration.faults.commits import CommitWatcher, Sample
from tests.integration.faults.jobs import NEVER, JobSpan, job_errors, job_spans
from tests.integration.faults.letters import (
    ExpectedDeadLetter,
    dead_letter_problems,
    producer_stamped,
)
from tests.integration.faults.resends import resent_after_commit, stop_problems, worker_sends
from tests.integration.faults.topics import (
    DeadLetter,
    Record,
    earliest,
    read_dead_letters,
    source_records,
)
from tests.integration.oracle import fold_events

_MAX_LISTED = 8  # problems of one kind listed in full; the rest are counted
# A request the sandbox reads this soon after a 429 left may have been sent before the worker
# read the 429 (another job thread's, already on the wire); later ones must wait Retry-After.
IN_FLIGHT_SLACK_S = 0.1

# -- the pure checks ------------------------------------------------------------------------


def ack_times(
    records: Sequence[Record],
    letters: Mapping[Key, DeadLetter],
    jobs: Sequence[JobSpan],
    links: Links | None = None,
) -> dict[Key, float]:
    """When each record was first acknowledged (``NEVER`` if it was not).

    Dead-lettered: its first letter's write time. Imported: the earliest end of a job that
    possibly carried it (``carriage``) and did not fail its uid.
    """
    links = link(records, jobs) if links is None else links
    by_id = {job.id: job for job in jobs}
    acked: dict[Key, float] = {}
    for record in records:
        key = (record.partition, record.offset)
        letter = letters.get(key)
        when = NEVER if letter is None else letter.written_s
        for job_id in links.possible.get(key, ()):
            job = by_id[job_id]
            if record.uid not in job.failed_uids:
                when = min(when, job.finished_s)
        acked[key] = when
    return acked


def refused_early(
    records: Sequence[Record],
    letters: Mapping[Key, DeadLetter],
    expected: ExpectedDeadLetter | None,
) -> list[Record]:
    """The records less those dead-lettered without a job (the worker refused them before
    merging them) with a code the scenario expects for them."""
    if expected is None:
        return list(records)
    kept = []
    for record in records:
        letter = letters.get((record.partition, record.offset))
        early = letter is not None and letter.job_id is None and record.uid is not None
        if not (early and expected(record, letter.code)):  # type: ignore[union-attr]
            kept.append(record)
    return kept


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


def final_commit_violations(
    records: Sequence[Record], acked: dict[Key, float], committed: Mapping[int, int], read_s: float
) -> list[str]:
    """The final commit, read at ``read_s``, may pass only records acknowledged by then: a
    record never acknowledged (``NEVER``) below it is lost for good."""
    final = [Sample(read_s, p, o) for p, o in committed.items() if o >= 0]
    return commit_violations(records, acked, final)


def fold_problems(
    records: Sequence[Record],
    letters: Mapping[Key, DeadLetter],
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
        want_types = {name: declared(value) for name, value in want["properties"].items()}
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
    workers: Sequence[Any],
    started_s: float,
    drained: bool = True,
    final_committed: Callable[[], dict[int, int]] | None = None,
    expected_dead_letters: ExpectedDeadLetter | None = None,
    stopped_s: Mapping[int, float] | None = None,
) -> Verdict:
    """Every promise of the module docstring; the scenario must be over (workers stopped or
    idle, producing done). ``final_committed`` defaults to the watcher's newest sample.

    ``expected_dead_letters(record, code)``: which decodable records the scenario made bad
    (none when not given). ``stopped_s``: for workers (by index into ``workers``) that were
    killed or stopped, a time after which they committed nothing; their sends are checked
    and counted (``numbers["sent_uncommitted_at_stop"]``, ``["resent_after_stop"]``).
    """
    verdict = Verdict()
    if not sandbox.wait_idle(60):
        verdict.problems.append("sandbox: jobs still running 60 s after the scenario")
    watcher.poll_now()
    records = source_records(bootstrap, topic)
    every_letter = read_dead_letters(bootstrap, dlq, topic)
    letters = earliest(every_letter)
    jobs_json = sandbox.jobs()
    spans = job_spans(jobs_json, job_errors(sandbox, jobs_json), sandbox.job_requests())
    # Records the worker refused before merging (FullStory's published rules): dead-lettered
    # without a job, as the scenario expected, they are in no job's run.
    carried = refused_early(records, letters, expected_dead_letters)
    links = link(carried, spans)
    acked = ack_times(records, letters, spans, links)

    verdict.add("regression", watcher.regressions)
    verdict.add(
        "commit passed an unacknowledged record", commit_violations(records, acked, watcher.samples)
    )
    ends: dict[int, int] = defaultdict(int)
    for record in records:
        ends[record.partition] = max(ends[record.partition], record.offset + 1)
    committed = final_committed() if final_committed else watcher.latest()
    read_s = time.time()  # the records below it were acknowledged by now, or never
    verdict.add(
        "final commit passed an unacknowledged record",
        final_commit_violations(records, acked, committed, read_s),
    )
    if drained:
        short = {p: (committed.get(p), end) for p, end in ends.items() if committed.get(p) != end}
        verdict.add(
            "not drained",
            [f"partition {p}: committed {c}, log end {e}" for p, (c, e) in sorted(short.items())],
        )
    verdict.add("request", unmatched(carried, spans))
    verdict.add("dlq", producer_stamped(every_letter))
    verdict.add(
        "dead letter",
        dead_letter_problems(records, every_letter, spans, links, expected_dead_letters),
    )
    verdict.add("sent after commit", resent_after_commit(carried, spans, links, watcher.samples))
    uncommitted_at_stop, resent_after_stop = [], []
    for index, when in sorted((stopped_s or {}).items()):
        sends = worker_sends(
            carried, spans, links, watcher.samples, logged_job_ids([workers[index]]), when
        )
        verdict.add("sent after stop", stop_problems(index, sends))
        uncommitted_at_stop.append(len(sends.uncommitted))
        resent_after_stop.append(len(sends.resent))
    verdict.add("state", fold_problems(records, letters, sandbox.users()))
    verdict.add("overlap", overlaps(spans))
    verdict.add("unfinished", unfinished(spans))

    good = sum(1 for r in carried if r.uid is not None)
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
    if stopped_s:
        verdict.numbers.update(
            sent_uncommitted_at_stop=uncommitted_at_stop, resent_after_stop=resent_after_stop
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
