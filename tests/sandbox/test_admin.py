"""The /_sandbox inspection endpoints, as the worker's tests read them over HTTP."""

from __future__ import annotations

import httpx

from fullstory_sandbox import Sandbox

from .helpers import batch, finished_status


def test_stats_count_requests_jobs_users_and_duplicates(
    client: httpx.Client, admin: httpx.Client, sandbox: Sandbox
) -> None:
    """/_sandbox/stats counts answers by status, jobs by state, users and re-imports."""
    sandbox.set_faults(server_error={"count": 1})
    client.post("/v2/users/batch", json=batch({"uid": "a"}))
    for users in (batch({"uid": "a"}, {"uid": "b"}), batch({"uid": "a"}, {"uid": ""})):
        job_id = client.post("/v2/users/batch", json=users).json()["job"]["id"]
        finished_status(client, job_id)

    stats = admin.get("/_sandbox/stats").json()
    assert stats["requests"]["by_status"]["500"] == 1
    assert stats["requests"]["total"] == sum(stats["requests"]["by_status"].values())
    assert (stats["jobs"]["completed"], stats["jobs"]["failed"]) == (1, 1)
    assert stats["users"] == 2
    assert stats["upserts"] == 3
    assert stats["duplicates"] == 1


def test_requests_log_records_each_v2_call(client: httpx.Client, admin: httpx.Client) -> None:
    """/_sandbox/requests lists every /v2 call with status, key, job id and times."""
    created = client.post(
        "/v2/users/batch", json=batch({"uid": "a"}), headers={"Idempotency-Key": "k-1"}
    )
    client.get("/v2/users/batch/" + created.json()["job"]["id"])
    admin.get("/_sandbox/stats")  # admin calls are not logged

    first, second = admin.get("/_sandbox/requests").json()["requests"]
    assert (first["method"], first["path"], first["endpoint"]) == (
        "POST",
        "/v2/users/batch",
        "batch_create",
    )
    assert (first["status"], first["idempotency_key"]) == (200, "k-1")
    assert first["job_id"] == created.json()["job"]["id"]
    assert second["endpoint"] == "batch_status"
    assert first["time_monotonic"] <= first["answered_monotonic"] <= second["time_monotonic"]
    assert first["seq"] < second["seq"]


def test_users_view_shows_values_and_types(client: httpx.Client, admin: httpx.Client) -> None:
    """/_sandbox/users shows each user's fields, property values and property types."""
    client.post("/v2/users", json={"uid": "a", "email": "a@example.com", "properties": {"n": 1}})
    assert admin.get("/_sandbox/users").json() == {
        "users": {
            "a": {
                "id": "1",
                "display_name": None,
                "email": "a@example.com",
                "properties": {"n": 1},
                "types": {"n": "real"},
            }
        }
    }


def test_unknown_paths_and_methods(client: httpx.Client, admin: httpx.Client) -> None:
    """Unknown paths are 404 and wrong methods 405, both as JSON errors."""
    assert client.get("/v2/nothing").status_code == 404
    assert client.put("/v2/users/batch", json={}).status_code == 405
    assert admin.get("/_sandbox/nothing").json()["code"] == "not_found"


def test_job_requests_show_what_each_batch_carried(
    client: httpx.Client, admin: httpx.Client, sandbox: Sandbox
) -> None:
    """/_sandbox/job_requests lists, per job id, the request objects exactly as posted
    (invalid users and schemas included, types kept), so a test can tell which job carried
    which change; a replayed POST adds no job."""
    first = batch(
        {"uid": "a", "properties": {"n": 1, "r": 2.0}, "schema": {"properties": {"n": "int"}}},
        {"uid": "", "display_name": "nobody"},
    )
    second = batch({"uid": "a", "email": "a@example.com"})
    ids = []
    for body, key in ((first, "k-1"), (second, "k-2"), (first, "k-1")):
        response = client.post("/v2/users/batch", json=body, headers={"Idempotency-Key": key})
        ids.append(response.json()["job"]["id"])
    assert ids[0] == ids[2]

    shown = admin.get("/_sandbox/job_requests").json()["job_requests"]
    assert shown == {ids[0]: first["requests"], ids[1]: second["requests"]}
    assert list(shown) == ids[:2]
    assert [type(v) for v in shown[ids[0]][0]["properties"].values()] == [int, float]
    assert sandbox.job_requests() == shown
    sandbox.job_requests()[ids[0]][0]["uid"] = "changed"  # a copy: the job is untouched
    assert sandbox.job_requests() == shown
