"""The fault suite's oracle catches what it must: it runs on plain data, no broker needed."""

from __future__ import annotations

import pytest

from tests.integration.faults.checker import (
    ack_times,
    commit_violations,
    drain_time,
    fold_problems,
    overlaps,
    retry_after_breaches,
)
from tests.integration.faults.commits import Sample
from tests.integration.faults.jobs import NEVER, JobSpan
from tests.integration.faults.topics import DeadLetter, Record


def _event(uid: str, **fields: object) -> dict[str, object]:
    return {"uid": uid, "display_name": None, "email": None, "properties": {}, **fields}


def _job(
    job_id: str,
    uids: tuple[str, ...],
    created: float,
    finished: float,
    failed: frozenset[str] = frozenset(),
) -> JobSpan:
    return JobSpan(job_id, created, finished, created, finished, uids, failed)


RECORDS = [
    Record(0, 0, produced_s=10.0, event=_event("a", display_name="A1")),
    Record(0, 1, produced_s=10.0, event=_event("b", properties={"visits": 1})),
    Record(0, 2, produced_s=15.0, event=_event("a", display_name="A2")),
]


@pytest.mark.parametrize(
    ("committed", "seen_at", "broken"),
    [
        (2, 12.0, False),  # a and b both imported by job j1, ended at 11
        (3, 12.0, True),  # record 2 (a, produced at 15) has no job yet at 12
        (3, 21.0, False),  # j2 (created at 16) ended at 20
        (2, 10.9, True),  # j1 ended at 11: seen before that
    ],
    ids=["acknowledged-prefix", "passes-a-later-record", "after-second-job", "before-job-end"],
)
def test_commit_must_not_pass_an_unacknowledged_record(committed, seen_at, broken):
    """An offset seen committed before its records were imported is reported."""
    jobs = [_job("j1", ("a", "b"), 10.5, 11.0), _job("j2", ("a",), 16.0, 20.0)]
    acked = ack_times(RECORDS, {}, jobs)
    found = commit_violations(RECORDS, acked, [Sample(seen_at, 0, committed)])
    assert bool(found) is broken, found


def test_a_job_created_before_the_record_does_not_acknowledge_it():
    """Only a job created after a record was produced can carry it."""
    acked = ack_times(RECORDS, {}, [_job("j1", ("a", "b"), 10.5, 30.0)])
    assert acked[(0, 2)] == NEVER


def test_a_failed_user_is_acknowledged_only_by_its_dead_letter():
    """A user among a job's errors is not imported; its DLQ copy acknowledges it."""
    jobs = [_job("j1", ("a", "b"), 10.5, 11.0, failed=frozenset({"b"}))]
    letter = DeadLetter(0, 1, written_s=11.5, key=b"b", headers={})
    assert ack_times(RECORDS, {}, jobs)[(0, 1)] == NEVER
    assert ack_times(RECORDS, {(0, 1): letter}, jobs)[(0, 1)] == 11.5


def test_state_must_be_the_fold_of_what_was_not_dead_lettered():
    """A lost or reordered update and a dead-lettered user that still got in are reported."""
    letter = DeadLetter(0, 1, written_s=11.5, key=b"b", headers={})
    right = {
        "a": {"display_name": "A2", "email": None, "properties": {}, "types": {}},
    }
    assert fold_problems(RECORDS, {(0, 1): letter}, right) == []
    stale = {"a": {**right["a"], "display_name": "A1"}}
    assert fold_problems(RECORDS, {(0, 1): letter}, stale)
    leaked = {**right, "b": {"display_name": None, "email": None, "properties": {"visits": 1}}}
    assert fold_problems(RECORDS, {(0, 1): letter}, leaked)
    wrong_type = {
        **right,
        "b": {
            "display_name": None,
            "email": None,
            "properties": {"visits": 1},
            "types": {"visits": "real"},
        },
    }
    assert fold_problems(RECORDS, {}, wrong_type)


def test_jobs_sharing_a_uid_must_not_overlap():
    """Two running jobs with a common uid are reported; back-to-back ones are not."""
    assert overlaps([_job("j1", ("a",), 1, 3), _job("j2", ("a", "b"), 3, 4)]) == []
    assert overlaps([_job("j1", ("a",), 1, 3), _job("j2", ("b", "a"), 2, 4)])
    assert overlaps([_job("j1", ("a",), 1, NEVER), _job("j2", ("a",), 5, 6)])


def test_drain_time_is_when_every_partition_reached_its_end():
    """Time to drain counts until the last partition was seen committed at its log end."""
    samples = [Sample(3.0, 0, 5), Sample(4.0, 1, 2), Sample(6.0, 1, 7)]
    assert drain_time(samples, {0: 5, 1: 7}, started_s=1.0) == 5.0
    assert drain_time(samples, {0: 6, 1: 7}, started_s=1.0) is None


def _request(seq: int, arrived: float, status: int = 200, retry_after: int | None = None):
    return {
        "seq": seq,
        "method": "GET",
        "endpoint": "batch_status",
        "time_monotonic": arrived,
        "answered_monotonic": arrived + 0.01,
        "status": status,
        "retry_after": retry_after,
    }


def test_a_request_inside_a_retry_after_window_is_reported():
    """After a 429 with Retry-After 2 s, a request 1 s later is a breach; one already in
    flight (read within the slack) and one after the window are not."""
    limited = _request(1, 100.0, status=429, retry_after=2)
    in_flight, later = _request(2, 100.05), _request(3, 102.02)
    count, crossed, breaches = retry_after_breaches([limited, in_flight, later])
    assert (count, len(crossed), breaches) == (1, 1, [])
    count, _crossed, breaches = retry_after_breaches([limited, _request(4, 101.0)])
    assert count == 1 and len(breaches) == 1
