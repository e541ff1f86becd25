"""SIGTERM: stop fetching, send what is buffered, wait for jobs and dead letters up to the
deadline, commit exactly the acknowledged prefix (naming jobs still running), leave."""

from __future__ import annotations


def test_shutdown_sends_the_buffer_and_commits_the_log_end_when_jobs_end_in_time(
    make_loop, kafka, fullstory
):
    """Buffered records are sent before the final commit, so with jobs that end in time the
    commit is the log end and a restart repeats nothing; the worker then leaves the group."""
    for uid in ("u0", "u1", "u2"):
        kafka.change(0, uid)
    loop = make_loop(max_wait_s=60.0)
    loop.source.assign([0])
    loop.turn(3)
    assert fullstory.jobs() == []
    fullstory.complete_on_poll = 1
    loop.shutdown(timeout_s=5.0)
    (job,) = fullstory.jobs()
    assert sorted(job.uids) == ["u0", "u1", "u2"]
    assert kafka.committed_offset(0) == 3
    assert loop.source.closed


def test_shutdown_past_the_deadline_commits_the_prefix_and_names_the_running_job(
    make_loop, kafka, fullstory
):
    """Jobs that outlast the deadline are abandoned: the final commit stops below their
    records, names them for the next owner, and the worker still leaves within the deadline."""
    kafka.change(0, "u0")
    kafka.change(0, "u1")
    loop = make_loop(max_users=1)
    loop.source.assign([0])
    loop.turn_until(lambda: len(fullstory.jobs()) == 2, "a job per user")
    first, second = fullstory.job_of("u0"), fullstory.job_of("u1")
    fullstory.finish(first.id)
    loop.turn_until(lambda: kafka.committed_offset(0) == 1, "the first record committed")
    started = loop.clock.monotonic()
    loop.shutdown(timeout_s=2.0)
    assert loop.clock.monotonic() - started <= 2.5
    assert kafka.committed_offset(0) == 1
    assert kafka.committed_jobs(0) == [second.id]
    assert loop.source.closed


def test_shutdown_does_not_commit_a_dead_letter_kafka_never_confirmed(make_loop, kafka, fullstory):
    """A dead letter still unconfirmed at the deadline is not acknowledged: the final commit
    stays below it, so the next owner dead-letters it again rather than lose it."""
    kafka.change(0, "u0")
    kafka.produce(0, b"\xff not avro")
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs() and loop.dlq.letters, "a job and a dead letter")
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_offset(0) == 1, "the good record committed")
    loop.shutdown(timeout_s=1.0)
    assert kafka.committed_offset(0) == 1
    assert loop.source.closed
