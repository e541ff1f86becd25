"""Helpers shared by the sandbox tests. Every wait is bounded."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fullstory_sandbox import Sandbox

API_KEY = "test-key"
# Building an SSL context costs ~50 ms per httpx client; the sandbox is plain HTTP, so
# every client shares one.
_TLS = ssl.create_default_context()


def make_client(sandbox: Sandbox, *, auth: bool = True) -> httpx.Client:
    """An httpx client for the sandbox, with the API key unless `auth` is False."""
    headers = sandbox.auth_headers() if auth else {}
    return httpx.Client(base_url=sandbox.url, headers=headers, timeout=10, verify=_TLS)


def batch(*users: dict[str, Any]) -> dict[str, Any]:
    return {"requests": list(users)}


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Polls `condition` every 20 ms; fails the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"condition not met within {timeout_s}s")


def job_status(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v2/users/batch/{job_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def finished_status(client: httpx.Client, job_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """Polls the job status through the API until it is no longer PROCESSING."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = job_status(client, job_id)
        if body["job"]["status"] != "PROCESSING":
            return body
        time.sleep(0.02)
    pytest.fail(f"job {job_id} still PROCESSING after {timeout_s}s")
