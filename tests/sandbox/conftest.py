"""Fixtures: a running sandbox per test, an authenticated client and an admin client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fullstory_sandbox import Sandbox

from .helpers import API_KEY, make_client


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(api_key=API_KEY, job_delay_ms=100, seed=7) as sb:
        yield sb


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with make_client(sandbox) as c:
        yield c


@pytest.fixture
def admin(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A client without credentials, for the /_sandbox admin API."""
    with make_client(sandbox, auth=False) as c:
        yield c
