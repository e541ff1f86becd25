"""What the loop commits: a record's offset is passed only once FullStory finished the job
that carried it, or Kafka confirmed its dead letter; users FullStory rejects, and only they,
go to the DLQ."""

from __future__ import annotations

import random
import string
from collections.abc import Sequence

import pytest

from tests.fakes import FakeKafka, ScriptedFullStory
from worker.errors import ReadBackFailed, RetriableError
from worker.kafka.dlq import FULLSTORY_CODE_MAX_BYTES, dead_letter_headers
from worker.records import SourceRecord, TopicPartition


def _committed(kafka: FakeKafka, partition: int = 0) -> int:
    return kafka.committed_offset(partition) or 0


def test_a_record_is_committed_only_after_its_job_completed(make_loop, kafka, fullstory):
    """While FullStory still processes a job, a crash must leave its records to be read
    again: the commit stays below them however long the job runs and however many commit
    intervals pass, and reaches the log end once the job COMPLETED."""
    for i in range(3):
        kafka.change(0, f"u{i}", email=f"u{i}@example.com")
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "a job for the three users")
    (job,) = fullstory.jobs()
    assert sorted(job.uids) == ["u0", "u1", "u2"]
    loop.turn_until(lambda: job.polls >= 3, "the job seen PROCESSING three times")
    loop.clock.advance(5.0)  # ten commit intervals
    loop.turn(20)
    assert _committed(kafka) == 0
    fullstory.finish(job.id)
    loop.turn_until(lambda: _committed(kafka) == 3, "a commit at the log end")


def test_a_job_ending_first_does_not_commit_past_an_earlier_running_one(
    make_loop, kafka, fullstory
):
    """Jobs end in any order; the commit is the contiguous acknowledged prefix, so records
    of a later job that ended first are not committed over an earlier job still running."""
    for i in range(3):
        kafka.change(0, f"u{i}")
    loop = make_loop(max_users=1)
    loop.source.assign([0])
    loop.turn_until(lambda: len(fullstory.jobs()) == 3, "one job per user")
    first = fullstory.job_of("u0")
    fullstory.finish(fullstory.job_of("u2").id)
    fullstory.finish(fullstory.job_of("u1").id)
    loop.turn_until(lambda: loop.metric("fsus_jobs_in_flight") == 1, "the ended jobs collected")
    loop.clock.advance(1.0)
    loop.turn(20)
    assert _committed(kafka) == 0
    fullstory.finish(first.id)
    loop.turn_until(lambda: _committed(kafka) == 3, "a commit at the log end")


def test_a_dead_letter_is_acknowledged_only_once_kafka_confirmed_it(make_loop, kafka, fullstory):
    """An undecodable record goes to the DLQ with its reason, and its offset is committed
    only when Kafka confirmed the dead letter: a later good record's job ending is not
    enough, or a crash would lose the bad record altogether."""
    kafka.produce(0, b"\xff not avro", b"k")
    kafka.change(0, "good")
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "a job for the good record")
    fullstory.finish()
    loop.turn_until(
        lambda: loop.metric("fsus_records_acknowledged_total", outcome="imported"),
        "the good record acknowledged",
    )
    ((letter),) = loop.dlq.letters
    assert (letter.record.offset, letter.code) == (0, "undecodable")
    assert "not Avro" in letter.message
    loop.clock.advance(1.0)
    loop.turn(20)
    assert _committed(kafka) == 0
    loop.dlq.confirm()
    loop.turn_until(lambda: _committed(kafka) == 2, "a commit at the log end")


def test_users_of_a_failed_job_go_to_the_dlq_and_nobody_else(make_loop, kafka):
    """A FAILED job imported every user not listed in its errors (read over several pages):
    each record of a listed user goes to the DLQ as `fullstory_rejected` with FullStory's code
    and the job id, the others' records are acknowledged, and the commit waits for the dead
    letters."""
    fullstory = ScriptedFullStory(error_page_size=1)
    for uid in ["a", "b", "c", "a", "b", "c"]:
        kafka.change(0, uid)
    loop = make_loop(fullstory=fullstory)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "one job")
    (job,) = fullstory.jobs()
    fullstory.finish(job.id, failed={"b": "invalid_email", "c": "invalid_property"})
    loop.turn_until(lambda: len(loop.dlq.letters) == 4, "four dead letters")
    letters = sorted(loop.dlq.letters, key=lambda letter: letter.record.offset)
    assert {d.message for d in letters} == {
        "invalid_email (scripted)",
        "invalid_property (scripted)",
    }
    assert all(d.record.value == kafka.logs[("users", 0)][d.record.offset].value for d in letters)
    assert [(d.record.offset, d.code, d.fullstory_code, d.job_id) for d in letters] == [
        (1, "fullstory_rejected", "invalid_email", job.id),
        (2, "fullstory_rejected", "invalid_property", job.id),
        (4, "fullstory_rejected", "invalid_email", job.id),
        (5, "fullstory_rejected", "invalid_property", job.id),
    ]
    loop.clock.advance(1.0)
    loop.turn(20)
    assert _committed(kafka) == 1  # "a" at offset 0 was imported; "b" waits for its letters
    loop.dlq.confirm(1)  # b's first letter (offset 1): b's second one still holds it
    loop.clock.advance(1.0)
    loop.turn(20)
    assert _committed(kafka) == 1
    loop.dlq.confirm()
    loop.turn_until(lambda: _committed(kafka) == 6, "a commit at the log end")
    assert len(loop.dlq.letters) == 4


def test_a_batch_refused_as_a_whole_dead_letters_the_refused_user(make_loop, kafka, fullstory):
    """A 400 for the whole body (no job created) isolates the refused user: its records go
    to the DLQ as `fullstory_rejected` with FullStory's code and message and no job id, the
    other user is imported."""
    kafka.change(0, "good")
    kafka.change(0, "bad")
    fullstory.refuse("bad", "invalid_argument", "email is too long")
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "the good user's job")
    assert fullstory.jobs()[0].uids == ["good"]
    fullstory.finish()
    loop.turn_until(lambda: loop.dlq.letters, "the refused user's dead letter")
    ((letter),) = loop.dlq.letters
    assert (
        letter.record.offset,
        letter.code,
        letter.fullstory_code,
        letter.message,
        letter.job_id,
    ) == (
        1,
        "fullstory_rejected",
        "invalid_argument",
        "email is too long",
        None,
    )
    loop.dlq.confirm()
    loop.turn_until(lambda: _committed(kafka) == 2, "a commit at the log end")


def _label_values(loop, metric: str, label: str) -> set[str]:
    """Every value ``label`` takes among the samples of ``metric`` on the loop's /metrics."""
    return {
        sample.labels[label]
        for family in loop.metrics.registry.collect()
        for sample in family.samples
        if sample.name == metric
    }


def test_fullstorys_own_code_is_never_a_metric_label(make_loop, kafka):
    """FullStory's per-user error code is free-form text a peer chooses: a user a FAILED job
    lists with a 300-character code of random text is counted under the one label value
    `fullstory_rejected` (the metric's cardinality stays the worker's to decide), and its code
    travels in the letter's `dlq.fullstory.code` header, cut to a bounded length."""
    weird = "".join(random.Random(15).choices(string.printable, k=300))
    fullstory = ScriptedFullStory()
    kafka.change(0, "good")
    kafka.change(0, "odd")
    loop = make_loop(fullstory=fullstory)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "one job")
    fullstory.finish(fullstory.jobs()[0].id, failed={"odd": weird})
    loop.turn_until(lambda: loop.dlq.letters, "the odd user's dead letter")
    loop.dlq.confirm()
    loop.turn_until(lambda: _committed(kafka) == 2, "a commit at the log end")

    assert _label_values(loop, "fsus_dead_letters_total", "code") == {"fullstory_rejected"}
    assert loop.metric("fsus_dead_letters_total", code="fullstory_rejected") == 1
    ((letter),) = loop.dlq.letters
    assert (letter.code, letter.fullstory_code) == ("fullstory_rejected", weird)
    headers = dict(
        dead_letter_headers(
            letter.record, letter.code, letter.message, letter.job_id, letter.fullstory_code
        )
    )
    assert headers["dlq.error.code"] == b"fullstory_rejected"
    assert headers["dlq.fullstory.code"] == weird.encode()[:FULLSTORY_CODE_MAX_BYTES]
    assert len(headers["dlq.fullstory.code"]) == FULLSTORY_CODE_MAX_BYTES < len(weird)


class _FlakyReader:
    """Reads records back from ``kafka`` after raising each of ``failures`` once."""

    def __init__(self, kafka: FakeKafka, *failures: Exception) -> None:
        self.kafka = kafka
        self.failures = list(failures)
        self.reads = 0

    def read(self, tp: TopicPartition, offsets: Sequence[int]) -> dict[int, SourceRecord]:
        self.reads += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.kafka.read(tp, offsets)


class _PartialReader:
    """Each pass reads at most ``per_pass`` of its offsets, then fails as a pass past its
    deadline does, handing what it read."""

    def __init__(self, kafka: FakeKafka, per_pass: int) -> None:
        self.kafka = kafka
        self.per_pass = per_pass
        self.passes: list[list[int]] = []

    def read(self, tp: TopicPartition, offsets: Sequence[int]) -> dict[int, SourceRecord]:
        self.passes.append(list(offsets))
        found = self.kafka.read(tp, offsets[: self.per_pass])
        if len(offsets) > self.per_pass:
            raise ReadBackFailed("reading back: no answer in 60s", found)
        return found


class _CountingReader:
    """Reads records back from ``kafka``, noting each pass (partition, offsets)."""

    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka
        self.passes: list[tuple[TopicPartition, list[int]]] = []

    def read(self, tp: TopicPartition, offsets: Sequence[int]) -> dict[int, SourceRecord]:
        self.passes.append((tp, list(offsets)))
        return self.kafka.read(tp, offsets)


def test_the_rejected_users_of_a_job_are_read_back_in_one_pass_per_partition(make_loop, kafka):
    """Rejected users hold their job until their records are read back: a job's rejected
    users on a partition are read in one pass over all their offsets, not one pass a user,
    and each letter still carries its own record, the user's records in offset order."""
    fullstory = ScriptedFullStory()
    for uid, partition in [("a", 0), ("b", 1), ("c", 0), ("ok", 0), ("a", 0), ("d", 1), ("c", 0)]:
        kafka.change(partition, uid, display_name=f"{uid} on {partition}")
    reader = _CountingReader(kafka)
    loop = make_loop(fullstory=fullstory, reader=reader)
    loop.source.assign([0, 1])
    loop.turn_until(lambda: fullstory.jobs(), "one job")
    (job,) = fullstory.jobs()
    failed = {"a": "invalid_user", "b": "invalid_user", "c": "invalid_email", "d": "invalid_user"}
    fullstory.finish(job.id, failed=failed)
    loop.turn_until(lambda: len(loop.dlq.letters) == 6, "six dead letters")
    assert sorted(reader.passes) == [(("users", 0), [0, 1, 3, 4]), (("users", 1), [0, 1])]
    letters = [(d.record.partition, d.record.offset, d.fullstory_code) for d in loop.dlq.letters]
    assert sorted(letters) == [
        (0, 0, "invalid_user"), (0, 1, "invalid_email"), (0, 3, "invalid_user"),
        (0, 4, "invalid_email"), (1, 0, "invalid_user"), (1, 1, "invalid_user"),
    ]  # fmt: skip
    for letter in loop.dlq.letters:
        assert letter.record == kafka.logs[letter.record.tp][letter.record.offset]


def test_a_read_back_too_long_for_its_deadline_ends_by_reading_only_what_is_left(make_loop, kafka):
    """A pass that runs out of time after reading part of its offsets keeps that part: the
    next pass asks only for the rest, so a job whose rejected records take longer than one
    pass's deadline still gets its letters, each with its original record."""
    fullstory = ScriptedFullStory()
    for i in range(6):
        kafka.change(0, f"bad{i}")
    reader = _PartialReader(kafka, per_pass=2)
    loop = make_loop(fullstory=fullstory, reader=reader)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "one job")
    failed = {f"bad{i}": "invalid_user" for i in range(6)}
    fullstory.finish(fullstory.jobs()[0].id, failed=failed)
    loop.turn_until(lambda: len(loop.dlq.letters) == 6, "six dead letters")
    assert reader.passes == [[0, 1, 2, 3, 4, 5], [2, 3, 4, 5], [4, 5]]
    for letter in loop.dlq.letters:
        assert letter.record == kafka.logs[letter.record.tp][letter.record.offset]


def test_a_failed_read_back_is_tried_again_and_the_letters_still_go(make_loop, kafka):
    """Kafka failing to hand back a rejected user's records (`ReadBackFailed`) is waited out
    on the job thread: the records are read again, each gets its dead letter with its original
    value, and the commit reaches the log end once Kafka took the letters."""
    fullstory = ScriptedFullStory()
    kafka.change(0, "good")
    kafka.change(0, "bad")
    reader = _FlakyReader(kafka, ReadBackFailed("reading back: no answer in 60s"))
    loop = make_loop(fullstory=fullstory, reader=reader)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "one job")
    fullstory.finish(fullstory.jobs()[0].id, failed={"bad": "invalid_user"})
    loop.turn_until(lambda: loop.dlq.letters, "the rejected user's dead letter")
    ((letter),) = loop.dlq.letters
    assert reader.reads == 2
    assert letter.record.value == kafka.logs[("users", 0)][1].value
    loop.dlq.confirm()
    loop.turn_until(lambda: _committed(kafka) == 2, "a commit at the log end")


def test_a_retriable_error_of_another_origin_while_reading_back_is_not_waited_out(make_loop, kafka):
    """Only `ReadBackFailed` is read again: another `RetriableError` out of the reader is a
    bug that stops the loop rather than being retried for ever, and the rejected user's record
    is neither dead-lettered nor committed (a restart reads it again)."""
    fullstory = ScriptedFullStory()
    kafka.change(0, "bad")
    reader = _FlakyReader(kafka, RetriableError("not Kafka's read-back"))
    loop = make_loop(fullstory=fullstory, reader=reader)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "one job")
    fullstory.finish(fullstory.jobs()[0].id, failed={"bad": "invalid_user"})
    with pytest.raises(RetriableError) as raised:
        loop.turn_until(lambda: False, "the read-back error reaching the loop")
    assert type(raised.value) is RetriableError
    assert not loop.dlq.letters and _committed(kafka) == 0
