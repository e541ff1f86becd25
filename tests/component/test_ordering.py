"""Per-user order: two import jobs in flight never share a uid, so a user's later change
cannot be applied before (or race) an earlier one; retries do not create a second job."""

from __future__ import annotations

from worker.errors import RateLimited, ServerError


def test_a_users_later_change_waits_for_its_running_job(make_loop, kafka, fullstory):
    """A user whose job still runs stays out of new jobs (other users go on without it), and
    its later change is sent once that job ended, so FullStory applies the changes in order."""
    kafka.change(0, "u1", email="old@example.com")
    kafka.change(0, "u2")
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "the first job")
    (first,) = fullstory.jobs()
    kafka.change(0, "u1", email="new@example.com")
    kafka.change(0, "u3")
    loop.turn_until(lambda: len(fullstory.jobs()) == 2, "a job for u3 while u1's job runs")
    second = fullstory.jobs()[1]
    assert second.uids == ["u3"]
    loop.turn(20)
    assert len(fullstory.jobs()) == 2
    fullstory.finish(first.id)
    loop.turn_until(lambda: len(fullstory.jobs()) == 3, "u1's later change sent")
    third = fullstory.jobs()[2]
    assert third.users == {"u1": {"uid": "u1", "email": "new@example.com"}}


def test_a_user_changed_back_to_an_earlier_value_gets_it_back(make_loop, kafka, fullstory):
    """A, then B, then A again, each in its own job: the third POST has the first one's body,
    and must be a new job, not FullStory's answer to the first (a key it has seen gets the
    first job back for 24 hours): otherwise the user stays at B while its record is
    committed."""
    loop = make_loop()
    loop.source.assign([0])
    for jobs, plan in enumerate(["A", "B", "A"], start=1):
        kafka.change(0, "u1", properties={"plan": plan})
        loop.turn_until(lambda n=jobs: len(fullstory.jobs()) == n, f"the job setting {plan}")
        fullstory.finish()
        loop.turn_until(lambda n=jobs: kafka.committed_offset(0) == n, f"{plan} committed")
    first, _second, third = fullstory.jobs()
    assert third.users == first.users and third.users["u1"]["properties"] == {"plan": "A"}
    assert third.id != first.id


def test_the_same_records_read_again_after_a_crash_take_over_the_job_they_made(
    make_loop, kafka, fullstory
):
    """A replica's POST made a job but the answer never came back, and the replica died:
    the next owner reads the same records into the same batch, whose key gets that job
    back, and follows it, instead of making a second job of the same users that the first
    (unknown to it, still queued at FullStory) could overtake with older values later."""
    kafka.change(0, "u1", email="a@example.com")
    kafka.change(0, "u2")
    fullstory.lose_answers()
    crashed = make_loop()
    crashed.source.assign([0])
    crashed.turn_until(lambda: len(fullstory.posts) >= 2, "the POST and a retry")
    crashed.close()  # died without knowing its job
    fullstory.lose_answers(False)
    (made,) = fullstory.jobs()
    owner = make_loop()
    owner.source.assign([0])
    owner.turn_until(lambda: len(fullstory.posts) >= 3, "the next owner's POST")
    assert len(set(fullstory.posts)) == 1 and fullstory.jobs() == [made]
    fullstory.finish(made.id)
    owner.turn_until(lambda: kafka.committed_offset(0) == 2, "a commit after that job")
    assert fullstory.jobs() == [made]


def test_changes_of_one_user_in_a_batch_fold_in_offset_order(make_loop, kafka, fullstory):
    """Several changes of a user in one job become one request: later non-null values win,
    nulls leave values as they are, and property types are declared from Avro."""
    kafka.change(0, "u1", email="a@example.com", display_name="A", properties={"plan": "free"})
    kafka.change(0, "u1", email=None, display_name="B", properties={"seats": 3, "plan": None})
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "one job")
    assert fullstory.jobs()[0].users["u1"] == {
        "uid": "u1",
        "display_name": "B",
        "email": "a@example.com",
        "properties": {"plan": "free", "seats": 3},
        "schema": {"properties": {"plan": "str", "seats": "int"}},
    }


def test_a_post_refused_with_429_and_503_is_retried_into_one_job(make_loop, kafka, fullstory):
    """429 and 5xx answers are retried under the same Idempotency-Key: one job, nothing
    committed while FullStory refuses, and the records acknowledged once the job ended."""
    kafka.change(0, "u1")
    fullstory.fail_next(
        "create_batch",
        RateLimited("create batch: rate limited", retry_after=0.01),
        ServerError("create batch: HTTP 503", status=503),
    )
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "the job, after two refusals")
    assert len(fullstory.posts) == 3 and len(set(fullstory.posts)) == 1
    assert (kafka.committed_offset(0) or 0) == 0
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_offset(0) == 1, "a commit at the log end")
    assert len(fullstory.jobs()) == 1


def test_no_more_jobs_run_at_once_than_max_jobs_in_flight(make_loop, kafka, fullstory):
    """FullStory runs 100 jobs per org: a replica never has more than MAX_JOBS_IN_FLIGHT jobs
    open; the next user goes when one ended."""
    for i in range(4):
        kafka.change(0, f"u{i}")
    loop = make_loop(max_users=1, max_jobs=2)
    loop.source.assign([0])
    loop.turn_until(lambda: len(fullstory.jobs()) == 2, "two jobs")
    loop.clock.advance(5.0)
    loop.turn(20)
    assert len(fullstory.jobs()) == 2
    fullstory.finish(fullstory.jobs()[0].id)
    loop.turn_until(lambda: len(fullstory.jobs()) == 3, "a third job once one ended")
    assert len(fullstory.running()) == 2
