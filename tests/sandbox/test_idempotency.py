"""Idempotency-Key on `POST /v2/users/batch`: replay, key reuse, and which answers are saved."""

from __future__ import annotations

import json

import httpx

from fullstory_sandbox import Sandbox

from .helpers import API_KEY, batch, make_client

BODY = batch({"uid": "a", "display_name": "Ann"})


def post(client: httpx.Client, key: str, body: object = BODY) -> httpx.Response:
    return client.post("/v2/users/batch", json=body, headers={"Idempotency-Key": key})


def test_same_key_and_body_replays_the_first_answer(client: httpx.Client, sandbox: Sandbox) -> None:
    """A retry with the same key gets the same job id, and no second job is created."""
    first = post(client, "key-1")
    again = post(client, "key-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert len(sandbox.jobs()) == 1
    assert sandbox.jobs()[0]["idempotency_key"] == "key-1"
    assert [r["replayed"] for r in sandbox.requests()] == [False, True]


def test_body_comparison_ignores_json_formatting(client: httpx.Client, sandbox: Sandbox) -> None:
    """The same JSON with other key order and spacing counts as the same body."""
    post(client, "key-1", {"requests": [{"display_name": "Ann", "uid": "a"}]})
    content = json.dumps(BODY, indent=2).encode()
    again = client.post(
        "/v2/users/batch",
        content=content,
        headers={"Idempotency-Key": "key-1", "Content-Type": "application/json"},
    )
    assert again.status_code == 200
    assert len(sandbox.jobs()) == 1


def test_same_key_with_another_body_is_400(client: httpx.Client, sandbox: Sandbox) -> None:
    """Reusing a key for a different body is refused with 400 `idempotency_key_reused`."""
    post(client, "key-1")
    reused = post(client, "key-1", batch({"uid": "b"}))
    assert reused.status_code == 400
    assert reused.json()["code"] == "idempotency_key_reused"
    assert len(sandbox.jobs()) == 1
    # The refusal is not saved: the original body still replays.
    assert post(client, "key-1").status_code == 200


def test_different_keys_create_different_jobs(client: httpx.Client, sandbox: Sandbox) -> None:
    """Without a shared key the same body is two jobs (and two imports of the uid)."""
    assert post(client, "key-1").json() != post(client, "key-2").json()
    assert sandbox.wait_idle(5)
    assert len(sandbox.jobs()) == 2
    assert sandbox.stats()["duplicates"] == 1


def test_rate_limit_429_is_not_saved(client: httpx.Client, sandbox: Sandbox) -> None:
    """An injected 429 carries Retry-After and is not saved: the same key then succeeds."""
    sandbox.set_faults(rate_limit={"count": 1, "retry_after_s": 2})
    limited = post(client, "key-1")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert limited.json()["code"] == "rate_limited"

    accepted = post(client, "key-1")
    assert accepted.status_code == 200
    assert len(sandbox.jobs()) == 1
    log = sandbox.requests()
    assert [(r["status"], r["retry_after"], r["fault"]) for r in log] == [
        (429, 2, "rate_limit"),
        (200, None, None),
    ]
    assert log[0]["time_monotonic"] <= log[0]["answered_monotonic"] <= log[1]["time_monotonic"]


def test_injected_5xx_is_saved_and_replayed_under_its_key(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    """An injected 500 is replayed for its key even after the fault is gone; a new key works."""
    sandbox.set_faults(server_error={"count": 1, "status": 503})
    assert post(client, "key-1").status_code == 503
    replayed = post(client, "key-1")
    assert replayed.status_code == 503
    assert sandbox.jobs() == []
    assert sandbox.requests()[-1]["replayed"] is True

    fresh = post(client, "key-1-attempt-2")
    assert fresh.status_code == 200
    assert len(sandbox.jobs()) == 1


def test_5xx_not_saved_when_replay_errors_is_off() -> None:
    """With replay_errors off, a retry under the same key after a 5xx is processed anew."""
    with (
        Sandbox(api_key=API_KEY, replay_errors=False, job_delay_ms=50) as sb,
        make_client(sb) as client,
    ):
        sb.set_faults(server_error={"count": 1})
        assert post(client, "key-1").status_code == 500
        assert post(client, "key-1").status_code == 200
        assert len(sb.jobs()) == 1


def test_capacity_429_is_not_saved() -> None:
    """A 429 from the job limits is not saved: the key works once capacity frees."""
    with (
        Sandbox(api_key=API_KEY, job_delay_ms=100, max_in_progress_jobs=1) as sb,
        make_client(sb) as client,
    ):
        assert post(client, "key-1").status_code == 200
        limited = post(client, "key-2", batch({"uid": "b"}))
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert sb.wait_idle(5)
        assert post(client, "key-2", batch({"uid": "b"})).status_code == 200


def test_reset_after_processing_then_retry_gets_the_saved_job(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    """A job whose answer was lost is found again by retrying with the same key."""
    sandbox.set_faults(reset={"count": 1, "when": "after"})
    try:
        post(client, "key-1")
        raise AssertionError("the connection should have been reset")
    except httpx.TransportError:
        pass
    (job,) = sandbox.jobs()
    retry = post(client, "key-1")
    assert retry.json()["job"]["id"] == job["id"]
    assert len(sandbox.jobs()) == 1
