"""`POST /v2/users` (single upsert, immediate), `GET /v2/users?uid=` and
`DELETE /v2/users?uid=` (answered at once, the deletion runs in the background)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from fullstory_sandbox import Sandbox
from worker.config.redact import Secret
from worker.errors import AuthFailed
from worker.fullstory.client import FullStoryClient, UserPresence

from .helpers import API_KEY, batch, finished_status, make_client


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


class _Clock:
    """The sandbox's time, moved by the test: a deletion ends when the test says."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def monotonic(self) -> float:
        return self.now_s

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_s, UTC)


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def deleting(clock: _Clock) -> Iterator[tuple[Sandbox, httpx.Client]]:
    """A sandbox whose deletions take 1 s of ``clock``, and an Admin-role client."""
    with Sandbox(api_key=API_KEY, user_delete_ms=1000, clock=clock) as sb, make_client(sb) as c:
        yield sb, c


def test_delete_answers_at_once_and_the_user_goes_in_the_background(deleting, clock) -> None:
    """As FullStory: DELETE is 200 {} at once; until the background deletion ends a look-up
    shows the user with is_being_deleted, then 404 resource_not_found; no uid is 400."""
    sandbox, client = deleting
    client.post("/v2/users", json={"uid": "a", "display_name": "A", "properties": {"n": 1}})
    looked_up = client.get("/v2/users", params={"uid": "a"})
    assert looked_up.status_code == 200
    (user,) = looked_up.json()["results"]
    assert (user["uid"], user["display_name"], user["properties"]) == ("a", "A", {"n": 1})
    assert user["is_being_deleted"] is False

    deleted = client.delete("/v2/users", params={"uid": "a"})
    assert (deleted.status_code, deleted.json()) == (200, {})
    (user,) = client.get("/v2/users", params={"uid": "a"}).json()["results"]
    assert user["is_being_deleted"] is True
    assert "a" in sandbox.users()

    clock.now_s += 1.0
    gone = client.get("/v2/users", params={"uid": "a"})
    assert (gone.status_code, gone.json()["code"]) == (404, "resource_not_found")
    assert sandbox.users() == {}
    assert client.delete("/v2/users", params={"uid": "a"}).status_code == 404
    assert client.delete("/v2/users").status_code == 400
    assert client.get("/v2/users").status_code == 400


def test_an_upsert_while_the_deletion_runs_is_a_violation_and_is_deleted_anyway(
    deleting, clock
) -> None:
    """What an upsert does during a deletion is undocumented; the sandbox takes the worst
    case (the deletion removes it too) and records it, so a test can show a worker never
    sends a uid again before the 404."""
    sandbox, client = deleting
    client.post("/v2/users", json={"uid": "a"})
    client.post("/v2/users", json={"uid": "b"})
    client.delete("/v2/users", params={"uid": "a"})
    clock.now_s += 0.5
    assert client.post("/v2/users", json={"uid": "a", "email": "a@x.io"}).status_code == 200
    client.post("/v2/users", json={"uid": "b", "email": "b@x.io"})  # not being deleted
    assert sandbox.violations() == [{"uid": "a", "at": 100.5}]
    assert sandbox.stats()["violations"] == 1

    clock.now_s += 0.5
    assert client.get("/v2/users", params={"uid": "a"}).status_code == 404
    assert set(sandbox.users()) == {"b"}
    client.post("/v2/users", json={"uid": "a"})  # after the 404: a new user, in order
    assert len(sandbox.violations()) == 1


def test_a_key_without_the_admin_role_may_import_but_not_look_up_or_delete() -> None:
    """A Standard key (``--standard-key``) gets 403 on GET and DELETE /v2/users, never a
    404: a look-up of a uid that does not exist tells a deleting key from one without the
    role, without touching any user."""
    with Sandbox(api_key=API_KEY, api_key_admin=False) as sandbox, make_client(sandbox) as c:
        assert c.post("/v2/users", json={"uid": "a"}).status_code == 200
        for answer in (
            c.get("/v2/users", params={"uid": "nobody"}),
            c.delete("/v2/users", params={"uid": "a"}),
        ):
            assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")
        assert "a" in sandbox.users()
    with Sandbox(api_key=API_KEY) as sandbox, make_client(sandbox) as c:
        assert c.get("/v2/users", params={"uid": "nobody"}).status_code == 404


def test_the_workers_client_reads_the_sandboxs_look_up_and_delete_as_fullstorys(
    deleting, clock
) -> None:
    """The worker's FullStory client against the sandbox: present, deleted (200), being
    deleted, absent, and a second delete of the gone user is a 404 (False), not an error."""
    sandbox, client = deleting
    client.post("/v2/users", json={"uid": "a"})
    worker_client = FullStoryClient(sandbox.url, Secret(API_KEY))
    try:
        assert worker_client.user_presence("a") is UserPresence.PRESENT
        assert worker_client.delete_user("a") is True
        assert worker_client.user_presence("a") is UserPresence.BEING_DELETED
        clock.now_s += 1.0
        assert worker_client.user_presence("a") is UserPresence.ABSENT
        assert worker_client.delete_user("a") is False
    finally:
        worker_client.close()
    with Sandbox(api_key=API_KEY, api_key_admin=False) as standard:
        worker_client = FullStoryClient(standard.url, Secret(API_KEY))
        try:
            with pytest.raises(AuthFailed):
                worker_client.user_presence("nobody")
        finally:
            worker_client.close()
