"""The HTTP adapter: each FullStory answer becomes one error class, here and nowhere else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fakes.fullstory_script import refused, timed_out
from worker.config.settings import Secret
from worker.errors import (
    AuthFailed,
    BadAnswer,
    NotFound,
    RateLimited,
    RejectedRequest,
    ServerError,
    Unreachable,
    WorkerError,
)
from worker.fullstory.client import (
    FullStoryClient,
    JobState,
    JobStatus,
    UserError,
    UserPresence,
)

Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


def _client(answer: Answer) -> FullStoryClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return answer(request) if callable(answer) else answer

    return FullStoryClient("http://fs.test", Secret("KEY"), transport=httpx.MockTransport(handler))


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


ANSWERS = [
    pytest.param(refused, Unreachable, id="connection-refused"),
    pytest.param(timed_out, Unreachable, id="timeout"),
    pytest.param(httpx.Response(500), ServerError, id="500"),
    pytest.param(httpx.Response(502), ServerError, id="502"),
    pytest.param(_json(503, {"code": "unavailable"}), ServerError, id="503"),
    pytest.param(httpx.Response(429, headers={"Retry-After": "7"}), RateLimited, id="429"),
    pytest.param(httpx.Response(401), AuthFailed, id="401"),
    pytest.param(httpx.Response(403), AuthFailed, id="403"),
    pytest.param(_json(404, {"code": "not_found"}), NotFound, id="404"),
    pytest.param(_json(400, {"code": "invalid_argument"}), RejectedRequest, id="400"),
    pytest.param(httpx.Response(413), RejectedRequest, id="413"),
    pytest.param(httpx.Response(422), RejectedRequest, id="422"),
    pytest.param(httpx.Response(301), BadAnswer, id="301"),
    pytest.param(httpx.Response(405), BadAnswer, id="405"),
    pytest.param(httpx.Response(408), BadAnswer, id="408"),
    pytest.param(httpx.Response(200, text="<html>"), BadAnswer, id="200-not-json"),
    pytest.param(_json(200, ["job"]), BadAnswer, id="200-not-an-object"),
    pytest.param(_json(200, {"job": {}}), BadAnswer, id="200-without-job-id"),
]


@pytest.mark.parametrize(("answer", "error"), ANSWERS)
def test_each_answer_to_a_post_raises_its_own_class(answer: Answer, error: type[WorkerError]):
    """The importer decides by class alone whether to split a batch (only a refused body),
    move to a new idempotency key (only 5xx) or report FullStory down (5xx, no answer), so
    each answer must arrive as exactly its class, not a parent or a sibling."""
    with pytest.raises(WorkerError) as raised:
        _client(answer).create_batch(b'{"requests":[]}', "fsus-key")
    assert type(raised.value) is error


def test_a_429_carries_its_retry_after_and_a_refusal_its_code():
    """Retry-After is what every job thread waits for after a 429; a refused body's code and
    message are what its user's dead letter says."""
    with pytest.raises(RateLimited) as limited:
        _client(httpx.Response(429, headers={"Retry-After": "7"})).job_status("j1")
    assert limited.value.retry_after == 7.0
    refusal = _json(400, {"code": "invalid_argument", "message": "uid too long"})
    with pytest.raises(RejectedRequest) as refused:
        _client(refusal).create_batch(b"{}", "fsus-key")
    assert (refused.value.code, refused.value.message) == ("invalid_argument", "uid too long")


def _status(state: Any, **counts: Any) -> httpx.Response:
    return _json(200, {**counts, "job": {"id": "j1", "status": state}})


@pytest.mark.parametrize(
    "answer",
    [
        _status("QUEUED"),
        _status("completed"),
        _status(None),
        _status("COMPLETED", errors="many"),
        _json(200, {"imports": 1}),
        _json(200, {"job": "j1"}),
    ],
    ids=["unknown-state", "lower-case", "null-state", "bad-count", "no-job", "job-not-object"],
)
def test_a_job_status_the_worker_cannot_read_is_a_bad_answer(answer: httpx.Response):
    """A job is taken as ended only from a state the API documents: anything else is asked
    again (``BadAnswer`` is retried), never read as COMPLETED, which would acknowledge its
    users."""
    with pytest.raises(BadAnswer):
        _client(answer).job_status("j1")


@pytest.mark.parametrize("state", list(JobState), ids=lambda state: state.value)
def test_each_documented_job_state_is_read(state: JobState):
    """The three states the API documents are read as such, with counts sent as strings
    (as the SDK's models type them) or numbers."""
    status = _client(_status(state.value, imports="3", errors=1)).job_status("j1")
    assert status == JobStatus("j1", state, imports=3, errors=1)
    assert status.done is (state is not JobState.PROCESSING)


def test_a_404_on_a_jobs_status_is_not_found():
    """A job FullStory does not know answers 404; the fence stops waiting on that class."""
    with pytest.raises(NotFound):
        _client(httpx.Response(404)).job_status("gone")


@pytest.mark.parametrize(
    "results",
    [5, "abc", [{"code": "invalid_user"}], [{"code": "x", "user": None}], ["b"]],
    ids=["number", "string", "no-user", "null-user", "not-objects"],
)
def test_an_error_page_the_worker_cannot_match_to_users_is_a_bad_answer(results: Any):
    """Users a FAILED job does not list count as imported, so a page whose errors name no
    uid is asked again rather than taken as listing nobody."""
    with pytest.raises(BadAnswer):
        _client(_json(200, {"results": results})).job_errors("j1")


def test_an_error_page_lists_each_user_and_the_next_token():
    """Each listed error names its user, FullStory's code and message."""
    page = {
        "results": [{"code": "invalid_user", "message": "bad b", "user": {"uid": "b"}}],
        "next_page_token": "p2",
    }
    errors, token = _client(_json(200, page)).job_errors("j1")
    assert errors == [UserError("b", "invalid_user", "bad b")] and token == "p2"


def test_client_repr_hides_the_api_key():
    """The API key does not leak through the client's repr."""
    client = FullStoryClient("http://fs.test", Secret("SECRET-KEY"))
    assert "SECRET-KEY" not in repr(client)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("10000000000", 60.0), ("inf", 60.0), ("-5", 0.0), ("nan", None), ("soon", None)],
    ids=["absurd", "infinite", "negative", "nan", "not-a-number"],
)
def test_retry_after_is_bounded_so_one_header_cannot_park_or_crash_the_worker(header, seconds):
    """Retry-After beyond a minute waits a minute and asks again (10^10 s used to overflow
    the wait and crash every job thread, again after each restart)."""
    with pytest.raises(RateLimited) as limited:
        _client(httpx.Response(429, headers={"Retry-After": header})).job_status("j1")
    assert limited.value.retry_after == seconds


def test_an_answer_nested_too_deep_is_a_bad_answer_not_a_crash():
    deep = httpx.Response(200, content=("[" * 100_000 + "]" * 100_000).encode())
    with pytest.raises(BadAnswer):
        _client(deep).job_status("j1")
    with pytest.raises(BadAnswer):
        _client(deep).create_batch(b'{"requests":[]}', "fsus-key")


def test_a_refusals_message_is_bounded_for_the_dead_letter_headers():
    refusal = _json(400, {"code": "c" * 10_000, "message": "m" * 1_000_000})
    with pytest.raises(RejectedRequest) as refused:
        _client(refusal).create_batch(b"{}", "fsus-key")
    assert len(refused.value.code) == 100 and len(refused.value.message) == 1000


@pytest.mark.parametrize(
    "job_id",
    ["", "j" * 257, "j1\n", "j\x00", "j\x7f", None, True, ["j1"], {"id": "j1"}],
    ids=[
        "empty",
        "too-long",
        "newline",
        "nul",
        "del",
        "null",
        "boolean",
        "list",
        "object",
    ],
)
def test_an_absurd_job_id_from_a_post_is_a_bad_answer(job_id: Any):
    """The job id goes into URLs, logs and the commit metadata that fences a partition: one
    FullStory could not have meant is asked for again, never followed."""
    with pytest.raises(BadAnswer):
        _client(_json(200, {"job": {"id": job_id, "status": "PROCESSING"}})).create_batch(
            b'{"requests":[]}', "fsus-key"
        )


def test_a_job_id_is_one_escaped_path_segment():
    """A job id with '/', '?' or '%' cannot reach another endpoint or add a query."""
    paths: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return _status("FAILED") if "errors" not in paths[-1] else _json(200, {"results": []})

    client = _client(answer)
    job_id = "a/../b?c=%2"
    client.job_status(job_id)
    client.job_errors(job_id, "t/1")
    assert paths == [
        "/v2/users/batch/a%2F..%2Fb%3Fc%3D%252",
        "/v2/users/batch/a%2F..%2Fb%3Fc%3D%252/errors?page_token=t%2F1",
    ]


@pytest.mark.parametrize(
    ("answer", "presence"),
    [
        (_json(200, {"results": [{"uid": "u 1", "is_being_deleted": False}]}), "PRESENT"),
        (_json(200, {"results": [{"uid": "u 1"}]}), "PRESENT"),
        (_json(200, {"results": [{"uid": "u 1", "is_being_deleted": True}]}), "BEING_DELETED"),
        (_json(404, {"code": "resource_not_found", "message": "no user"}), "ABSENT"),
        (_json(200, {"results": []}), "ABSENT"),
    ],
    ids=["present", "present-no-flag", "being-deleted", "404", "no-results"],
)
def test_a_user_look_up_says_present_being_deleted_or_absent(answer, presence):
    """The order of a delete rests on this answer: a deletion still running is not absent."""
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return answer

    assert _client(handler).user_presence("u 1") is UserPresence[presence]
    assert asked[0].method == "GET" and asked[0].url.path == "/v2/users"
    assert asked[0].url.params["uid"] == "u 1"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (_json(403, {"code": "forbidden"}), AuthFailed),
        (_json(429, {}), RateLimited),
        (_json(503, {}), ServerError),
        (_json(200, {"results": [{"uid": "someone else"}]}), BadAnswer),
        (_json(200, {"results": [{"uid": "u 1", "is_being_deleted": "yes"}]}), BadAnswer),
        (_json(200, {"results": [{"uid": "u 1"}, {"uid": "u 1"}]}), BadAnswer),
        (_json(200, {"results": "none"}), BadAnswer),
        (_json(200, {}), BadAnswer),
    ],
    ids=["403", "429", "503", "other-user", "flag-not-bool", "two-users", "not-a-list", "empty"],
)
def test_a_look_up_the_worker_cannot_trust_is_never_taken_for_an_answer(answer, error):
    """A key without the Admin role (403) or an absurd answer is an error, never "absent":
    taken as absent, a re-created user could be swallowed by a deletion still running."""
    with pytest.raises(error):
        _client(answer).user_presence("u 1")


def test_a_delete_is_done_on_200_and_on_404_and_anything_else_raises():
    """200: FullStory took the deletion; 404: there was no such user. Both end the delete;
    the rest is retried by the caller's policy like every call."""
    asked: list[httpx.Request] = []

    def answers(status: int) -> Answer:
        def handler(request: httpx.Request) -> httpx.Response:
            asked.append(request)
            return _json(status, {} if status == 200 else {"code": "x"})

        return handler

    assert _client(answers(200)).delete_user("a/b?c") is True
    assert asked[-1].method == "DELETE" and asked[-1].url.path == "/v2/users"
    assert asked[-1].url.params["uid"] == "a/b?c"
    assert _client(answers(404)).delete_user("a") is False
    for status, error in ((403, AuthFailed), (429, RateLimited), (500, ServerError)):
        with pytest.raises(error):
            _client(answers(status)).delete_user("a")
