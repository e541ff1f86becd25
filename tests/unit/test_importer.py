"""The import stage against FullStory answers scripted with httpx.MockTransport."""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

import httpx
import pytest

from tests.unit.factories import change
from worker.batch import Batcher
from worker.config import Secret
from worker.errors import Abandoned
from worker.fullstory import FullStoryClient, UserError
from worker.idempotency import idempotency_key
from worker.importer import Importer, encode_body
from worker.metrics import Metrics
from worker.retry import Backoff


def _batch(*uids: str):
    batcher = Batcher(max_users=100, max_wait_s=0)
    for offset, uid in enumerate(uids):
        batcher.add(("users", 0), offset, change(uid, seats=offset), 0)
    return batcher.take(now=0.0)


class Script:
    """Answers by route; records every request."""

    def __init__(self, answers):
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        queue = self.answers[key]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(request) if callable(answer) else answer


def _importer(script: Script, abandon: threading.Event | None = None, **options: Any) -> Importer:
    """An importer on ``script`` with short waits; ``options`` override Importer's arguments."""
    client = FullStoryClient("http://fs.test", Secret("KEY"), transport=httpx.MockTransport(script))
    arguments: dict[str, Any] = {
        "poll_max_interval_s": 0.01,
        "poll_min_interval_s": 0.001,
        "backoff": lambda: Backoff(base_s=0.001, cap_s=0.005, floor_s=0.001),
        **options,
    }
    return Importer(client, abandon=abandon or threading.Event(), **arguments)


JOB = httpx.Response(200, json={"job": {"id": "j1", "status": "PROCESSING"}})
DONE = httpx.Response(200, json={"imports": 2, "job": {"id": "j1", "status": "COMPLETED"}})


def test_completed_job_has_no_failures_and_sends_auth_and_key():
    """A COMPLETED job acknowledges every user; the request carries auth and an idempotency key."""
    script = Script({"POST /v2/users/batch": [JOB], "GET /v2/users/batch/j1": [DONE]})
    outcome = _importer(script).run(_batch("a", "b"))
    assert outcome.failures == {} and outcome.job_ids == ["j1"]
    post = script.requests[0]
    assert post.headers["Authorization"] == "Basic KEY"
    assert post.headers["Idempotency-Key"].startswith("fsus-")
    assert [r["uid"] for r in json.loads(post.content)["requests"]] == ["a", "b"]


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
    outcome = _importer(script).run(_batch("a", "b", "c"))
    assert {uid: e.message for uid, e in outcome.failures.items()} == {"b": "bad b", "c": "bad c"}


def test_429_and_5xx_are_retried_with_the_same_key_until_accepted():
    """Transient failures are retried; a retried POST never carries a different key at first."""
    script = Script(
        {
            "POST /v2/users/batch": [
                httpx.Response(429, headers={"Retry-After": "0"}, json={"code": "rate_limited"}),
                httpx.Response(503, json={"code": "unavailable"}),
                JOB,
            ],
            "GET /v2/users/batch/j1": [httpx.Response(502), DONE],
        }
    )
    outcome = _importer(script).run(_batch("a"))
    assert outcome.failures == {}
    keys = {r.headers["Idempotency-Key"] for r in script.requests if r.method == "POST"}
    assert len(keys) == 1


def test_persistent_5xx_moves_to_a_new_key_for_the_same_body():
    """A saved 5xx replayed under one key is escaped with a new key, same body, never given up."""
    script = Script(
        {
            "POST /v2/users/batch": [httpx.Response(500)] * 3 + [JOB],
            "GET /v2/users/batch/j1": [DONE],
        }
    )
    _importer(script).run(_batch("a"))
    posts = [r for r in script.requests if r.method == "POST"]
    assert len(posts) == 4
    assert len({p.headers["Idempotency-Key"] for p in posts[:3]}) == 1
    assert posts[3].headers["Idempotency-Key"] != posts[0].headers["Idempotency-Key"]
    assert len({p.content for p in posts}) == 1


def test_whole_batch_400_is_split_until_the_bad_user_stands_alone():
    """One user that makes FullStory refuse the request does not take the others down."""

    def post(request: httpx.Request) -> httpx.Response:
        uids = [r["uid"] for r in json.loads(request.content)["requests"]]
        if "bad" in uids:
            return httpx.Response(400, json={"code": "invalid_argument", "message": "uid bad"})
        return JOB

    script = Script({"POST /v2/users/batch": [post], "GET /v2/users/batch/j1": [DONE]})
    outcome = _importer(script).run(_batch("a", "bad", "c", "d"))
    assert set(outcome.failures) == {"bad"}
    assert outcome.failures["bad"].code == "invalid_argument"


def test_abandon_stops_the_retry_loop():
    """At the shutdown deadline a job stuck in retries gives up its wait (records stay unacked)."""
    abandon = threading.Event()
    abandon.set()
    script = Script({"POST /v2/users/batch": [httpx.Response(503)]})
    with pytest.raises(Abandoned):
        _importer(script, abandon).run(_batch("a"))


def test_client_repr_hides_the_api_key():
    """The API key does not leak through the client's repr."""
    client = FullStoryClient("http://fs.test", Secret("SECRET-KEY"))
    assert "SECRET-KEY" not in repr(client)


def test_retry_after_holds_back_every_job_thread():
    """After a 429, no job thread sends anything to FullStory before Retry-After has elapsed."""
    times: dict[str, float] = {}
    lock = threading.Lock()
    answered_429 = threading.Event()

    def post(request: httpx.Request) -> httpx.Response:
        with lock:
            first = "429" not in times
            times["429" if first else f"post-{len(times)}"] = time.monotonic()
        if first:
            answered_429.set()
            return httpx.Response(429, headers={"Retry-After": "0.3"})
        return JOB

    script = Script({"POST /v2/users/batch": [post], "GET /v2/users/batch/j1": [DONE]})
    importer = _importer(script)
    first = threading.Thread(target=importer.run, args=(_batch("a"),))
    first.start()
    assert answered_429.wait(5), "the first job never reached FullStory"
    importer.run(_batch("b"))
    first.join(5)
    assert not first.is_alive(), "the first job did not finish within 5 s"
    later = [t for name, t in times.items() if name != "429"]
    assert len(later) == 2
    assert min(later) - times["429"] >= 0.3


def test_a_wrong_url_is_retried_not_dead_lettered():
    """404/405 from a misconfigured FULLSTORY_API_URL must not split batches into the DLQ."""
    script = Script(
        {
            "POST /v2/users/batch": [httpx.Response(404), httpx.Response(405), JOB],
            "GET /v2/users/batch/j1": [DONE],
        }
    )
    outcome = _importer(script).run(_batch("a", "b"))
    assert outcome.failures == {}
    assert sum(r.method == "POST" for r in script.requests) == 3


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
    outcome = _importer(script).run(_batch("a", "b"))
    assert set(outcome.failures) == {"a", "b"}


# -- jobs that take a while, and FullStory failing in between -------------------------------


def _status(state: str, errors: int = 0):
    """A job-status answer, fresh for every request."""
    return lambda _request: httpx.Response(
        200, json={"errors": errors, "job": {"id": "j1", "status": state}}
    )


PROCESSING = _status("PROCESSING")


def _error_pages(*pages: list[str]):
    """The /errors listing of a FAILED job, one page per list of uids, chained by tokens."""

    def answer(request: httpx.Request) -> httpx.Response:
        index = int(request.url.params.get("page_token") or 0)
        results = [
            {"code": "invalid_user", "message": f"bad {uid}", "user": {"uid": uid}}
            for uid in pages[index]
        ]
        token = str(index + 1) if index + 1 < len(pages) else None
        return httpx.Response(200, json={"results": results, "next_page_token": token})

    return answer


def _retry_after_0() -> httpx.Response:
    return httpx.Response(429, headers={"Retry-After": "0"})


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def _timed_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


class InstantWaits(threading.Event):
    """A cancel event whose waits return at once, noting how long the importer meant to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


@pytest.mark.parametrize(
    ("statuses", "errors", "failed"),
    [
        ([PROCESSING] * 3 + [DONE], [], set()),
        (
            [PROCESSING, PROCESSING, _status("FAILED", errors=2)],
            [_error_pages(["b"], ["c"])],
            {"b", "c"},
        ),
        (
            [
                PROCESSING,
                _retry_after_0(),
                PROCESSING,
                httpx.Response(503),
                PROCESSING,
                _status("FAILED", errors=3),
            ],
            [
                _error_pages(["a"], ["b"], ["c"]),
                httpx.Response(502),
                _error_pages(["a"], ["b"], ["c"]),
                _retry_after_0(),
                _error_pages(["a"], ["b"], ["c"]),
            ],
            {"a", "b", "c"},
        ),
        (
            [PROCESSING, _status("QUEUED"), _status("SUCCEEDED"), _status("FAILED", errors=1)],
            [_error_pages(["b"])],
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
    outcome = _importer(script).run(_batch("a", "b", "c"))
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
    importer.run(_batch("a"), cancel=waits)
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
                _status("FAILED", errors=1),
            ],
            "GET /v2/users/batch/j1/errors": [_error_pages(["a"])],
        }
    )
    outcome = _importer(script).run(_batch("a", "b"))
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
        return _status("QUEUED")(request)

    script = Script({"POST /v2/users/batch": [JOB], "GET /v2/users/batch/j1": [unknown]})
    with pytest.raises(Abandoned):
        _importer(script, abandon).run(_batch("a"))
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

    _importer(Script({"GET /v2/users/batch/old": [gone]}), abandon).await_jobs(["old"])
    assert polls == ["/v2/users/batch/old"]


def test_a_fence_holds_through_failed_polls_until_the_old_job_ends():
    """The new owner's records wait while the old job is PROCESSING, and a 5xx or 429 on its
    status, or a state the API does not document, neither lifts the fence nor breaks it."""
    statuses = [httpx.Response(503), PROCESSING, _retry_after_0(), _status("QUEUED"), DONE]
    script = Script({"GET /v2/users/batch/j1": list(statuses)})
    _importer(script).await_jobs(["j1"])
    assert len(script.requests) == len(statuses)


@pytest.mark.parametrize(
    "wait",
    [
        lambda importer, cancel: importer.run(_batch("a"), cancel=cancel),
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
        wait(_importer(script, abandon), cancel)
    assert len(polls) == 2


@pytest.mark.parametrize(
    ("answer", "failed"),
    [
        (httpx.Response(500), True),
        (httpx.Response(503), True),
        (_refused, True),
        (_timed_out, True),
        (_retry_after_0(), False),
        (httpx.Response(401), False),
        (httpx.Response(404), False),
        (httpx.Response(200, text="<html>"), False),
    ],
    ids=["500", "503", "connection-refused", "timeout", "429", "401", "404", "200-not-json"],
)
def test_readiness_hears_whether_fullstory_failed_or_answered(answer, failed):
    """/readyz turns off when FullStory keeps failing (5xx, timeouts, refused connections) and
    on again with its next answer; a rate limit, a refused key, a wrong URL or a garbled body
    is an answer (FullStory is up), not an outage."""
    heard: list[str] = []
    script = Script({"POST /v2/users/batch": [answer, JOB], "GET /v2/users/batch/j1": [DONE]})
    importer = _importer(
        script,
        on_api_answer=lambda: heard.append("answer"),
        on_api_failure=lambda: heard.append("failure"),
    )
    importer.run(_batch("a"))
    assert heard == ["failure" if failed else "answer", "answer", "answer"]


@pytest.mark.parametrize(
    "failures",
    [[_refused], [_timed_out], [httpx.Response(404)] * 4, [_retry_after_0()] * 4],
    ids=["connection-refused", "timeout", "wrong-url-answers", "rate-limited"],
)
def test_only_5xx_answers_move_a_body_to_a_new_key(failures):
    """A POST retried after a timeout, a refused connection, a 429 or a misrouted request
    keeps its idempotency key, so one that did reach FullStory cannot create a second job."""
    script = Script({"POST /v2/users/batch": [*failures, JOB], "GET /v2/users/batch/j1": [DONE]})
    outcome = _importer(script).run(_batch("a"))
    assert outcome.failures == {}
    keys = [r.headers["Idempotency-Key"] for r in script.requests if r.method == "POST"]
    assert len(keys) == len(failures) + 1
    assert set(keys) == {idempotency_key(script.requests[0].content)}


def test_every_key_gets_three_5xx_answers_before_the_next():
    """A replayed 5xx is escaped after three answers under a key, and so is every later key's:
    moving on sooner makes needless keys, each a chance of a second job for the same body."""
    script = Script(
        {
            "POST /v2/users/batch": [httpx.Response(500)] * 7 + [JOB],
            "GET /v2/users/batch/j1": [DONE],
        }
    )
    _importer(script).run(_batch("a"))
    keys = [r.headers["Idempotency-Key"] for r in script.requests if r.method == "POST"]
    generations = [list(dict.fromkeys(keys)).index(key) for key in keys]
    assert generations == [0, 0, 0, 1, 1, 1, 2, 2]


def test_after_a_429_the_next_try_goes_when_retry_after_says():
    """However many 429s came before, the next try waits what Retry-After says (here: go now,
    after the minimal pause), not the growing backoff meant for failures."""
    script = Script(
        {"POST /v2/users/batch": [_retry_after_0()] * 6 + [JOB], "GET /v2/users/batch/j1": [DONE]}
    )
    waits = InstantWaits()
    backoff = Backoff(floor_s=0.05, rng=random.Random(7))
    _importer(script, backoff=lambda: backoff).run(_batch("a"), cancel=waits)
    assert [w for w in waits.waits if w][:6] == [0.05] * 6


def test_the_body_is_compact_utf8_json():
    """FullStory limits a request's size and the idempotency key hashes these exact bytes:
    the body is compact UTF-8 (no \\u escapes, no padding), the same for the same users."""
    body = encode_body([{"uid": "zoë", "display_name": "Zoë Ü", "properties": {"n": 1}}])
    assert (
        body == '{"requests":[{"uid":"zoë","display_name":"Zoë Ü","properties":{"n":1}}]}'.encode()
    )


@pytest.mark.parametrize(
    "uids",
    [("bad", "a"), ("a", "bad"), ("a", "bad", "c"), ("a", "b", "c", "d", "bad")],
    ids=["two-bad-first", "two-bad-last", "three-bad-middle", "five-bad-last"],
)
def test_a_refused_user_is_isolated_whatever_the_batch_size(uids):
    """Splitting a refused batch ends with the bad user alone, carrying FullStory's code and
    message to the DLQ; every other user is sent once, and no POST is empty."""
    posts: list[list[str]] = []

    def post(request: httpx.Request) -> httpx.Response:
        users = [r["uid"] for r in json.loads(request.content)["requests"]]
        posts.append(users)
        if "bad" in users:
            return httpx.Response(400, json={"code": "invalid_argument", "message": "uid bad"})
        return JOB

    script = Script({"POST /v2/users/batch": [post], "GET /v2/users/batch/j1": [DONE]})
    outcome = _importer(script).run(_batch(*uids))
    assert outcome.failures == {"bad": UserError("bad", "invalid_argument", "uid bad")}
    assert all(posts), "an empty request was sent"
    accepted = [uid for users in posts if "bad" not in users for uid in users]
    assert sorted(accepted) == sorted(uid for uid in uids if uid != "bad")


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
    failed_job = _status("FAILED", errors=2)
    script = Script(
        {
            "POST /v2/users/batch": [JOB],
            "GET /v2/users/batch/j1": [failed_job],
            "GET /v2/users/batch/j1/errors": [_error_pages(uids) for uids in listings],
        }
    )
    outcome = _importer(script).run(_batch("a", "b", "c"))
    assert set(outcome.failures) == failed
    assert sum(r.url.path.endswith("/errors") for r in script.requests) == reads


def test_retries_are_counted_by_reason():
    """``fsus_fullstory_retries_total{reason}`` tells an operator why FullStory calls are
    retried; its label values stay those the dashboards know."""
    script = Script(
        {
            "POST /v2/users/batch": [
                httpx.Response(503),
                _timed_out,
                _retry_after_0(),
                httpx.Response(401),
                httpx.Response(404),
                httpx.Response(200, text="<html>"),
                JOB,
            ],
            "GET /v2/users/batch/j1": [DONE],
        }
    )
    metrics = Metrics()
    _importer(script, metrics=metrics).run(_batch("a"))
    reasons = {
        sample.labels["reason"]
        for family in metrics.registry.collect()
        if family.name == "fsus_fullstory_retries"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    expected = {"server_error", "network", "rate_limited", "http_401", "http_404", "http_200"}
    assert reasons == expected
