"""The import stage against FullStory answers scripted with httpx.MockTransport."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.unit.factories import change, record
from worker.batch import Batcher
from worker.config import Secret
from worker.errors import Abandoned
from worker.fullstory import FullStoryClient
from worker.importer import Importer
from worker.retry import Backoff


def _batch(*uids: str):
    batcher = Batcher(max_users=100, max_wait_s=0)
    for offset, uid in enumerate(uids):
        batcher.add(record(offset), change(uid, seats=offset), 0)
    return batcher.take(blocked=set(), now=0.0)


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


def _importer(script: Script, abandon: threading.Event | None = None) -> Importer:
    client = FullStoryClient("http://fs.test", Secret("KEY"), transport=httpx.MockTransport(script))
    return Importer(
        client,
        abandon=abandon or threading.Event(),
        poll_max_interval_s=0.01,
        poll_min_interval_s=0.001,
        backoff=lambda: Backoff(base_s=0.001, cap_s=0.005, floor_s=0.001),
    )


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
