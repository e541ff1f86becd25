"""What the loop commits: a record's offset is passed only once FullStory finished the job
that carried it, or Kafka confirmed its dead letter; users FullStory rejects, and only they,
go to the DLQ."""

from __future__ import annotations

from tests.fakes import FakeKafka, ScriptedFullStory


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
    each record of a listed user goes to the DLQ with FullStory's code and the job id, the
    others' records are acknowledged, and the commit waits for the dead letters."""
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
    assert [(d.record.offset, d.code, d.job_id) for d in letters] == [
        (1, "invalid_email", job.id),
        (2, "invalid_property", job.id),
        (4, "invalid_email", job.id),
        (5, "invalid_property", job.id),
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
    to the DLQ with FullStory's code and message and no job id, the other user is imported."""
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
    assert (letter.record.offset, letter.code, letter.message, letter.job_id) == (
        1,
        "invalid_argument",
        "email is too long",
        None,
    )
    loop.dlq.confirm()
    loop.turn_until(lambda: _committed(kafka) == 2, "a commit at the log end")
