"""`POST /v2/users/batch` request-level checks: the 50,000 limit and malformed bodies."""

from __future__ import annotations

import httpx
import pytest

from fullstory_sandbox import Sandbox


def test_50000_requests_are_accepted(client: httpx.Client) -> None:
    """A batch of exactly 50,000 request objects becomes one PROCESSING job."""
    body = {"requests": [{"uid": f"u{i}"} for i in range(50_000)]}
    response = client.post("/v2/users/batch", json=body)
    assert response.status_code == 200
    job = response.json()["job"]
    assert job["status"] == "PROCESSING"
    assert set(job) == {"id", "status", "created"}


def test_50001_requests_are_refused(client: httpx.Client, sandbox: Sandbox) -> None:
    """One object over the limit is a 400 for the whole request, and no job is created."""
    body = {"requests": [{"uid": f"u{i}"} for i in range(50_001)]}
    response = client.post("/v2/users/batch", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"
    assert sandbox.jobs() == []


@pytest.mark.parametrize(
    ("content", "code"),
    [
        pytest.param(b"{not json", "invalid_json", id="malformed-json"),
        pytest.param(b"", "invalid_json", id="empty-body"),
        pytest.param(b"[]", "invalid_argument", id="not-an-object"),
        pytest.param(b"{}", "invalid_argument", id="missing-requests"),
        pytest.param(b'{"requests": []}', "invalid_argument", id="empty-requests"),
        pytest.param(b'{"requests": {"uid": "a"}}', "invalid_argument", id="requests-not-array"),
        pytest.param(b'{"requests": [{"uid": NaN}]}', "invalid_json", id="nan-literal"),
    ],
)
def test_malformed_bodies_get_400(
    client: httpx.Client, sandbox: Sandbox, content: bytes, code: str
) -> None:
    """Bodies that are not `{"requests": [...non-empty...]}` are refused with a JSON 400."""
    response = client.post(
        "/v2/users/batch", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert sandbox.jobs() == []


def test_unknown_job_is_404(client: httpx.Client) -> None:
    """Status, errors and imports of an unknown job id are 404 `not_found`."""
    for suffix in ("", "/errors", "/imports"):
        response = client.get(f"/v2/users/batch/no-such-job{suffix}")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_job_ids_are_unique(client: httpx.Client) -> None:
    """Every accepted batch gets its own job id."""
    ids = {
        client.post("/v2/users/batch", json={"requests": [{"uid": "a"}]}).json()["job"]["id"]
        for _ in range(20)
    }
    assert len(ids) == 20
