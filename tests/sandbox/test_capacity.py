"""Org limits: 100 running jobs, 200 in progress, 500,000 in-flight request objects."""

from __future__ import annotations

from fullstory_sandbox import Sandbox

from .helpers import API_KEY, batch, make_client


def test_100_run_100_queue_and_the_201st_is_429() -> None:
    """100 jobs run, the next 100 queue, and job 201 gets 429 with Retry-After."""
    with Sandbox(api_key=API_KEY, job_delay_ms=30_000) as sb, make_client(sb) as client:
        for i in range(200):
            response = client.post("/v2/users/batch", json=batch({"uid": f"u{i}"}))
            assert response.status_code == 200, (i, response.text)
        jobs = sb.stats()["jobs"]
        assert (jobs["running"], jobs["queued"]) == (100, 100)

        refused = client.post("/v2/users/batch", json=batch({"uid": "late"}))
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 30
        assert len(sb.jobs()) == 200
        assert sb.stats()["jobs"]["max_running"] == 100


def test_in_flight_request_objects_are_capped() -> None:
    """A job that would take in-flight request objects past the cap is refused with 429."""
    with (
        Sandbox(api_key=API_KEY, job_delay_ms=30_000, max_in_flight_requests=10) as sb,
        make_client(sb) as client,
    ):
        eight = batch(*({"uid": f"u{i}"} for i in range(8)))
        assert client.post("/v2/users/batch", json=eight).status_code == 200
        three = batch(*({"uid": f"v{i}"} for i in range(3)))
        assert client.post("/v2/users/batch", json=three).status_code == 429
        two = batch(*({"uid": f"w{i}"} for i in range(2)))
        assert client.post("/v2/users/batch", json=two).status_code == 200
        assert sb.stats()["jobs"]["in_flight_requests"] == 10
