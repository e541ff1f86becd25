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
