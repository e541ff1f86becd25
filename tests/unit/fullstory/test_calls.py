"""The retry policy every job thread shares (worker/fullstory/calls.py), on real threads and
time."""

from __future__ import annotations

import threading
import time

import structlog

from worker.errors import ServerError
from worker.fullstory.calls import Calls, Policy, Recovery
from worker.runtime.metrics import Metrics
from worker.runtime.retry import Backoff

LONG_BACKOFF_S = 60.0


def policy(probe_s: float) -> Policy:
    return Policy(
        abandon=threading.Event(),
        backoff=lambda: Backoff(
            base_s=LONG_BACKOFF_S, cap_s=LONG_BACKOFF_S, floor_s=LONG_BACKOFF_S
        ),
        on_api_answer=lambda: None,
        on_api_failure=lambda: None,
        metrics=Metrics(),
        recovery=Recovery(probe_s=probe_s),
    )


def test_when_fullstory_comes_back_one_prober_notices_and_every_thread_goes_at_once():
    """Three threads back off after 503s for 60 s each. One of them (the prober) tries again
    every probe interval, the others do not call at all: when the API answers again, all
    three are through within a few probe intervals, not after their 60 s."""
    shared = policy(probe_s=0.05)
    back = threading.Event()
    calls: list[float] = []
    lock = threading.Lock()

    def create_batch() -> str:
        with lock:
            calls.append(time.monotonic())
        if not back.is_set():
            raise ServerError("503 from FullStory", status=503)
        return "job"

    results: list[str] = []

    def thread() -> None:
        calls_ = Calls(shared, cancel=None)
        results.append(calls_.retrying(create_batch, "create_batch", structlog.get_logger()))

    threads = [threading.Thread(target=thread) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)  # the outage: 1 s of probing every 0.05 s
        during = len(calls)
        back.set()
        came_back = time.monotonic()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads), "a thread slept out its 60 s backoff"
        assert results == ["job"] * 3
        assert time.monotonic() - came_back < 5
        # One prober, not three: about 20 probes in the second (3 first tries included).
        assert 5 <= during <= 40, during
    finally:
        shared.abandon.set()
        for t in threads:
            t.join(5)


def test_only_one_thread_at_a_time_is_the_prober_of_an_endpoint():
    recovery = Recovery(probe_s=1.0)
    assert recovery.claim_probe("create_batch")
    assert not recovery.claim_probe("create_batch")
    assert recovery.claim_probe("job_status")  # each endpoint has its own
    recovery.release_probe("create_batch")
    assert recovery.claim_probe("create_batch")
