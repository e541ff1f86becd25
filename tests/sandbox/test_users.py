"""`POST /v2/users` (single upsert, immediate) and `DELETE /v2/users?uid=`."""

from __future__ import annotations

import httpx

from fullstory_sandbox import Sandbox

from .helpers import batch, finished_status


def test_single_upsert_applies_at_once_and_returns_the_id(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    """`POST /v2/users` stores the user immediately and answers its FullStory id."""
    response = client.post("/v2/users", json={"uid": "a", "properties": {"plan": "free"}})
    assert response.status_code == 200
    assert sandbox.users()["a"]["id"] == response.json()["id"]
    assert sandbox.users()["a"]["properties"] == {"plan": "free"}


def test_single_upsert_merges_with_a_batch_import(client: httpx.Client, sandbox: Sandbox) -> None:
    """Single and batch upserts act on the same user (same id, merged properties)."""
    user_id = client.post("/v2/users", json={"uid": "a", "properties": {"plan": "free"}})
    job_id = client.post("/v2/users/batch", json=batch({"uid": "a", "properties": {"seats": 2}}))
    finished_status(client, job_id.json()["job"]["id"])
    stored = sandbox.users()["a"]
    assert stored["id"] == user_id.json()["id"]
    assert stored["properties"] == {"plan": "free", "seats": 2}


def test_invalid_single_user_is_400_with_the_rule_code(client: httpx.Client) -> None:
    """A single upsert breaking a rule is a 400 carrying the per-user error code."""
    response = client.post("/v2/users", json={"uid": "a", "email": "e" * 129})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_email"


def test_delete_removes_the_user(client: httpx.Client, sandbox: Sandbox) -> None:
    """DELETE removes the user (200); deleting again is 404; no uid is 400."""
    client.post("/v2/users", json={"uid": "a"})
    assert client.delete("/v2/users", params={"uid": "a"}).status_code == 200
    assert sandbox.users() == {}
    assert client.delete("/v2/users", params={"uid": "a"}).status_code == 404
    assert client.delete("/v2/users").status_code == 400
