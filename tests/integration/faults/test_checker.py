"""The fault suite's oracle catches what it must: it runs on plain data, no broker needed.

Each check has a case where the violation is present (the checker must report it) next to
the case where it is not.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

from tests.integration.faults.carriage import link, matching_runs, unmatched
from tests.integration.faults.checker import (
    ack_times,
    commit_violations,
    drain_time,
    final_commit_violations,
    fold_problems,
    overlaps,
    refused_early,
    retry_after_breaches,
)
from tests.integration.faults.commits import Sample
from tests.integration.faults.jobs import NEVER, JobSpan
from tests.integration.faults.letters import dead_letter_problems, producer_stamped
from tests.integration.faults.resends import resent_after_commit, stop_problems, worker_sends
from tests.integration.faults.topics import DeadLetter, Record, letter_from


def _event(uid: str, **fields: object) -> dict[str, Any]:
    return {"uid": uid, "display_name": None, "email": None, "properties": {}, **fields}


def _request(*events: dict[str, Any]) -> dict[str, Any]:
    """What the worker sends for these events of one uid (their fold, types declared)."""
    request: dict[str, Any] = {"uid": events[0]["uid"]}
    properties: dict[str, Any] = {}
    for event in events:
        for name in ("display_name", "email"):
            if event.get(name) is not None:
                request[name] = event[name]
        properties.update({k: v for k, v in event["properties"].items() if v is not None})
    if properties:
        kinds = {bool: "bool", int: "int", float: "real", str: "str"}
        request["properties"] = properties
        request["schema"] = {"properties": {k: kinds[type(v)] for k, v in properties.items()}}
    return request


def _job(
    job_id: str,
    carried: list[Record] | dict[str, dict[str, Any]],
    created: float,
    finished: float,
    failed: dict[str, str] | None = None,
) -> JobSpan:
    """A job whose request per uid is the fold of ``carried`` (records), or given as is."""
    if isinstance(carried, list):
        by_uid: dict[str, list[dict[str, Any]]] = {}
        for record in carried:
            by_uid.setdefault(record.uid or "", []).append(record.event or {})
        requests = {uid: _request(*events) for uid, events in by_uid.items()}
    else:
        requests = carried
    failed = failed or {}
    return JobSpan(
        job_id,
        created,
        finished,
        created,
        finished,
        tuple(requests),
        frozenset(failed),
        requests=requests,
        error_codes=failed,
    )


def _letter(
    record: Record,
    written: float,
    code: str = "undecodable",
    job: str | None = None,
    fullstory_code: str | None = None,
):
    headers = {"dlq.error.code": code.encode()}
    if fullstory_code is not None:
        headers["dlq.fullstory.code"] = fullstory_code.encode()
    if job is not None:
        headers["dlq.job.id"] = job.encode()
    return DeadLetter(record.partition, record.offset, written, key=None, headers=headers)


A1 = Record(0, 0, produced_s=10.0, event=_event("a", display_name="A1"))
B1 = Record(0, 1, produced_s=10.0, event=_event("b", properties={"visits": 1}))
A2 = Record(0, 2, produced_s=15.0, event=_event("a", display_name="A2"))
RECORDS = [A1, B1, A2]


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
    jobs = [_job("j1", [A1, B1], 10.5, 11.0), _job("j2", [A2], 16.0, 20.0)]
    acked = ack_times(RECORDS, {}, jobs)
    found = commit_violations(RECORDS, acked, [Sample(seen_at, 0, committed)])
    assert bool(found) is broken, found


def test_a_job_created_before_the_record_does_not_acknowledge_it():
    """Only a job created after a record was produced can carry it."""
    acked = ack_times(RECORDS, {}, [_job("j1", [A1, B1], 10.5, 30.0)])
    assert acked[(0, 2)] == NEVER


def test_a_record_is_acknowledged_by_the_job_that_carried_it_not_by_any_job_of_its_uid():
    """Both changes of ``a`` were produced before either job: the job that carried only the
    first one (it holds A1) ends at 11, the one carrying the second (A2) at 20. A commit
    past the second change at 12 passes an unacknowledged record; at 21 it does not. (Giving
    credit to any later job of the uid would call A2 acknowledged at 11.)"""
    early = Record(0, 2, produced_s=10.0, event=_event("a", display_name="A2"))
    records = [A1, B1, early]
    jobs = [_job("j1", [A1, B1], 10.5, 11.0), _job("j2", [early], 11.5, 20.0)]
    acked = ack_times(records, {}, jobs)
    assert acked[(0, 2)] == 20.0
    assert commit_violations(records, acked, [Sample(12.0, 0, 3)])
    assert commit_violations(records, acked, [Sample(21.0, 0, 3)]) == []


def test_a_failed_user_is_acknowledged_only_by_its_dead_letter():
    """A user among a job's errors is not imported; its DLQ copy acknowledges it."""
    jobs = [_job("j1", [A1, B1], 10.5, 11.0, failed={"b": "invalid_user"})]
    letter = _letter(B1, 11.5, "fullstory_rejected", "j1", "invalid_user")
    assert ack_times(RECORDS, {}, jobs)[(0, 1)] == NEVER
    assert ack_times(RECORDS, {(0, 1): letter}, jobs)[(0, 1)] == 11.5


def test_a_dead_letter_counts_from_when_kafka_took_it():
    """A letter Kafka appended at 12 acknowledges its record at 12: a commit past it seen at
    11.5 (the worker had produced the letter, Kafka had not confirmed it) is reported."""
    bad = Record(0, 0, produced_s=10.0, event=None)
    acked = ack_times([bad], {(0, 0): _letter(bad, 12.0)}, [])
    assert commit_violations([bad], acked, [Sample(11.5, 0, 1)])
    assert commit_violations([bad], acked, [Sample(12.5, 0, 1)]) == []


class _Message:
    def __init__(self, kind: int) -> None:
        self._kind = kind

    def headers(self) -> list[tuple[str, bytes]]:
        return [("dlq.source.partition", b"0"), ("dlq.source.offset", b"7")]

    def timestamp(self) -> tuple[int, int]:
        return (self._kind, 12_000)

    def key(self) -> bytes:
        return b"k"


def test_a_letter_stamped_by_the_producer_is_reported():
    """Only a LogAppendTime is Kafka's: a letter carrying its CreateTime (the DLQ topic was
    not created with ``create_dlq_topic``) proves nothing about when Kafka had it."""
    by_kafka, by_producer = (
        letter_from(_Message(TIMESTAMP_LOG_APPEND_TIME)),
        letter_from(_Message(TIMESTAMP_CREATE_TIME)),
    )
    assert (by_kafka.written_s, by_kafka.source_offset, by_kafka.broker_time) == (12.0, 7, True)
    assert producer_stamped([by_kafka]) == []
    assert producer_stamped([by_kafka, by_producer])


def test_the_final_commit_is_checked_at_a_finite_time():
    """A record never acknowledged (lost: no job carried it, no letter) below the final
    commit is reported; with every record acknowledged the final commit is fine."""
    jobs = [_job("j1", [A1], 10.5, 11.0), _job("j2", [A2], 16.0, 20.0)]  # b never sent
    acked = ack_times(RECORDS, {}, jobs)
    assert final_commit_violations(RECORDS, acked, {0: 3}, read_s=30.0)
    jobs.append(_job("j3", [B1], 10.5, 12.0))
    acked = ack_times(RECORDS, {}, jobs)
    assert final_commit_violations(RECORDS, acked, {0: 3}, read_s=30.0) == []


def test_a_good_record_in_the_dlq_is_reported_unless_the_scenario_expects_it():
    """Undecodable records may always be dead-lettered; a decodable one only when the
    scenario expects it with that code, and then only if the job its letter blames carried
    it and failed its uid with the FullStory code the letter carries."""
    garbage = Record(0, 3, produced_s=10.0, event=None)
    records = [*RECORDS, garbage]
    jobs = [_job("j1", [A1, B1], 10.5, 11.0, failed={"b": "invalid_user"})]
    links = link(records, jobs)
    b_rejected = _letter(B1, 11.5, "fullstory_rejected", "j1", "invalid_user")

    def expect_b(record: Record, code: str) -> bool:
        return record.uid == "b" and code == "fullstory_rejected"

    assert dead_letter_problems(records, [_letter(garbage, 11.0)], jobs, links) == []
    assert dead_letter_problems(records, [b_rejected], jobs, links, expect_b) == []
    assert dead_letter_problems(records, [b_rejected], jobs, links)  # not expected
    a_letter = _letter(A1, 11.5, "fullstory_rejected", "j1", "invalid_user")  # j1 did not fail a
    assert dead_letter_problems(records, [a_letter], jobs, links, lambda r, c: True)
    other_code = _letter(B1, 11.5, "type_mismatch", "j1")
    assert dead_letter_problems(records, [other_code], jobs, links, lambda r, c: True)
    other_fullstory_code = _letter(B1, 11.5, "fullstory_rejected", "j1", "type_mismatch")
    assert dead_letter_problems(records, [other_fullstory_code], jobs, links, lambda r, c: True)
    assert dead_letter_problems(records, [_letter(Record(0, 9, 1.0, None), 11.0)], jobs, links)


def test_a_record_sent_again_after_it_was_committed_is_reported():
    """Once a commit passed a record, no job created later may carry it again (that bounds
    every worker's duplicates); a re-send before the commit is a legitimate duplicate."""
    jobs = [_job("j1", [A1, B1], 10.5, 11.0), _job("j2", [A1], 13.0, 14.0)]
    links = link(RECORDS, jobs)
    assert resent_after_commit(RECORDS, jobs, links, [Sample(12.0, 0, 1)])
    assert resent_after_commit(RECORDS, jobs, links, [Sample(12.0, 0, 0), Sample(15.0, 0, 1)]) == []


def test_a_stopped_worker_s_duplicates_are_what_it_left_uncommitted():
    """Worker 0 sent a and b in j1 and stopped at 12. Records it had got committed by then
    must not be sent again after it: with offset 1 committed, a re-sent in j2 is reported;
    with nothing committed, a is among what it left uncommitted."""
    jobs = [_job("j1", [A1, B1], 10.5, 11.0), _job("j2", [A1], 13.0, 14.0)]
    links = link(RECORDS, jobs)
    sends = worker_sends(RECORDS, jobs, links, [Sample(11.5, 0, 1)], {"j1"}, stopped_s=12.0)
    assert (sends.uncommitted, sends.resent) == ({(0, 1)}, {(0, 0)})
    assert stop_problems(0, sends)
    sends = worker_sends(RECORDS, jobs, links, [], {"j1"}, stopped_s=12.0)
    assert (len(sends.uncommitted), len(sends.resent)) == (2, 1)
    assert stop_problems(0, sends) == []


def test_a_record_is_linked_to_the_runs_whose_fold_is_the_request():
    """A request is the fold of consecutive records of its uid: the last record pins the
    run's end, an earlier one whose value a later one overrides is only possibly carried,
    and records produced after the job was created are never in it."""
    visits = [
        Record(0, n, produced_s=10.0, event=_event("u", properties={"visits": v}))
        for n, v in enumerate([1, 2, 3])
    ]
    request = _request(visits[1].event, visits[2].event)
    assert sorted(matching_runs(visits, request, created_s=11.0)) == [(0, 2), (1, 2), (2, 2)]
    links = link(visits, [_job("j", {"u": request}, 11.0, 12.0)])
    assert [links.certain.get((0, n), set()) for n in range(3)] == [set(), set(), {"j"}]
    assert [links.possible.get((0, n), set()) for n in range(3)] == [{"j"}] * 3
    late = [*visits[:2], Record(0, 2, produced_s=11.5, event=visits[2].event)]
    assert matching_runs(late, request, created_s=11.0) == []


def test_a_request_that_is_no_fold_of_its_records_is_reported():
    """A value nobody produced, a missing change, a wrongly declared type or a uid sent
    twice in one job is reported."""
    jobs = [_job("j1", [A1, B1], 10.5, 11.0)]
    assert unmatched(RECORDS, jobs) == []
    wrong = {
        "a": {"uid": "a", "display_name": "A9"},
        "b": {
            "uid": "b",
            "properties": {"visits": 1},
            "schema": {"properties": {"visits": "real"}},
        },
    }
    assert len(unmatched(RECORDS, [_job("j1", wrong, 10.5, 11.0)])) == 2
    assert unmatched(RECORDS, [replace(_job("j1", [A1], 10.5, 11.0), uids=("a", "a"))])


def test_a_record_refused_before_merging_is_in_no_run():
    """The worker dead-letters a record breaking a published rule before merging it, without a
    job: the run around it folds without it. Only a letter the scenario expects, naming no
    job, takes a record out of the runs."""
    first = Record(0, 0, produced_s=10.0, event=_event("a", email="a@example.com"))
    bad = Record(0, 1, produced_s=10.0, event=_event("a", properties={"9lives": 1}))
    records = [first, bad, A2]
    job = _job("j1", [first, A2], 16.0, 17.0)
    assert unmatched(records, [job])  # no run of all three folds to the request
    expected = lambda record, code: code == "invalid_property_name"  # noqa: E731
    early = {(0, 1): _letter(bad, 10.5, "invalid_property_name")}
    carried = refused_early(records, early, expected)
    assert carried == [first, A2] and unmatched(carried, [job]) == []
    assert refused_early(records, early, None) == records  # the scenario expects nothing
    with_job = {(0, 1): _letter(bad, 10.5, "invalid_property_name", job="j0")}
    assert refused_early(records, with_job, expected) == records  # FullStory's refusal
    unexpected = {(0, 1): _letter(bad, 10.5, "property_too_large")}
    assert refused_early(records, unexpected, expected) == records


def test_state_must_be_the_fold_of_what_was_not_dead_lettered():
    """A lost or reordered update and a dead-lettered user that still got in are reported."""
    letter = _letter(B1, 11.5)
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
    a, ab, ba = {"a": {"uid": "a"}}, {"a": {"uid": "a"}, "b": {"uid": "b"}}, {"b": {}, "a": {}}
    assert overlaps([_job("j1", a, 1, 3), _job("j2", ab, 3, 4)]) == []
    assert overlaps([_job("j1", a, 1, 3), _job("j2", ba, 2, 4)])
    assert overlaps([_job("j1", a, 1, NEVER), _job("j2", a, 5, 6)])


def test_drain_time_is_when_every_partition_reached_its_end():
    """Time to drain counts until the last partition was seen committed at its log end."""
    samples = [Sample(3.0, 0, 5), Sample(4.0, 1, 2), Sample(6.0, 1, 7)]
    assert drain_time(samples, {0: 5, 1: 7}, started_s=1.0) == 5.0
    assert drain_time(samples, {0: 6, 1: 7}, started_s=1.0) is None


def _request_log(seq: int, arrived: float, status: int = 200, retry_after: int | None = None):
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
    limited = _request_log(1, 100.0, status=429, retry_after=2)
    in_flight, later = _request_log(2, 100.05), _request_log(3, 102.02)
    count, crossed, breaches = retry_after_breaches([limited, in_flight, later])
    assert (count, len(crossed), breaches) == (1, 1, [])
    count, _crossed, breaches = retry_after_breaches([limited, _request_log(4, 101.0)])
    assert count == 1 and len(breaches) == 1
