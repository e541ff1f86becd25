"""Authentication: `Authorization: Basic <key>` on every /v2 call, none on /_sandbox."""

from __future__ import annotations

import httpx
import pytest

from fullstory_sandbox import Sandbox

from .helpers import API_KEY, batch, make_client


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Basic wrong-key"}, id="wrong-key"),
        pytest.param({"Authorization": f"Bearer {API_KEY}"}, id="wrong-scheme"),
        pytest.param({"Authorization": "Basic"}, id="empty-key"),
    ],
)
def test_bad_credentials_get_401_and_create_nothing(
    sandbox: Sandbox, headers: dict[str, str]
) -> None:
    """A request without the configured key is refused with 401 `unauthorized`, no job made."""
    with make_client(sandbox, auth=False) as client:
        response = client.post("/v2/users/batch", json=batch({"uid": "a"}), headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert "message" in response.json()
    assert sandbox.jobs() == []


def test_configured_key_is_accepted(client: httpx.Client) -> None:
    """The configured key in `Authorization: Basic <key>` is accepted."""
    response = client.post("/v2/users/batch", json=batch({"uid": "a"}))
    assert response.status_code == 200


def test_status_endpoints_require_auth_too(admin: httpx.Client) -> None:
    """Reads are authenticated as well: an unknown job without a key is 401, not 404."""
    response = admin.get("/v2/users/batch/nope")
    assert response.status_code == 401


def test_admin_api_needs_no_auth(admin: httpx.Client) -> None:
    """The /_sandbox admin API answers without credentials."""
    assert admin.get("/_sandbox/health").json() == {"ok": True}


def test_refuses_non_loopback_host() -> None:
    """The sandbox never binds beyond loopback."""
    with pytest.raises(ValueError, match="loopback"):
        Sandbox(api_key=API_KEY, host="0.0.0.0")
