"""The job stage: following a job to its end, the hand-over fence and a FAILED job's error
pages, against FullStory answers scripted with httpx.MockTransport."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
import structlog.testing

from tests.fakes.clock import FakeClock
from tests.fakes.fullstory_script import (
    DONE,
    JOB,
    PROCESSING,
    InstantWaits,
    Script,
    error_pages,
    importer_on,
    retry_after_0,
    status_answer,
    users_of,
)
from worker.config.settings import Secret
from worker.errors import Abandoned
from worker.fullstory.client import FullStoryClient
from worker.fullstory.importer import Importer
from worker.fullstory.jobs import JobWatch
from worker.runtime.metrics import Metrics


def test_failed_job_reads_every_error_page():
    """Per-user errors of a FAILED job are read across all pages, and only those users fail."""
    failed = httpx.Response(
        200, json={"imports": 1, "errors": 2, "job": {"id": "j1", "status": "FAILED"}}
    )

    def errors(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("page_token")
        uid = "b" if token is None else "c"
        return httpx.Response(
            200,
            json={
                "results": [
                    {"code": "invalid_user", "message": f"bad {uid}", "user": {"uid": uid}}
                ],
                "total_records": "2",
                "next_page_token": "p2" if token is None else None,
            },
        )

    script = Script(
        {
            "POST /v2/users/batch": [JOB],
            "GET /v2/users/batch/j1": [failed],
            "GET /v2/users/batch/j1/errors": [errors],
        }
    )
    outcome = importer_on(script).run(users_of("a", "b", "c"))
    assert {uid: e.message for uid, e in outcome.failures.items()} == {"b": "bad b", "c": "bad c"}


def test_an_incomplete_error_listing_is_read_again():
    """A FAILED job listing fewer errors than it counts is re-read, so no rejected user is
    taken for imported."""
    failed = httpx.Response(
        200, json={"imports": 0, "errors": 2, "job": {"id": "j1", "status": "FAILED"}}
    )
    listings = [
        [{"code": "invalid_user", "message": "m", "user": {"uid": "a"}}],
        [
            {"code": "invalid_user", "message": "m", "user": {"uid": "a"}},
            {"code": "invalid_user", "message": "m", "user": {"uid": "b"}},
        ],
    ]

    def errors(_request: httpx.Request) -> httpx.Response:
        results = listings.pop(0) if len(listings) > 1 else listings[0]
        return httpx.Response(200, json={"results": results, "total_records": "2"})

    script = Script(
        {
            "POST /v2/users/batch": [JOB],
            "GET /v2/users/batch/j1": [failed],
            "GET /v2/users/batch/j1/errors": [errors],
        }
    )
    outcome = importer_on(script).run(users_of("a", "b"))
    assert set(outcome.failures) == {"a", "b"}


@pytest.mark.parametrize(
    ("listings", "reads", "failed"),
    [
        ([["a", "b"]], 1, {"a", "b"}),
        ([["a"], ["a"], ["a", "b"]], 3, {"a", "b"}),
        ([["a"]], 5, {"a"}),
    ],
    ids=["complete-at-once", "complete-on-the-third-read", "never-complete"],
)
def test_an_error_listing_is_read_until_complete_and_at_most_five_times(listings, reads, failed):
    """Users a FAILED job does not list count as imported, so a listing shorter than the job's
    error count is read again, up to five times, then believed; a complete one is read once."""
    failed_job = status_answer("FAILED", errors=2)
    script = Script(
        {
            "POST /v2/users/batch": [JOB],
            "GET /v2/users/batch/j1": [failed_job],
            "GET /v2/users/batch/j1/errors": [error_pages(uids) for uids in listings],
        }
    )
    outcome = importer_on(script).run(users_of("a", "b", "c"))
    assert set(outcome.failures) == failed
    assert sum(r.url.path.endswith("/errors") for r in script.requests) == reads


@pytest.mark.parametrize(
    ("statuses", "errors", "failed"),
    [
        ([PROCESSING] * 3 + [DONE], [], set()),
        (
            [PROCESSING, PROCESSING, status_answer("FAILED", errors=2)],
            [error_pages(["b"], ["c"])],
            {"b", "c"},
        ),
        (
            [
                PROCESSING,
                retry_after_0(),
                PROCESSING,
                httpx.Response(503),
                PROCESSING,
                status_answer("FAILED", errors=3),
            ],
            [
                error_pages(["a"], ["b"], ["c"]),
                httpx.Response(502),
                error_pages(["a"], ["b"], ["c"]),
                retry_after_0(),
                error_pages(["a"], ["b"], ["c"]),
            ],
            {"a", "b", "c"},
        ),
        (
            [
                PROCESSING,
                status_answer("QUEUED"),
                status_answer("SUCCEEDED"),
                status_answer("FAILED", errors=1),
            ],
            [error_pages(["b"])],
            {"b"},
        ),
    ],
    ids=[
        "processing-then-completed",
        "processing-then-failed",
        "429-and-5xx-in-between",
        "unknown-states-in-between",
    ],
)
def test_a_job_is_followed_through_processing_to_its_end(statuses, errors, failed):
    """A batch's users are acknowledged only from the job's final status: PROCESSING answers,
    429s, 5xx and states the API does not document in between change nothing, and a FAILED
    job's errors are read on every page (through failures too) so exactly the users it lists
    fail."""
    answers = {"POST /v2/users/batch": [JOB], "GET /v2/users/batch/j1": list(statuses)}
    if errors:
        answers["GET /v2/users/batch/j1/errors"] = list(errors)
    script = Script(answers)
    outcome = importer_on(script).run(users_of("a", "b", "c"))
    assert outcome.job_ids == ["j1"]
    assert set(outcome.failures) == failed
    assert all(outcome.failures[uid].message == f"bad {uid}" for uid in failed)
    polls = [r for r in script.requests if r.url.path == "/v2/users/batch/j1"]
    assert len(polls) == len(statuses), "the job was taken as ended before its final status"


def test_a_long_job_is_polled_ever_less_often_up_to_poll_max():
    """A job is first polled 0.1 s after the POST (a quick job is noticed at once), then ever
    less often up to poll_max, so many long jobs do not spend FullStory's rate limit."""
    script = Script(
        {"POST /v2/users/batch": [JOB], "GET /v2/users/batch/j1": [PROCESSING] * 6 + [DONE]}
    )
    waits = InstantWaits()
    client = FullStoryClient("http://fs.test", Secret("KEY"), transport=httpx.MockTransport(script))
    # As the worker builds it: poll_max from JOB_POLL_MAX_INTERVAL_MS, poll_min its default.
    importer = Importer(client, abandon=threading.Event(), poll_max_interval_s=0.3)
    importer.run(users_of("a"), cancel=waits)
    assert [w for w in waits.waits if w] == pytest.approx([0.1, 0.15, 0.225, 0.3, 0.3, 0.3])


def test_a_404_on_our_own_jobs_status_is_retried_not_taken_as_imported():
    """FullStory not finding a job this worker just created is its problem: the status is
    asked again, and the users are acknowledged only from the job's real end."""
    script = Script(
        {
            "POST /v2/users/batch": [JOB],
            "GET /v2/users/batch/j1": [
                httpx.Response(404),
                httpx.Response(404),
                status_answer("FAILED", errors=1),
            ],
            "GET /v2/users/batch/j1/errors": [error_pages(["a"])],
        }
    )
    outcome = importer_on(script).run(users_of("a", "b"))
    assert set(outcome.failures) == {"a"}


def test_a_job_whose_state_is_unknown_is_never_taken_as_ended():
    """A state the worker does not know (FullStory adding one, a proxy's answer) is asked
    again for as long as it lasts: the batch yields no outcome, so none of its users is
    acknowledged, until the shutdown deadline abandons the wait."""
    abandon = threading.Event()
    polls: list[str] = []

    def unknown(request: httpx.Request) -> httpx.Response:
        polls.append(request.url.path)
        if len(polls) == 5:
            abandon.set()
        return status_answer("QUEUED")(request)

    script = Script({"POST /v2/users/batch": [JOB], "GET /v2/users/batch/j1": [unknown]})
    with pytest.raises(Abandoned):
        importer_on(script, abandon).run(users_of("a"))
    assert len(polls) == 5


def test_a_fence_lifts_when_fullstory_no_longer_knows_the_old_job():
    """A previous owner's job that FullStory has forgotten (404) cannot race anything: the
    new owner stops waiting at once instead of holding the partition for ever."""
    abandon = threading.Event()
    polls: list[str] = []

    def gone(request: httpx.Request) -> httpx.Response:
        polls.append(request.url.path)
        if len(polls) > 1:
            abandon.set()  # asked again: the fence did not lift; end the test's wait here
        return httpx.Response(404)

    importer_on(Script({"GET /v2/users/batch/old": [gone]}), abandon).await_jobs(["old"])
    assert polls == ["/v2/users/batch/old"]


def test_a_forgotten_job_lifts_its_own_part_of_a_fence_only():
    """A fence over several jobs still waits for the others when FullStory has forgotten
    one: the new owner's records must not race an old job that is still running."""
    script = Script(
        {
            "GET /v2/users/batch/old": [httpx.Response(404)],
            "GET /v2/users/batch/j1": [PROCESSING, PROCESSING, DONE],
        }
    )
    importer_on(script).await_jobs(["old", "j1"])
    polls = [r.url.path for r in script.requests]
    assert polls == ["/v2/users/batch/old"] + ["/v2/users/batch/j1"] * 3


def test_a_fence_holds_through_failed_polls_until_the_old_job_ends():
    """The new owner's records wait while the old job is PROCESSING, and a 5xx or 429 on its
    status, or a state the API does not document, neither lifts the fence nor breaks it."""
    statuses = [httpx.Response(503), PROCESSING, retry_after_0(), status_answer("QUEUED"), DONE]
    script = Script({"GET /v2/users/batch/j1": list(statuses)})
    importer_on(script).await_jobs(["j1"])
    assert len(script.requests) == len(statuses)


@pytest.mark.parametrize(
    "wait",
    [
        lambda importer, cancel: importer.run(users_of("a"), cancel=cancel),
        lambda importer, cancel: importer.await_jobs(["j1"], cancel),
    ],
    ids=["own-job", "fence"],
)
def test_cancelling_stops_the_wait_for_a_running_job(wait):
    """A revoke cancels the waits of the partitions leaving: a cancelled wait ends at its next
    pause instead of polling FullStory (and holding a job thread) until the job ends."""
    cancel, abandon = threading.Event(), threading.Event()
    polls: list[str] = []

    def processing(request: httpx.Request) -> httpx.Response:
        polls.append(request.url.path)
        if len(polls) == 2:
            cancel.set()
        if len(polls) > 3:
            abandon.set()  # the cancel was ignored; end the test's wait here
        return PROCESSING(request)

    script = Script({"POST /v2/users/batch": [JOB], "GET /v2/users/batch/j1": [processing]})
    with pytest.raises(Abandoned):
        wait(importer_on(script, abandon), cancel)
    assert len(polls) == 2


def test_an_error_listing_naming_a_uid_the_job_did_not_carry_is_read_again():
    """An /errors page that names a stranger cannot be mapped to records: it is a bad answer,
    read again (never a crash, never the job's other users acknowledged on it), and the
    listing that follows is the one believed."""
    failed = httpx.Response(
        200, json={"imports": 1, "errors": 1, "job": {"id": "j1", "status": "FAILED"}}
    )
    listings = [["stranger"], ["b"]]
    reads = []

    def errors(_request: httpx.Request) -> httpx.Response:
        reads.append(1)
        uids = listings.pop(0) if len(listings) > 1 else listings[0]
        results = [{"code": "invalid_user", "message": "m", "user": {"uid": u}} for u in uids]
        return httpx.Response(200, json={"results": results, "total_records": "1"})

    script = Script(
        {
            "POST /v2/users/batch": [JOB],
            "GET /v2/users/batch/j1": [failed],
            "GET /v2/users/batch/j1/errors": [errors],
        }
    )
    outcome = importer_on(script).run(users_of("a", "b"))
    assert set(outcome.failures) == {"b"} and len(reads) == 2


def _page(uids: list[str], token: str | None) -> httpx.Response:
    results = [{"code": "invalid_user", "message": "m", "user": {"uid": u}} for u in uids]
    return httpx.Response(200, json={"results": results, "next_page_token": token})


def _repeating_token(page: int) -> httpx.Response:
    return _page(["b"] if page == 0 else [], "same")


def _longer_than_the_job(page: int) -> httpx.Response:
    return _page(["a", "b"], f"p{page + 1}")  # distinct tokens, the same users again


def _empty_pages_for_ever(page: int) -> httpx.Response:
    return _page([], f"p{page + 1}")


@pytest.mark.parametrize(
    ("hostile", "pages"),
    [(_repeating_token, 2), (_longer_than_the_job, 2), (_empty_pages_for_ever, 3)],
    ids=["repeating-token", "more-errors-than-users", "endless-empty-pages"],
)
def test_an_error_listing_that_cannot_end_is_read_again_from_its_start(hostile, pages):
    """A listing that loops (a token seen before), lists more errors than the job had users or
    goes on past what its users could fill is a bad answer: the worker stops following it
    after at most users + 1 pages, reads the listing again from its first page, and believes
    the next sound one; it never follows pages for ever nor keeps a list growing."""
    failed = httpx.Response(
        200, json={"imports": 1, "errors": 1, "job": {"id": "j1", "status": "FAILED"}}
    )
    readings: list[int] = []  # pages requested, per reading of the listing

    def errors(request: httpx.Request) -> httpx.Response:
        if "page_token" not in request.url.params:
            readings.append(0)
        readings[-1] += 1
        if len(readings) == 1 and readings[-1] <= 20:  # then it ends: a lapse fails, not hangs
            return hostile(readings[-1] - 1)
        return _page(["b"], None)

    script = Script(
        {
            "POST /v2/users/batch": [JOB],
            "GET /v2/users/batch/j1": [failed],
            "GET /v2/users/batch/j1/errors": [errors],
        }
    )
    outcome = importer_on(script).run(users_of("a", "b"))
    assert set(outcome.failures) == {"b"}
    # Given up at the first sign (2 users: never more than 3 pages), then read again.
    assert readings == [pages, 1]


def test_a_wait_is_overdue_past_the_limit_and_forgotten_when_it_ends():
    """Overdue means waited for longer than the limit, counted per wait (a fence and a batch
    may wait for the same job), and nothing once the waits ended."""
    clock = FakeClock(start=0.0)
    watch = JobWatch(60, clock)
    with watch.waiting("old"):
        clock.advance(30)
        with watch.waiting("new"), watch.waiting("old"):
            clock.advance(30)
            assert watch.overdue() == []
            clock.advance(1)
            assert watch.overdue() == ["old"]
            clock.advance(30)
            assert watch.overdue() == ["old", "new", "old"]
        assert watch.overdue() == ["old"]
    assert watch.overdue() == [] and watch.count_overdue() == 0


def test_a_job_past_its_limit_is_still_followed_and_shows_until_it_ends():
    """A job unfinished past JOB_MAX_WAIT_S is neither dropped nor taken as ended: it is
    followed to its end (only that acknowledges its users), and meanwhile counted in
    fsus_jobs_overdue; once it ends the count is back to 0."""
    seen_overdue: list[float] = []
    metrics = Metrics()

    def status(_request: httpx.Request) -> httpx.Response:
        seen_overdue.append(metrics.registry.get_sample_value("fsus_jobs_overdue") or 0.0)
        state = "COMPLETED" if len(seen_overdue) > 30 else "PROCESSING"
        return httpx.Response(200, json={"job": {"id": "j1", "status": state}})

    script = Script({"POST /v2/users/batch": [JOB], "GET /v2/users/batch/j1": [status]})
    importer = importer_on(script, metrics=metrics, watch=JobWatch(max_wait_s=0.02))
    outcome = importer.run(users_of("a"))
    assert outcome.failures == {} and outcome.job_ids == ["j1"]
    assert seen_overdue[0] == 0 and seen_overdue[-1] == 1
    assert metrics.registry.get_sample_value("fsus_jobs_overdue") == 0


def test_a_job_ending_after_its_limit_still_dead_letters_the_users_it_rejected():
    """Overdue is a signal, not an end: a job still PROCESSING past JOB_MAX_WAIT_S is polled
    until FullStory says it ended, and when it ends FAILED the users it rejected are failures
    (dead-lettered), never taken for imported because the wait was long."""
    clock = FakeClock(start=0.0)

    def processing_past_the_limit(request: httpx.Request) -> httpx.Response:
        clock.advance(61)
        return PROCESSING(request)

    script = Script(
        {
            "POST /v2/users/batch": [JOB],
            "GET /v2/users/batch/j1": [
                *[processing_past_the_limit] * 3,
                status_answer("FAILED", errors=1),
            ],
            "GET /v2/users/batch/j1/errors": [error_pages(["b"])],
        }
    )
    watch = JobWatch(max_wait_s=60, clock=clock)
    outcome = importer_on(script, watch=watch).run(users_of("a", "b"))
    statuses = [r for r in script.requests if r.url.path == "/v2/users/batch/j1"]
    assert len(statuses) == 4, "followed until FullStory said FAILED"
    assert set(outcome.failures) == {"b"}
    assert watch.overdue() == []


def _job_log_events(statuses: list[Any], clock: FakeClock) -> list[str]:
    """The job-stage log events of one job answered ``statuses`` in turn, under a
    JOB_MAX_WAIT_S of 60 s on ``clock``."""
    script = Script({"POST /v2/users/batch": [JOB], "GET /v2/users/batch/j1": statuses})
    with structlog.testing.capture_logs() as logs:
        importer_on(script, watch=JobWatch(max_wait_s=60, clock=clock)).run(users_of("a"))
    return [e["event"] for e in logs if e["event"].startswith("job_overdue")]


def test_an_overdue_job_is_reported_once_and_a_prompt_one_never():
    """What an operator sees: a job past JOB_MAX_WAIT_S is reported once however long it
    stays overdue, then once more when it ends; a job that ends in time reports nothing."""
    clock = FakeClock(start=0.0)

    def late(request: httpx.Request) -> httpx.Response:
        clock.advance(61)
        return PROCESSING(request)

    assert _job_log_events([late, late, late, DONE], clock) == [
        "job_overdue",
        "job_overdue_ended",
    ]
    assert _job_log_events([PROCESSING, PROCESSING, DONE], clock) == []


def test_retried_status_and_error_reads_are_counted_under_their_own_call():
    """fsus_fullstory_retries names the call retried: a 503 on the job status is
    `job_status`; an error listing naming a stranger, listing more errors than users or
    never ending is `job_errors`; each is read again, never acted on, and the log says
    what was wrong with it."""
    metrics = Metrics()

    def endless(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": [], "next_page_token": "again"})

    script = Script(
        {
            "POST /v2/users/batch": [JOB],
            "GET /v2/users/batch/j1": [httpx.Response(503), status_answer("FAILED", errors=1)],
            "GET /v2/users/batch/j1/errors": [
                error_pages(["stranger"]),
                error_pages(["a", "b", "a"]),
                endless,
                endless,
                error_pages(["b"]),
            ],
        }
    )
    with structlog.testing.capture_logs() as logs:
        outcome = importer_on(script, metrics=metrics).run(users_of("a", "b"))
    assert set(outcome.failures) == {"b"}

    def retries(call: str, reason: str) -> float | None:
        labels = {"call": call, "reason": reason}
        return metrics.registry.get_sample_value("fsus_fullstory_retries_total", labels)

    assert retries("job_status", "server_error") == 1
    assert retries("job_errors", "bad_answer") == 3
    retried = [e for e in logs if e["event"] == "fullstory_retry"]
    why = [e["error"] for e in retried if e["call"] == "job_errors"]
    assert why == [
        "job errors: 1 name a uid the job did not carry",
        "job errors: more errors than the job's 2 users",
        "job errors: the listing does not end (2 pages)",
    ]


def test_an_error_listing_short_for_good_is_read_five_times_then_reported_once():
    """A FAILED job listing fewer errors than it counts is read five times in all, then
    believed (the users not listed count as imported) and reported as `job_errors_missing`;
    a complete listing is never reported."""
    for listed, expected, reads, missing in ((["b"], 2, 5, 1), (["b"], 1, 1, 0)):
        script = Script(
            {
                "POST /v2/users/batch": [JOB],
                "GET /v2/users/batch/j1": [status_answer("FAILED", errors=expected)],
                "GET /v2/users/batch/j1/errors": [error_pages(listed)],
            }
        )
        with structlog.testing.capture_logs() as logs:
            outcome = importer_on(script).run(users_of("a", "b"))
        assert set(outcome.failures) == {"b"}
        listings = [r for r in script.requests if r.url.path.endswith("/errors")]
        assert len(listings) == reads
        assert [e["event"] for e in logs].count("job_errors_missing") == missing
