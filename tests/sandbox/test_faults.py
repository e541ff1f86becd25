"""Injected faults: rate limits, server errors, resets, slow answers, endpoint scoping."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fullstory_sandbox import Sandbox

from .helpers import API_KEY, batch, finished_status, make_client, wait_for


def create(client: httpx.Client) -> httpx.Response:
    return client.post("/v2/users/batch", json=batch({"uid": "a"}))


def test_rate_limit_hits_the_next_n_requests_and_is_logged(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    """`rate_limit` answers the next N /v2 requests 429 with Retry-After, then stops."""
    sandbox.set_faults(rate_limit={"count": 2, "retry_after_s": 3})
    statuses = [create(client).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    log = sandbox.requests()
    assert [r["retry_after"] for r in log] == [3, 3, None]
    assert all(isinstance(r["time_monotonic"], float) and r["time"].endswith("Z") for r in log)


def test_server_error_status_is_configurable(client: httpx.Client, sandbox: Sandbox) -> None:
    """`server_error` answers the next N requests with the chosen 5xx, JSON error body."""
    sandbox.set_faults(server_error={"count": 2, "status": 502})
    responses = [create(client) for _ in range(3)]
    assert [r.status_code for r in responses] == [502, 502, 200]
    assert "code" in responses[0].json()


def test_reset_closes_the_connection_without_an_answer(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    """`reset` drops the connection; nothing is executed, and the next request works."""
    sandbox.set_faults(reset={"count": 1})
    with pytest.raises(httpx.TransportError):
        create(client)
    assert sandbox.jobs() == []
    assert create(client).status_code == 200
    assert [r["status"] for r in sandbox.requests()] == [None, 200]
    assert sandbox.stats()["requests"]["by_status"] == {"reset": 1, "200": 1}


def test_slow_delays_the_answer(client: httpx.Client, sandbox: Sandbox) -> None:
    """`slow` delays `count` answers by delay_ms (a client timeout then fires), not the next."""
    sandbox.set_faults(slow={"count": 1, "delay_ms": 400})
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v2/users/batch/x", timeout=0.1)
    assert client.get("/v2/users/batch/x").status_code == 404
    # The slowed request is logged once its delay is over, perhaps after the next one.
    wait_for(lambda: len(sandbox.requests()) == 2)
    slowed, following = sorted(sandbox.requests(), key=lambda r: r["time_monotonic"])

    def held_s(record: dict[str, Any]) -> float:
        return float(record["answered_monotonic"] - record["time_monotonic"])

    # Measured by the sandbox, and against the delay itself: a slowed answer is held at
    # least delay_ms, however busy the machine (no bound on how fast the client sees it).
    assert held_s(slowed) >= 0.4
    assert held_s(following) < 0.4


def test_faults_can_be_scoped_to_an_endpoint(client: httpx.Client, sandbox: Sandbox) -> None:
    """With `endpoint: batch_status`, job creation is untouched and status polls fail."""
    sandbox.set_faults(server_error={"count": 2}, endpoint="batch_status")
    job_id = create(client).json()["job"]["id"]
    assert client.get(f"/v2/users/batch/{job_id}").status_code == 500
    assert client.get(f"/v2/users/batch/{job_id}").status_code == 500
    assert finished_status(client, job_id)["job"]["status"] == "COMPLETED"


def test_faults_set_over_http_and_reset_clears_everything(
    client: httpx.Client, admin: httpx.Client, sandbox: Sandbox
) -> None:
    """POST /_sandbox/faults arms faults; POST /_sandbox/reset clears users, jobs, keys, faults."""
    armed = admin.post("/_sandbox/faults", json={"rate_limit": {"count": 5}})
    assert armed.status_code == 200
    assert armed.json()["faults"]["rate_limit"][0]["count"] == 5
    assert create(client).status_code == 429
    admin.post("/_sandbox/faults", json={"rate_limit": {"count": 0}})
    job_id = client.post(
        "/v2/users/batch", json=batch({"uid": "a"}), headers={"Idempotency-Key": "k"}
    ).json()["job"]["id"]
    finished_status(client, job_id)
    admin.post("/_sandbox/faults", json={"server_error": {"count": 5}})

    assert admin.post("/_sandbox/reset").json() == {"reset": True}
    assert admin.get("/_sandbox/users").json() == {"users": {}}
    assert admin.get("/_sandbox/jobs").json() == {"jobs": []}
    assert admin.get("/_sandbox/requests").json() == {"requests": []}
    assert admin.get("/_sandbox/faults").json()["faults"]["server_error"] == []
    # The key is forgotten: the same key with another body is a fresh job.
    again = client.post(
        "/v2/users/batch", json=batch({"uid": "b"}), headers={"Idempotency-Key": "k"}
    )
    assert again.status_code == 200


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"bogus": 1}, id="unknown-key"),
        pytest.param({"server_error": {"count": 1, "status": 404}}, id="status-not-5xx"),
        pytest.param({"rate_limit": {"count": -1}}, id="negative-count"),
        pytest.param({"endpoint": "nowhere", "reset": {"count": 1}}, id="unknown-endpoint"),
        pytest.param({"reject_uids": "("}, id="bad-regex"),
    ],
)
def test_invalid_fault_specs_are_refused_whole(admin: httpx.Client, spec: object) -> None:
    """A bad spec is a 400 and changes nothing."""
    before = admin.get("/_sandbox/faults").json()
    response = admin.post("/_sandbox/faults", json=spec)
    assert response.status_code == 400
    assert admin.get("/_sandbox/faults").json() == before


def test_faults_given_at_construction_apply_from_the_first_request() -> None:
    """Faults passed to the constructor hit the first requests."""
    with (
        Sandbox(api_key=API_KEY, faults={"server_error": {"count": 1}}) as sb,
        make_client(sb) as client,
    ):
        assert create(client).status_code == 500
        assert create(client).status_code == 200
