"""Deletes (``ON_DELETE``) in the loop: a user's deletion keeps its place in the uid's order.

The scripted FullStory fails any test in which a DELETE is sent while a job carrying the uid
runs, or a job carries a uid whose deletion still runs (``make_loop``'s teardown)."""

from __future__ import annotations

from worker.errors import DeadLetterCode, RateLimited, RejectedRequest


def test_a_delete_waits_for_the_running_job_of_its_user(make_loop, kafka, fullstory):
    """The user's import job runs: the DELETE goes only once it ended, and the delete is
    committed only once FullStory says the user is gone."""
    kafka.change(0, "u1", email="a@example.com")
    loop = make_loop(deletes=True)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "u1's job")
    kafka.tombstone(0, "u1")
    loop.turn(50)
    assert fullstory.deletes == []
    fullstory.finish()
    loop.turn_until(lambda: fullstory.deletes == ["u1"], "the DELETE once the job ended")
    loop.turn(50)
    assert kafka.committed_offset(0) == 1, "the delete is committed before the user is gone"
    fullstory.finish_deletion("u1")
    loop.turn_until(lambda: kafka.committed_offset(0) == 2, "the delete committed")
    assert loop.metric("fsus_user_deletes_total", result="deleted") == 1


def test_a_change_after_a_delete_waits_until_the_user_is_gone(make_loop, kafka, fullstory):
    """A user deleted and re-created: the re-created user's change goes only once the
    deletion finished (a background deletion would swallow it), and carries only what came
    after the delete."""
    kafka.change(0, "u1", email="old@example.com", display_name="Old")
    loop = make_loop(deletes=True)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "u1's first job")
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_offset(0) == 1, "the first change committed")
    kafka.tombstone(0, "u1")
    kafka.change(0, "u1", email="new@example.com")
    loop.turn_until(lambda: fullstory.deletes == ["u1"], "the DELETE")
    loop.turn(100)
    assert len(fullstory.jobs()) == 1, "a change of u1 went while its deletion ran"
    fullstory.finish_deletion("u1")
    loop.turn_until(lambda: len(fullstory.jobs()) == 2, "the re-created user's job")
    assert fullstory.jobs()[1].users == {"u1": {"uid": "u1", "email": "new@example.com"}}
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_offset(0) == 3, "everything committed")
    assert fullstory.log == [("upsert", "u1"), ("delete", "u1"), ("upsert", "u1")]


def test_changes_before_a_delete_in_one_window_are_never_sent(make_loop, kafka, fullstory):
    """Upserts and then a delete of a user, merged in one window (a replay of a backlog):
    one DELETE and no import, so a deleted user is never re-created; other users go on."""
    fullstory.users.add("u1")  # imported long ago
    fullstory.deletion_polls = 2
    kafka.change(0, "u1", email="a@example.com")
    kafka.change(0, "u2", email="b@example.com")
    kafka.change(0, "u1", display_name="A")
    kafka.tombstone(0, "u1")
    loop = make_loop(deletes=True, max_wait_s=5.0)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.deletes, "the DELETE, without waiting for the batch")
    assert fullstory.jobs() == []
    loop.clock.advance(5.0)
    loop.turn_until(lambda: fullstory.jobs(), "u2's job")
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_to_end(), "everything committed")
    assert [job.uids for job in fullstory.jobs()] == [["u2"]]
    assert fullstory.deletes == ["u1"]


def test_a_user_recreated_and_deleted_again_in_one_window_is_deleted_once(
    make_loop, kafka, fullstory
):
    fullstory.users.add("u1")
    fullstory.deletion_polls = 1
    kafka.tombstone(0, "u1")
    kafka.change(0, "u1", email="again@example.com")
    kafka.tombstone(0, "u1")
    loop = make_loop(deletes=True)
    loop.source.assign([0])
    loop.turn_until(lambda: kafka.committed_to_end(), "everything committed")
    assert fullstory.deletes == ["u1"]
    assert fullstory.jobs() == []


def test_with_on_delete_ignore_a_delete_is_acknowledged_and_counted(make_loop, kafka, fullstory):
    """The default: nothing is sent for a delete, the user's earlier change still goes, and
    the tombstone is committed in order (never ahead of that change), not dead-lettered."""
    kafka.change(0, "u1", email="a@example.com")
    kafka.tombstone(0, "u1")
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "u1's job")
    loop.turn(50)
    assert (kafka.committed_offset(0) or 0) == 0
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_offset(0) == 2, "both committed")
    assert fullstory.deletes == []
    assert loop.dlq.letters == []
    assert loop.metric("fsus_records_skipped_total", reason="delete_ignored") == 1


def test_a_tombstone_without_a_uid_key_is_still_dead_lettered(make_loop, kafka, fullstory):
    kafka.produce(0, None, None)
    loop = make_loop(deletes=True)
    loop.dlq.auto_confirm = True
    loop.source.assign([0])
    loop.turn_until(lambda: kafka.committed_offset(0) == 1, "the letter committed")
    assert [letter.code for letter in loop.dlq.letters] == [DeadLetterCode.TOMBSTONE]
    assert fullstory.deletes == []


def test_a_rate_limited_delete_is_retried_and_a_refused_one_dead_lettered(
    make_loop, kafka, fullstory
):
    """429 waits and tries again; a 400 cannot succeed by repetition: that user's records go
    to the DLQ with FullStory's code, and the other deletion still completes."""
    fullstory.users |= {"u1", "u2"}
    fullstory.deletion_polls = 1
    fullstory.fail_next(
        "delete_user",
        RateLimited("user delete: rate limited", retry_after=0.01),
        RejectedRequest(400, "invalid_argument", "bad uid"),
    )
    kafka.tombstone(0, "u1")
    kafka.tombstone(0, "u2")
    loop = make_loop(deletes=True)
    loop.dlq.auto_confirm = True
    loop.source.assign([0])
    loop.turn_until(lambda: kafka.committed_to_end(), "both deletes acknowledged")
    assert [(letter.code, letter.fullstory_code) for letter in loop.dlq.letters] == [
        (DeadLetterCode.FULLSTORY_REJECTED, "invalid_argument")
    ]
    assert loop.metric("fsus_user_deletes_total", result="rejected") == 1
    assert loop.metric("fsus_user_deletes_total", result="absent") == 0
    assert loop.metric("fsus_user_deletes_total", result="deleted") == 1
