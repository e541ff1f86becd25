"""The sandbox's start-up settings: one frozen object, checked once.

Defaults follow FullStory's published limits. `host` must be a loopback address: the
sandbox accepts any client that knows the key, so it never listens beyond this machine.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


class SettingsError(ValueError):
    """Invalid settings; the message names every offending field."""


@dataclass(frozen=True)
class Settings:
    """Start-up configuration. Job timing, page size and `replay_errors` are defaults that
    `POST /_sandbox/faults` may change at run time and `POST /_sandbox/reset` restores."""

    api_key: str = "sandbox-key"
    # FullStory's roles: only an Admin or Architect key may look users up or delete them; a
    # Standard key creates, updates and batch-imports only (403 on the others).
    api_key_admin: bool = True
    # How long a deletion runs in the background (GET shows `is_being_deleted` meanwhile).
    user_delete_ms: int = 1000
    host: str = "127.0.0.1"
    port: int = 0
    job_delay_ms: int = 300
    job_jitter_ms: int = 0
    page_size: int = 100
    replay_errors: bool = True
    max_batch_requests: int = 50_000
    max_running_jobs: int = 100
    max_in_progress_jobs: int = 200
    max_in_flight_requests: int = 500_000
    idempotency_ttl_s: float = 24 * 3600.0
    request_log_limit: int = 100_000
    seed: int | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.api_key:
            problems.append("api_key must not be empty")
        if not is_loopback(self.host):
            problems.append(f"host {self.host!r} is not a loopback address (use 127.0.0.1)")
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is outside 0..65535")
        for name in ("job_delay_ms", "job_jitter_ms", "user_delete_ms"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        for name in (
            "page_size",
            "max_batch_requests",
            "max_running_jobs",
            "max_in_progress_jobs",
            "max_in_flight_requests",
            "request_log_limit",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.idempotency_ttl_s <= 0:
            problems.append("idempotency_ttl_s must be > 0")
        if problems:
            raise SettingsError("invalid sandbox settings: " + "; ".join(problems))

    @property
    def bind_host(self) -> str:
        """The IPv4 address actually bound (`localhost` binds 127.0.0.1)."""
        return "127.0.0.1" if self.host == "localhost" else self.host


def is_loopback(host: str) -> bool:
    """True for `localhost` and IPv4 loopback addresses (127.0.0.0/8)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_loopback
