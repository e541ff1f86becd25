"""The headers of a dead letter (``worker.kafka.dlq.dead_letter_headers``)."""

from __future__ import annotations

from worker.errors import DeadLetterCode
from worker.kafka.dlq import dead_letter_headers
from worker.ops.letters import parse
from worker.records import SourceRecord


def test_a_source_records_own_dlq_headers_are_never_taken_for_the_workers():
    """A producer forged `dlq.job.id` and `dlq.error.code` on its record: the dead letter keeps
    them under `original.dlq.*`, writes the worker's own, and `dlq inspect` pins the letter on
    no job that never existed."""
    record = SourceRecord(
        "users", 3, 41, b"u1", b"v",
        headers=(("dlq.job.id", b"job-that-never-was"), ("dlq.error.code", b"ok"), ("trace", b"t")),
    )  # fmt: skip
    headers = dead_letter_headers(record, DeadLetterCode.UNDECODABLE, "not Avro", None)
    names = [name for name, _ in headers]
    assert names.count("dlq.error.code") == 1
    assert "dlq.job.id" not in names
    assert ("original.dlq.job.id", b"job-that-never-was") in headers
    assert ("trace", b"t") in headers
    letter = parse(0, 0, record.key, record.value, headers, (1, 0))
    assert letter.job_id is None
    assert letter.code == "undecodable"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("users", 3, 41)


def test_a_stand_in_says_why_its_letter_has_no_value_and_a_forged_reason_is_the_records_own():
    """A record gone from the topic is dead-lettered from a stand-in: its letter carries the
    worker's own `dlq.value.omitted`; a source record's `dlq.value.omitted` stays its own."""
    gone = SourceRecord("users", 3, 41, None, None, omitted="the record is no longer in the topic")
    headers = dead_letter_headers(gone, DeadLetterCode.FULLSTORY_REJECTED, "refused", "job-1")
    assert ("dlq.value.omitted", b"the record is no longer in the topic") in headers
    forged = SourceRecord("users", 3, 42, b"u1", b"v", headers=(("dlq.value.omitted", b"x"),))
    headers = dead_letter_headers(forged, DeadLetterCode.UNDECODABLE, "not Avro", None)
    assert [n for n, _ in headers if n.endswith("dlq.value.omitted")] == [
        "original.dlq.value.omitted"
    ]
