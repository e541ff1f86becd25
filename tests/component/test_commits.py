"""Commits as Kafka stores them: the in-flight jobs a partition's next owner must wait for are
named in the commit metadata as soon as they exist, and a commit Kafka did not store is
offered again."""

from __future__ import annotations

import pytest

from worker.loop.commit.ledger import decode


def test_a_new_job_is_named_at_once_even_when_no_offset_moves(make_loop, kafka, fullstory):
    """If the worker dies while a job runs, the next owner must know of the job to wait for
    it: the commit naming a new job goes out as soon as the job exists (within one commit
    interval), though the committed offset does not move, and the name goes once it ended."""
    kafka.change(0, "u0")
    loop = make_loop(commit_interval_s=5.0)  # only the commit made for the new job can do it
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "the first job")
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_offset(0) == 1, "the first record committed")
    kafka.change(0, "u1")
    loop.turn_until(lambda: len(fullstory.jobs()) == 2, "the second job")
    created_at = loop.clock.monotonic()
    job = fullstory.jobs()[1]
    loop.turn_until(lambda: kafka.committed_jobs(0) == [job.id], "the job named in Kafka")
    assert loop.clock.monotonic() - created_at < 0.5  # well within one commit interval
    assert kafka.committed_offset(0) == 1
    fullstory.finish(job.id)
    loop.turn_until(lambda: kafka.committed_offset(0) == 2, "the second record committed")
    loop.turn_until(lambda: kafka.committed_jobs(0) == [], "the ended job no longer named")


@pytest.mark.parametrize("how", ["error", "refused"], ids=["kafka-error", "client-refused"])
def test_a_failed_commit_of_the_watermark_is_offered_again(make_loop, kafka, fullstory, how):
    """A commit Kafka did not store (the coordinator moved, a request timed out) is sent
    again, so the group's offset reaches what was acknowledged without waiting for new
    records to move it further."""
    kafka.change(0, "u0")
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "the job")
    job = fullstory.jobs()[0]
    loop.turn_until(lambda: kafka.committed_jobs(0) == [job.id], "the job named in Kafka")
    loop.source.fail_commits(2, how)
    fullstory.finish(job.id)
    loop.turn_until(lambda: kafka.committed_offset(0) == 1, "the record committed")
    assert [c.stored for c in loop.source.commits[-3:]] == [False, False, True]
    assert kafka.committed_jobs(0) == []


@pytest.mark.parametrize("how", ["error", "refused"], ids=["kafka-error", "client-refused"])
def test_a_failed_commit_naming_a_job_is_offered_again(make_loop, kafka, fullstory, how):
    """The commit that names a new job may fail too: it is sent again while the job runs,
    or a crash now would leave the next owner unaware of the job."""
    kafka.change(0, "u0")
    loop = make_loop()
    loop.source.assign([0])
    loop.source.fail_commits(3, how)
    loop.turn_until(lambda: fullstory.jobs(), "the job")
    job = fullstory.jobs()[0]
    loop.turn_until(lambda: kafka.committed_jobs(0) == [job.id], "the job named in Kafka")
    assert sum(not c.stored for c in loop.source.commits) == 3
    assert job.running


def test_the_loops_own_commits_never_wait_for_the_coordinator(make_loop, kafka, fullstory):
    """Commits made while the loop runs are asynchronous (their results come back through
    the commit callback), so a coordinator that does not answer never stalls polling; only
    a revoke or a shutdown waits, and then for its own partitions only."""
    kafka.change(0, "u0")
    kafka.change(1, "u1")
    loop = make_loop(max_users=1)
    loop.source.assign([0, 1])
    loop.turn_until(lambda: len(fullstory.jobs()) == 2, "a job per partition")
    for job in fullstory.jobs():
        fullstory.finish(job.id)
    loop.turn_until(kafka.committed_to_end, "both partitions committed")
    assert loop.source.commits and not any(c.wait for c in loop.source.commits)
    kafka.change(1, "u2")
    loop.turn_until(lambda: len(fullstory.jobs()) == 3, "a job for the new record")
    before = len(loop.source.commits)
    loop.source.revoke([0])
    loop.turn()
    waited = [c for c in loop.source.commits[before:] if c.wait]
    assert waited and all(set(c.offsets) == {("users", 0)} for c in waited)


def test_what_a_job_acknowledged_is_committed_at_once_not_at_the_next_interval(
    make_loop, kafka, fullstory
):
    """The commit follows the job's end in the same turn: a restart (or the next owner)
    repeats nothing FullStory already acknowledged, whatever the commit interval."""
    kafka.change(0, "u1")
    loop = make_loop(commit_interval_s=3_600)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "the job")
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_offset(0) == 1, "the record committed")
    assert loop.clock.monotonic() < 3_600


def test_the_read_position_is_published_while_the_committed_offset_waits(
    make_loop, kafka, fullstory
):
    """During a catch-up the records are read and merged long before their job ends: each
    commit carries how far the partition was read, so ``status`` sees the drain move, but
    the committed offset stays the acknowledged one until FullStory acknowledged."""
    for i in range(3):
        kafka.change(0, f"u{i}")
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "the job")
    job = fullstory.jobs()[0]
    loop.turn_until(lambda: published(kafka).jobs == {job.id: 3}, "the job and its users")
    last_progress = loop.metric("fsus_last_commit_timestamp_seconds")
    assert published(kafka).read == 3
    assert kafka.committed_offset(0) == 0
    assert loop.metric("fsus_read_position", topic=kafka.topic, partition="0") == 3
    kafka.change(0, "u3")
    loop.turn_until(lambda: published(kafka).read == 4, "the new read position published")
    assert kafka.committed_offset(0) == 0
    # Commits that carry only a read position or a job list are no progress: the gauge the
    # no-progress alert reads stays where it was while FullStory holds the job.
    assert loop.metric("fsus_last_commit_timestamp_seconds") == last_progress
    fullstory.finish(job.id)
    loop.turn_until(lambda: kafka.committed_offset(0) == 3, "the job's records committed")
    assert published(kafka).read == 4
    loop.turn(5)  # Kafka's answer to the commit comes with a later poll
    assert loop.metric("fsus_last_commit_timestamp_seconds") > last_progress


def published(kafka):
    return decode(kafka.committed[(kafka.topic, 0)][1])
