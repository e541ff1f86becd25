"""The DLQ's side of the oracle: which letters may be there, and whose time counts.

A dead letter is acceptable for a record that does not decode (or has no uid), or for one the
scenario made bad (``ExpectedDeadLetter``) when, if the letter blames a job, it is a
``fullstory_rejected`` letter and that job possibly carried the record (``carriage``) and failed
its uid with the FullStory code the letter carries. Anything else is a good record in the DLQ.
A letter's time counts only if Kafka stamped it (LogAppendTime).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from tests.integration.faults.carriage import Links
from tests.integration.faults.jobs import JobSpan
from tests.integration.faults.topics import DeadLetter, Record

# Whether the scenario made a record bad enough to be dead-lettered with this code.
ExpectedDeadLetter = Callable[[Record, str], bool]


def dead_letter_problems(
    records: Sequence[Record],
    letters: Iterable[DeadLetter],
    jobs: Sequence[JobSpan],
    links: Links,
    expected: ExpectedDeadLetter | None = None,
) -> list[str]:
    """Letters the DLQ should not hold: for a record that is not in the source, a good record
    the scenario did not expect there with that code, or one blaming a job that did not
    carry the record or did not fail its uid with the letter's FullStory code."""
    by_key = {(r.partition, r.offset): r for r in records}
    by_id = {job.id: job for job in jobs}
    problems = []
    for letter in letters:
        key = (letter.source_partition, letter.source_offset)
        record = by_key.get(key)
        where = f"{key[0]}:{key[1]}"
        if record is None:
            problems.append(f"a letter for {where}, which the source topic does not hold")
            continue
        if record.uid is None:
            continue  # does not decode, or no uid: bad whatever the scenario did
        if expected is None or not expected(record, letter.code):
            problems.append(
                f"good record {where} of {record.uid} dead-lettered with code {letter.code!r}"
            )
            continue
        if letter.job_id is None:
            continue
        job = by_id.get(letter.job_id)
        if (
            job is None
            or letter.job_id not in links.possible.get(key, ())
            or letter.code != "fullstory_rejected"
            or job.error_codes.get(record.uid) != letter.fullstory_code
        ):
            problems.append(
                f"record {where} of {record.uid} dead-lettered with code {letter.code!r} "
                f"(FullStory's {letter.fullstory_code!r}) blaming job {letter.job_id}, which "
                "did not carry it and fail it so"
            )
    return problems


def producer_stamped(letters: Iterable[DeadLetter]) -> list[str]:
    """Letters whose time is the worker's (CreateTime), which proves nothing about when Kafka
    had them: the DLQ topic must stamp LogAppendTime."""
    count = sum(1 for letter in letters if not letter.broker_time)
    if not count:
        return []
    return [f"{count} letters carry the producer's time; create the DLQ with create_dlq_topic"]
