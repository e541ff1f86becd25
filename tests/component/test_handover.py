"""Partitions changing hands: a revoke sends what the partition has buffered and commits its
acknowledged prefix; a lost partition is never committed again; a new owner waits for the jobs
a previous owner left running (the fence) before sending that partition's records."""

from __future__ import annotations

from tests.fakes import FakeKafka
from worker.errors import ServerError


def test_revoke_sends_the_partitions_buffered_records_and_commits_them(make_loop, kafka, fullstory):
    """A revoked partition's buffered records go out before it is handed over and its commit
    reaches the log end, so the next owner repeats nothing; other partitions keep theirs."""
    kafka.change(0, "u0")
    kafka.change(0, "u1")
    kafka.change(1, "u9")
    loop = make_loop(max_wait_s=60.0)  # nothing is old enough to be sent on its own
    loop.source.assign([0, 1])
    loop.turn(3)
    assert fullstory.jobs() == []
    fullstory.complete_on_poll = 1
    loop.source.revoke([0])
    loop.turn()
    (job,) = fullstory.jobs()
    assert sorted(job.uids) == ["u0", "u1"]
    assert kafka.committed_offset(0) == 2
    assert loop.source.commits[-1].wait


def test_revoke_past_its_wait_commits_the_prefix_and_names_the_running_job(
    make_loop, kafka, fullstory
):
    """When a revoked partition's job outlasts the revoke's wait, the commit stops at the
    acknowledged prefix and names the job for the next owner; when the job ends later,
    nothing more is committed for the partition this worker no longer owns."""
    kafka.change(0, "u0")
    loop = make_loop(max_users=1, drain_timeout_s=2.0)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "the first job")
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_offset(0) == 1, "the first record committed")
    kafka.change(0, "u1")
    loop.turn_until(lambda: len(fullstory.jobs()) == 2, "the second job")
    running = fullstory.jobs()[1]
    loop.source.revoke([0])
    loop.turn()
    assert kafka.committed_offset(0) == 1
    assert kafka.committed_jobs(0) == [running.id]
    fullstory.finish(running.id)
    loop.turn_until(lambda: not loop.metric("fsus_jobs_in_flight"), "the ended job collected")
    loop.turn(20)
    assert kafka.committed_offset(0) == 1  # the late acknowledgement is not committed


def test_a_lost_partition_is_never_committed_again(make_loop, kafka, fullstory):
    """A lost partition already belongs to another member: the job that ends afterwards
    acknowledges nothing this worker commits."""
    kafka.change(0, "u0")
    kafka.change(1, "u1")
    loop = make_loop(max_users=1)
    loop.source.assign([0, 1])
    loop.turn_until(lambda: len(fullstory.jobs()) == 2, "a job per partition")
    commits_before = len(loop.source.commits)
    loop.source.lose([0])
    loop.turn()
    for job in fullstory.jobs():
        fullstory.finish(job.id)
    loop.turn_until(lambda: kafka.committed_offset(1) == 1, "partition 1 committed")
    assert kafka.committed_offset(0) is None or kafka.committed_offset(0) == 0
    assert all(("users", 0) not in c.offsets for c in loop.source.commits[commits_before:])


def test_a_revoked_partitions_batch_without_a_job_is_cancelled(make_loop, kafka, fullstory):
    """A batch of a revoked partition still retrying its POST when the revoke's wait ends is
    cancelled: a job it created later would be unknown to the partition's next owner."""
    kafka.change(0, "u0")
    fullstory.fail_next("create_batch", *[ServerError("HTTP 503", status=503)] * 10_000)
    loop = make_loop(drain_timeout_s=0.5)
    loop.source.assign([0])
    loop.turn_until(lambda: len(fullstory.posts) >= 2, "the POST retried")
    loop.source.revoke([0])
    loop.turn()
    loop.turn_until(lambda: not loop.metric("fsus_jobs_in_flight"), "the batch cancelled")
    assert fullstory.jobs() == []


def test_a_revoke_leaves_the_other_partitions_retrying_batches_alone(make_loop, kafka, fullstory):
    """Only the revoked partition's batches are cancelled: a batch of a partition the worker
    keeps, still retrying its POST, goes on to its job and its commit."""
    kafka.change(1, "kept")
    fullstory.fail_next("create_batch", *[ServerError("HTTP 503", status=503)] * 30)
    loop = make_loop(drain_timeout_s=0.5)
    loop.source.assign([0, 1])
    loop.turn_until(lambda: len(fullstory.posts) >= 2, "the POST retried")
    loop.source.revoke([0])
    loop.turn()
    loop.turn_until(lambda: fullstory.jobs(), "the kept partition's job")
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_offset(1) == 1, "the kept partition committed")


def test_a_revoke_does_not_wait_for_other_partitions_jobs(make_loop, kafka, fullstory):
    """The revoke's wait covers the leaving partitions only: a long job of a partition the
    worker keeps does not hold the rebalance (the whole group waits for it)."""
    kafka.change(1, "kept")
    loop = make_loop(drain_timeout_s=10.0)
    loop.source.assign([0, 1])
    loop.turn_until(lambda: fullstory.jobs(), "the kept partition's job")
    started = loop.clock.monotonic()
    loop.source.revoke([0])
    loop.turn()
    assert loop.clock.monotonic() - started < 1.0
    assert fullstory.jobs()[0].running


def test_an_unexpected_error_leaves_the_group(make_loop, kafka, fullstory):
    """After a crash of the loop the worker still leaves the group, so its partitions move
    to another replica at once instead of after the session timeout."""
    kafka.change(0, "u0")
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "a job")
    loop.close()
    assert loop.source.closed


def test_a_new_owner_waits_for_the_jobs_the_old_owner_left_running(make_loop, kafka, fullstory):
    """The commit metadata names a job a previous owner left running: the new owner holds
    that partition's records back until the job ended (so the old job cannot land older
    values last), keeps naming the job in its own commits meanwhile, and other partitions
    are not held."""
    old = fullstory.started_elsewhere("old-job", uids=("u0",))
    kafka.committed[("users", 0)] = (0, '{"fsus":1,"jobs":["old-job"]}')
    kafka.change(0, "u0", email="new@example.com")
    kafka.change(1, "u5")
    loop = make_loop()
    loop.source.assign([0, 1])
    loop.turn_until(lambda: fullstory.jobs()[1:], "a job for the unfenced partition")
    loop.turn_until(lambda: old.polls >= 3, "the old job watched")
    loop.clock.advance(1.0)
    loop.turn(20)
    assert [job.uids for job in fullstory.jobs()[1:]] == [["u5"]]
    assert "old-job" in kafka.committed_jobs(0)
    fullstory.finish("old-job")
    loop.turn_until(lambda: len(fullstory.jobs()) == 3, "the held record sent")
    assert fullstory.jobs()[2].users["u0"]["email"] == "new@example.com"
    fullstory.finish(fullstory.jobs()[2].id)
    loop.turn_until(lambda: kafka.committed_offset(0) == 1, "partition 0 committed")
    loop.turn_until(lambda: kafka.committed_jobs(0) == [], "the old job no longer named")


def test_a_partition_paused_when_it_moves_away_is_fetched_again_when_it_returns(
    make_loop, kafka: FakeKafka, fullstory
):
    """A pause outlives a re-assignment in librdkafka: a partition that moved away while
    backpressure paused it must be fetched again when it comes back."""
    kafka.change(0, "u0")
    loop = make_loop(max_pending=2, max_jobs=1)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "a job for u0")
    for uid in ("u1", "u2"):
        kafka.change(0, uid)  # waiting: the one job allowed runs
    loop.turn_until(lambda: ("users", 0) in loop.source.paused, "the partition paused")
    loop.source.lose([0])
    loop.turn()
    for job in fullstory.running():
        fullstory.finish(job.id)
    fullstory.complete_on_poll = 1
    loop.source.assign([0])
    loop.turn_until(lambda: kafka.committed_offset(0) == 3, "the partition read to its end")
