"""Backpressure: when the buffer is full the loop pauses its partitions and keeps polling
(so it stays in the group however long FullStory takes), and resumes them once drained."""

from __future__ import annotations


def test_too_many_waiting_users_pause_the_partitions_and_the_loop_keeps_polling(
    make_loop, kafka, fullstory
):
    """Users waiting for a job (here behind the one job allowed in flight) reach the bound:
    every owned partition is paused, nothing more is fetched, polling goes on; when the job
    ends the waiting users go, the partitions resume and the whole log is committed."""
    kafka.change(0, "u0")
    loop = make_loop(max_pending=4, max_jobs=1)
    loop.source.assign([0, 1])
    loop.turn_until(lambda: fullstory.jobs(), "a job for u0")
    for uid in ("u1", "u2", "u3", "u4"):
        kafka.change(0, uid)
    loop.turn_until(lambda: loop.source.paused, "the partitions paused")
    assert loop.source.paused == {("users", 0), ("users", 1)}
    kafka.change(1, "u9")
    polls = loop.source.polls
    loop.clock.advance(1.0)
    loop.turn(20)
    assert loop.source.polls >= polls + 20
    assert loop.source.positions[("users", 1)] == 0  # nothing fetched while paused
    assert len(fullstory.jobs()) == 1
    fullstory.complete_on_poll = 1
    fullstory.finish()
    loop.turn_until(lambda: not loop.source.paused, "the partitions resumed")
    loop.turn_until(kafka.committed_to_end, "both partitions committed to their end")


def test_a_partition_assigned_while_paused_is_resumed_with_the_others(make_loop, kafka, fullstory):
    """A partition that arrives while backpressure holds is paused too, and every paused
    partition, old or new, is fetched again once the waiting users went."""
    kafka.change(0, "u0")
    loop = make_loop(max_pending=2, max_jobs=1)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "a job for u0")
    for uid in ("u1", "u2"):
        kafka.change(0, uid)
    loop.turn_until(lambda: loop.source.paused, "partition 0 paused")
    kafka.change(1, "u9")
    loop.source.assign([1])
    loop.turn_until(lambda: ("users", 1) in loop.source.paused, "partition 1 paused too")
    fullstory.complete_on_poll = 1
    fullstory.finish()
    loop.turn_until(kafka.committed_to_end, "both partitions read to their end")
    assert not loop.source.paused


def test_a_partition_revoked_while_paused_is_forgotten_and_the_others_resume(
    make_loop, kafka, fullstory
):
    """Revoking one paused partition undoes its pause only, and its users no longer count: the
    partition kept is fetched again as soon as few enough users wait."""
    kafka.change(0, "u0")
    loop = make_loop(max_pending=4, max_jobs=1, drain_timeout_s=0.5)
    loop.source.assign([0, 1])
    loop.turn_until(lambda: fullstory.jobs(), "a job for u0")
    for partition, uid in ((0, "u1"), (0, "u2"), (1, "u3"), (1, "u4")):
        kafka.change(partition, uid)
    loop.turn_until(lambda: len(loop.source.paused) == 2, "both partitions paused")
    loop.source.revoke([0])  # u1 and u2 wait behind u0's job: the next owner sends them
    loop.turn_until(lambda: ("users", 0) not in loop.source.assigned, "partition 0 revoked")
    kafka.change(1, "u5")
    loop.turn_until(lambda: not loop.source.paused, "partition 1 resumed")
    loop.turn_until(lambda: loop.source.positions[("users", 1)] == 3, "u5 fetched")
    fullstory.complete_on_poll = 1
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_offset(1) == 3, "partition 1 committed to its end")
