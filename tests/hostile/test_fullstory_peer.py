"""FullStory as a hostile peer: a real loopback server answers each case as badly as it can,
and the real client, importer and job stage must end each call within its bound, let no
exception escape but the worker's own, and acknowledge nothing.

A call's bound is ``DEADLINE_S``; asserted loosely (three times it), never as a speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fakes.fullstory_script import users_of
from tests.hostile.server import (
    DEADLINE_S,
    DRIP_S,
    Behaviour,
    Exchange,
    HostileServer,
    answer,
    huge,
    raw,
    trickled_body,
    trickled_headers,
)
from worker.config.settings import Secret
from worker.errors import Abandoned, BadAnswer, RateLimited, Unreachable, WorkerError
from worker.fullstory.client import ANSWER_MAX_BYTES, RETRY_AFTER_MAX_S, FullStoryClient
from worker.fullstory.importer import Importer, ImportOutcome
from worker.fullstory.jobs import JobWatch
from worker.runtime.health import Health
from worker.runtime.metrics import Metrics
from worker.runtime.retry import Backoff

BOUND_S = 3 * DEADLINE_S
POST = ("POST", "/v2/users/batch")
STATUS = ("GET", "/v2/users/batch/j1")
ERRORS = ("GET", "/v2/users/batch/j1/errors")
JOB = answer(200, {"job": {"id": "j1", "status": "PROCESSING"}})
DEEP = ("[" * 100_000 + "]" * 100_000).encode()


def _client(server: HostileServer) -> FullStoryClient:
    return FullStoryClient(server.url, Secret("KEY"), timeout_s=DEADLINE_S)


def _status(state: str, errors: int = 0) -> Behaviour:
    return answer(200, {"errors": errors, "job": {"id": "j1", "status": state}})


def _error_page(token: str | None, *uids: str) -> Behaviour:
    results = [{"code": "invalid_user", "message": "m", "user": {"uid": uid}} for uid in uids]
    return answer(200, {"results": results, "next_page_token": token})


def _listing_without_end(exchange: Exchange) -> None:
    """Every page lists both users again and points at a fresh next page."""
    page = int(exchange.query.get("page_token", ["0"])[0])
    _error_page(str(page + 1), "a", "b")(exchange)


CALLS = [
    pytest.param(STATUS, huge(), BadAnswer, id="huge-body-no-length"),
    pytest.param(STATUS, huge(declared=True), BadAnswer, id="huge-body-declared"),
    pytest.param(STATUS, trickled_body(DRIP_S), Unreachable, id="trickled-body"),
    pytest.param(STATUS, trickled_headers(DRIP_S), Unreachable, id="trickled-headers"),
    pytest.param(STATUS, raw(200, DEEP), BadAnswer, id="deep-json"),
    pytest.param(STATUS, _status("PAUSED"), BadAnswer, id="unknown-status"),
    pytest.param(STATUS, raw(200, b"<html>hi</html>", "text/html"), BadAnswer, id="html"),
    pytest.param(POST, answer(200, {"job": {"id": "j\n1"}}), BadAnswer, id="job-id-control"),
    pytest.param(POST, answer(200, {"job": {"id": "j" * 300}}), BadAnswer, id="job-id-long"),
    pytest.param(POST, answer(200, {"job": {"id": ""}}), BadAnswer, id="job-id-empty"),
    pytest.param(POST, answer(200, {"job": {"id": "."}}), BadAnswer, id="job-id-dot"),
    pytest.param(POST, answer(200, {"job": {"id": ".."}}), BadAnswer, id="job-id-dot-dot"),
]


def _call(client: FullStoryClient, route: tuple[str, str]) -> Any:
    if route == POST:
        return client.create_batch(b'{"requests":[]}', "fsus-key")
    return client.job_status("j1")


@pytest.mark.parametrize(("route", "behaviour", "error"), CALLS)
def test_each_hostile_answer_ends_the_call_in_time_as_the_workers_own_error(
    server: HostileServer, route: tuple[str, str], behaviour: Behaviour, error: type[Exception]
):
    """One call against each hostile answer ends within its bound as exactly the class the
    retry policy expects (never a crash, never an answer taken as good), and a runaway body
    is not read whole: the server could send little more than the cap before the client hung
    up (the kernel's socket buffers account for the rest)."""
    server.answer_with(*route, behaviour)
    client = _client(server)
    started = time.monotonic()
    with pytest.raises(WorkerError) as raised:
        _call(client, route)
    assert type(raised.value) is error
    assert time.monotonic() - started < BOUND_S
    assert server.bytes_sent < 4 * ANSWER_MAX_BYTES  # of 100 MiB offered
    client.close()


def test_an_absurd_retry_after_is_believed_for_a_minute_at_most(server: HostileServer):
    """Retry-After 10^10 s would park every job thread for centuries (or overflow the wait)."""
    server.answer_with(*POST, answer(429, {"code": "slow_down"}, **{"Retry-After": "1" + "0" * 10}))
    with pytest.raises(RateLimited) as limited:
        _call(_client(server), POST)
    assert limited.value.retry_after == RETRY_AFTER_MAX_S


def test_a_job_id_reaches_the_server_as_one_escaped_segment(server: HostileServer):
    """A job id FullStory hands out with '/' or '?' still names that job and no other URL."""
    server.answer_with(*POST, answer(200, {"job": {"id": "../j?x=1"}}))
    server.answer_with("GET", "/v2/users/batch/..%2Fj%3Fx%3D1", _status("COMPLETED"))
    client = _client(server)
    job_id = _call(client, POST)
    assert client.job_status(job_id).done
    assert server.requests[-1][1:] == ("/v2/users/batch/..%2Fj%3Fx%3D1", {})


# -- the importer and the job stage against each hostile peer ---------------------------


def _importer(server: HostileServer, abandon: threading.Event, **options: Any) -> Importer:
    return Importer(
        _client(server),
        abandon=abandon,
        poll_max_interval_s=0.05,
        poll_min_interval_s=0.01,
        backoff=lambda: Backoff(base_s=0.01, cap_s=0.05, floor_s=0.01),
        **options,
    )


def _run_until(
    importer: Importer, abandon: threading.Event, until: Callable[[], bool], limit_s: float
) -> tuple[ImportOutcome | None, BaseException | None, float]:
    """Run one batch on a thread until ``until()`` (or ``limit_s``), then abandon it as the
    shutdown deadline does; its outcome (None: nothing acknowledged), what it raised, and
    how long it took to end once abandoned."""
    ended: dict[str, Any] = {}

    def run() -> None:
        try:
            ended["outcome"] = importer.run(users_of("a", "b"))
        except BaseException as exc:  # whatever escapes, to assert on
            ended["raised"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + limit_s
    while not until() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    abandoned_at = time.monotonic()
    abandon.set()
    thread.join(BOUND_S * 2)
    assert not thread.is_alive(), "the job thread outlived its abandon"
    return ended.get("outcome"), ended.get("raised"), time.monotonic() - abandoned_at


def _readings(server: HostileServer) -> int:
    """Readings of the /errors listing begun: requests for its first page."""
    return sum(
        1 for m, p, query in list(server.requests) if (m, p) == ERRORS and "page_token" not in query
    )


PEERS = [
    # routes answered badly; the route asked again (each hostile answer survived) and how
    # often (negative: readings of the /errors listing)
    pytest.param({STATUS: huge()}, STATUS, 2, id="huge-status"),
    pytest.param({STATUS: trickled_body(DRIP_S)}, STATUS, 2, id="trickled-status"),
    pytest.param({STATUS: trickled_headers(DRIP_S)}, STATUS, 2, id="trickled-headers"),
    pytest.param({STATUS: raw(200, DEEP)}, STATUS, 2, id="deep-json-status"),
    pytest.param({STATUS: _status("PAUSED")}, STATUS, 2, id="unknown-status"),
    pytest.param(
        {STATUS: _status("FAILED", errors=1), ERRORS: _error_page("same")},
        ERRORS,
        -2,  # read again from its first page: the looping listing was given up
        id="repeating-page-token",
    ),
    pytest.param(
        {STATUS: _status("FAILED", errors=1), ERRORS: _listing_without_end},
        ERRORS,
        -2,
        id="listing-longer-than-the-job",
    ),
    pytest.param({ERRORS: huge()}, ERRORS, 2, id="huge-errors-page"),
    # Its wait (a minute) is what the shutdown deadline cuts short: one answer is enough.
    pytest.param(
        {POST: answer(429, {}, **{"Retry-After": "1" + "0" * 10})}, POST, 1, id="retry-after-1e10"
    ),
    pytest.param({POST: answer(200, {"job": {"id": "j\x00"}})}, POST, 2, id="absurd-job-id"),
    # A dot segment is no job: URLs drop it, and the status poll would read the URL above,
    # here answering as a job that COMPLETED.
    pytest.param(
        {POST: answer(200, {"job": {"id": ".."}}), ("GET", "/v2/users"): _status("COMPLETED")},
        POST,
        2,
        id="dot-dot-job-id",
    ),
    pytest.param(
        {POST: answer(200, {"job": {"id": "."}}), ("GET", "/v2/users/batch"): _status("COMPLETED")},
        POST,
        2,
        id="dot-job-id",
    ),
]


@pytest.mark.parametrize(("routes", "hostile", "times"), PEERS)
def test_a_hostile_peer_never_gets_a_batch_acknowledged_nor_crashes_its_thread(
    server: HostileServer,
    routes: dict[tuple[str, str], Behaviour],
    hostile: tuple[str, str],
    times: int,
):
    """The importer keeps asking (each bad answer is retried) until the shutdown deadline
    abandons it: then it ends within a call's bound, with ``Abandoned`` and no outcome, so
    none of the batch's records is acknowledged, and nothing else ever escaped."""
    server.answer_with(*POST, JOB)
    server.answer_with(*STATUS, _status("FAILED", errors=1))
    for route, behaviour in routes.items():
        server.answer_with(*route, behaviour)
    abandon = threading.Event()

    def until() -> bool:
        return _readings(server) >= -times if times < 0 else server.served(*hostile) >= times

    outcome, raised, ending_s = _run_until(_importer(server, abandon), abandon, until, 20)
    assert until(), "the hostile answer was not asked for again"
    assert outcome is None and isinstance(raised, Abandoned)
    assert ending_s < BOUND_S
    assert server.bytes_sent < 4 * ANSWER_MAX_BYTES * server.served(*hostile)


def test_a_job_that_never_ends_is_overdue_not_ready_and_never_acknowledged(
    server: HostileServer,
):
    """A job PROCESSING for ever is followed, never taken as ended: past JOB_MAX_WAIT_S it is
    counted in fsus_jobs_overdue and /readyz is not ready naming it; once its wait ends
    (here: abandoned at shutdown) both clear, and nothing was acknowledged."""
    server.answer_with(*POST, JOB)
    server.answer_with(*STATUS, _status("PROCESSING"))
    watch, metrics, abandon = JobWatch(max_wait_s=0.3), Metrics(), threading.Event()
    health = Health(60, overdue_jobs=watch.overdue)
    health.joined()

    def overdue() -> bool:
        return metrics.registry.get_sample_value("fsus_jobs_overdue") == 1

    importer = _importer(server, abandon, watch=watch, metrics=metrics)
    seen: dict[str, Any] = {}

    def watch_readiness() -> bool:
        if overdue():
            seen["ready"] = health.ready()
            return True
        return False

    outcome, raised, _ = _run_until(importer, abandon, watch_readiness, 10)
    assert seen["ready"][0] is False and seen["ready"][1]["overdue_jobs"] == ["j1"]
    assert outcome is None and isinstance(raised, Abandoned)
    assert not overdue() and health.ready()[0] is True
    assert server.served(*STATUS) >= 2
