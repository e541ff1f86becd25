"""The import stage (POST, idempotency keys, splitting a refused batch, the retry policy)
against FullStory answers scripted with httpx.MockTransport."""

from __future__ import annotations

import json
import random
import threading
import time

import httpx
import pytest

from tests.fakes.factories import change
from tests.fakes.fullstory_script import (
    DONE,
    JOB,
    InstantWaits,
    Script,
    importer_on,
    refused,
    retry_after_0,
    timed_out,
    users_of,
)
from worker.errors import Abandoned
from worker.events.merge import fold
from worker.fullstory.client import UserError
from worker.fullstory.importer import encode_body
from worker.runtime.metrics import Metrics
from worker.runtime.retry import Backoff


def test_completed_job_has_no_failures_and_sends_auth_and_key():
    """A COMPLETED job acknowledges every user; the request carries auth and an idempotency key."""
    script = Script({"POST /v2/users/batch": [JOB], "GET /v2/users/batch/j1": [DONE]})
    outcome = importer_on(script).run(users_of("a", "b"))
    assert outcome.failures == {} and outcome.job_ids == ["j1"]
    post = script.requests[0]
    assert post.headers["Authorization"] == "Basic KEY"
    assert post.headers["Idempotency-Key"].startswith("fsus-")
    assert [r["uid"] for r in json.loads(post.content)["requests"]] == ["a", "b"]


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
    outcome = importer_on(script).run(users_of("a"))
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
    importer_on(script).run(users_of("a"))
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
    outcome = importer_on(script).run(users_of("a", "bad", "c", "d"))
    assert set(outcome.failures) == {"bad"}
    assert outcome.failures["bad"].code == "invalid_argument"


def test_abandon_stops_the_retry_loop():
    """At the shutdown deadline a job stuck in retries gives up its wait (records stay unacked)."""
    abandon = threading.Event()
    abandon.set()
    script = Script({"POST /v2/users/batch": [httpx.Response(503)]})
    with pytest.raises(Abandoned):
        importer_on(script, abandon).run(users_of("a"))


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
    importer = importer_on(script)
    first = threading.Thread(target=importer.run, args=(users_of("a"),))
    first.start()
    assert answered_429.wait(5), "the first job never reached FullStory"
    importer.run(users_of("b"))
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
    outcome = importer_on(script).run(users_of("a", "b"))
    assert outcome.failures == {}
    assert sum(r.method == "POST" for r in script.requests) == 3


@pytest.mark.parametrize(
    ("answer", "failed"),
    [
        (httpx.Response(500), True),
        (httpx.Response(503), True),
        (refused, True),
        (timed_out, True),
        (retry_after_0(), False),
        (httpx.Response(401), True),
        (httpx.Response(404), False),
        (httpx.Response(200, text="<html>"), True),
    ],
    ids=[
        "500",
        "503",
        "connection-refused",
        "timeout",
        "429",
        "401",
        "404",
        "200-not-json",
    ],
)
def test_readiness_hears_whether_fullstory_failed_or_answered(answer, failed):
    """/readyz turns off when FullStory keeps failing (5xx, timeouts, refused connections),
    refuses the key, or answers what no documentation promises (a garbled body, a job status
    the worker does not know), and on again with its next good answer; a rate limit or a
    404 is an answer (FullStory is up and working), not an outage."""
    heard: list[str] = []
    script = Script({"POST /v2/users/batch": [answer, JOB], "GET /v2/users/batch/j1": [DONE]})
    importer = importer_on(
        script,
        on_api_answer=lambda: heard.append("answer"),
        on_api_failure=lambda: heard.append("failure"),
    )
    importer.run(users_of("a"))
    assert heard == ["failure" if failed else "answer", "answer", "answer"]


def test_a_job_status_no_documentation_promises_turns_readiness_off_until_a_good_answer():
    heard: list[str] = []
    paused = httpx.Response(200, json={"job": {"id": "j1", "status": "PAUSED"}})
    script = Script({"POST /v2/users/batch": [JOB], "GET /v2/users/batch/j1": [paused, DONE]})
    importer = importer_on(
        script,
        on_api_answer=lambda: heard.append("answer"),
        on_api_failure=lambda: heard.append("failure"),
    )
    outcome = importer.run(users_of("a"))
    assert heard == ["answer", "failure", "answer"] and outcome.failures == {}


@pytest.mark.parametrize(
    "failures",
    [[refused], [timed_out], [httpx.Response(404)] * 4, [retry_after_0()] * 4],
    ids=["connection-refused", "timeout", "wrong-url-answers", "rate-limited"],
)
def test_only_5xx_answers_move_a_body_to_a_new_key(failures):
    """A POST retried after a timeout, a refused connection, a 429 or a misrouted request
    keeps its idempotency key, so one that did reach FullStory cannot create a second job."""
    script = Script({"POST /v2/users/batch": [*failures, JOB], "GET /v2/users/batch/j1": [DONE]})
    outcome = importer_on(script).run(users_of("a"))
    assert outcome.failures == {}
    keys = [r.headers["Idempotency-Key"] for r in script.requests if r.method == "POST"]
    assert len(keys) == len(failures) + 1
    assert len(set(keys)) == 1


def test_every_key_gets_three_5xx_answers_before_the_next():
    """A replayed 5xx is escaped after three answers under a key, and so is every later key's:
    moving on sooner makes needless keys, each a chance of a second job for the same body."""
    script = Script(
        {
            "POST /v2/users/batch": [httpx.Response(500)] * 7 + [JOB],
            "GET /v2/users/batch/j1": [DONE],
        }
    )
    importer_on(script).run(users_of("a"))
    keys = [r.headers["Idempotency-Key"] for r in script.requests if r.method == "POST"]
    generations = [list(dict.fromkeys(keys)).index(key) for key in keys]
    assert generations == [0, 0, 0, 1, 1, 1, 2, 2]


def test_after_a_429_the_next_try_goes_when_retry_after_says():
    """However many 429s came before, the next try waits what Retry-After says (here: go now,
    after the minimal pause), not the growing backoff meant for failures."""
    script = Script(
        {"POST /v2/users/batch": [retry_after_0()] * 6 + [JOB], "GET /v2/users/batch/j1": [DONE]}
    )
    waits = InstantWaits()
    backoff = Backoff(floor_s=0.05, rng=random.Random(7))
    importer_on(script, backoff=lambda: backoff).run(users_of("a"), cancel=waits)
    assert [w for w in waits.waits if w][:6] == [0.05] * 6


def test_the_body_is_compact_utf8_json():
    """FullStory limits a request's size and the idempotency key hashes these exact bytes:
    the body is compact UTF-8 (no \\u escapes, no padding), the same for the same users,
    whether encoded whole or a user at a time."""
    users = [
        fold([change("zoë", display_name="Zoë Ü", n=1)]),
        fold([change("b", score=1.5, beta=True)]),
    ]
    body = encode_body(users)
    assert (
        body
        == (
            '{"requests":[{"uid":"zoë","display_name":"Zoë Ü","properties":{"n":1},'
            '"schema":{"properties":{"n":"int"}}},{"uid":"b","properties":{"score":1.5,'
            '"beta":true},"schema":{"properties":{"score":"real","beta":"bool"}}}]}'
        ).encode()
    )
    requests = [user.to_request() for user in users]
    assert (
        body
        == json.dumps({"requests": requests}, separators=(",", ":"), ensure_ascii=False).encode()
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
    outcome = importer_on(script).run(users_of(*uids))
    assert outcome.failures == {"bad": UserError("bad", "invalid_argument", "uid bad")}
    assert all(posts), "an empty request was sent"
    accepted = [uid for users in posts if "bad" not in users for uid in users]
    assert sorted(accepted) == sorted(uid for uid in uids if uid != "bad")


def test_retries_are_counted_by_reason():
    """``fsus_fullstory_retries_total{reason}`` tells an operator why FullStory calls are
    retried; its label values stay those the dashboards know."""
    script = Script(
        {
            "POST /v2/users/batch": [
                httpx.Response(503),
                timed_out,
                retry_after_0(),
                httpx.Response(401),
                httpx.Response(404),
                httpx.Response(200, text="<html>"),
                JOB,
            ],
            "GET /v2/users/batch/j1": [DONE],
        }
    )
    metrics = Metrics()
    importer_on(script, metrics=metrics).run(users_of("a"))
    reasons = {
        sample.labels["reason"]
        for family in metrics.registry.collect()
        if family.name == "fsus_fullstory_retries"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    expected = {"server_error", "network", "rate_limited", "http_401", "http_404", "bad_answer"}
    assert reasons == expected


def test_a_large_batch_encoded_in_parts_is_the_same_body_as_whole():
    """Users are encoded a few hundred at a time (memory): the joined body is exactly the
    whole batch's compact JSON, so the idempotency key does not depend on how it was built."""
    users = [fold([change(f"u{offset}", seats=offset, plan="pro")]) for offset in range(1_201)]
    requests = [user.to_request() for user in users]
    whole = json.dumps({"requests": requests}, separators=(",", ":"), ensure_ascii=False)
    assert encode_body(users) == whole.encode()


def test_when_fullstory_is_back_a_backing_off_batch_retries_at_once_under_a_new_key():
    """After an outage, a job thread does not sleep out its backoff (up to 30 s) once another
    thread's call succeeded, and a 5xx that its key then gets again is the saved answer
    replayed: the same body goes at once under a new key, not after two more replays."""
    keys_of_a: list[str] = []
    a_waits = threading.Event()

    def post(request: httpx.Request) -> httpx.Response:
        uids = [r["uid"] for r in json.loads(request.content)["requests"]]
        if uids == ["a"]:
            keys_of_a.append(request.headers["Idempotency-Key"])
            if len(keys_of_a) == 1:
                a_waits.set()  # the outage's 503, saved under this key...
                return httpx.Response(503)
            if len(keys_of_a) == 2:
                return httpx.Response(503)  # ...and replayed
            return httpx.Response(200, json={"job": {"id": "ja", "status": "PROCESSING"}})
        return httpx.Response(200, json={"job": {"id": "jb", "status": "PROCESSING"}})

    done = httpx.Response(200, json={"imports": 1, "job": {"id": "j", "status": "COMPLETED"}})
    script = Script(
        {
            "POST /v2/users/batch": [post],
            "GET /v2/users/batch/ja": [done],
            "GET /v2/users/batch/jb": [done],
        }
    )
    abandon = threading.Event()
    importer = importer_on(
        script, abandon, backoff=lambda: Backoff(base_s=60, cap_s=60, floor_s=60)
    )
    outcomes = []
    backing_off = threading.Thread(target=lambda: outcomes.append(importer.run(users_of("a"))))
    backing_off.start()
    try:
        assert a_waits.wait(10)
        importer.run(users_of("b"))  # FullStory answers again
        backing_off.join(10)
        assert not backing_off.is_alive(), "the batch slept out its 60 s backoff"
    finally:
        abandon.set()  # ends the thread if the test failed
        backing_off.join(5)
    assert outcomes and outcomes[0].job_ids == ["ja"]
    assert keys_of_a[0] == keys_of_a[1] != keys_of_a[2]


def test_a_failing_post_is_not_retried_because_another_endpoint_answers():
    """Only a success of the same call ends a backoff early: job polls answering while POSTs
    fail with 503 must not turn every poll into another POST (and another key)."""
    posts: list[str] = []
    failing = threading.Event()

    def post(request: httpx.Request) -> httpx.Response:
        posts.append(request.headers["Idempotency-Key"])
        failing.set()
        return httpx.Response(503)

    done = httpx.Response(200, json={"imports": 1, "job": {"id": "j", "status": "COMPLETED"}})
    script = Script({"POST /v2/users/batch": [post], "GET /v2/users/batch/jx": [done]})
    abandon = threading.Event()
    importer = importer_on(
        script, abandon, backoff=lambda: Backoff(base_s=60, cap_s=60, floor_s=60)
    )

    def run() -> None:
        with pytest.raises(Abandoned):  # the test's end abandons the 60 s backoff
            importer.run(users_of("a"))

    backing_off = threading.Thread(target=run)
    backing_off.start()
    try:
        assert failing.wait(10)
        for _ in range(5):
            importer.await_jobs(["jx"])  # job_status answers, five times
        backing_off.join(0.5)
        assert backing_off.is_alive() and len(posts) == 1
    finally:
        abandon.set()
        backing_off.join(5)


def test_the_same_records_keep_their_key_across_runs_and_other_records_get_another():
    """A batch formed again from the same records (after a crash) carries the key of its
    first POST, so FullStory answers with the job that POST made rather than a second job
    of older values; the same body for other records (A, B, then A again) gets a new key."""
    script = Script({"POST /v2/users/batch": [JOB] * 3, "GET /v2/users/batch/j1": [DONE] * 3})
    importer = importer_on(script)
    first, later = bytes(32), bytes(31) + b"\x01"
    for records in (first, first, later):
        importer.run(users_of("a"), records=records)
    keys = [r.headers["Idempotency-Key"] for r in script.requests if r.method == "POST"]
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2]
    assert len({r.content for r in script.requests if r.method == "POST"}) == 1
