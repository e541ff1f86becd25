"""`Sandbox`: the FullStory API sandbox as an object tests start and stop.

    with Sandbox(api_key="test-key", job_delay_ms=200) as sb:   # 127.0.0.1, random port
        httpx.post(f"{sb.url}/v2/users/batch", headers=sb.auth_headers(), json=...)
        sb.wait_idle(); sb.users(); sb.jobs(); sb.job_requests(); sb.requests(); sb.stats()
        sb.set_faults(server_error={"count": 3}); sb.reset()

The admin methods read the live state directly and return exactly what the matching
`/_sandbox/` endpoint returns inside its envelope (`users()` is the `"users"` object,
`jobs()` the `"jobs"` list, `job_requests()` the `"job_requests"` object, ...). `start`
returns once the socket is listening; `stop` closes the listener and the job thread
(in-progress jobs are dropped, never applied).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from fullstory_sandbox import admin
from fullstory_sandbox.clock import Clock
from fullstory_sandbox.handler import SandboxHTTPServer
from fullstory_sandbox.messages import ApiError, JsonObject
from fullstory_sandbox.scheduler import CompletionThread
from fullstory_sandbox.settings import Settings
from fullstory_sandbox.state import SandboxState


class Sandbox:
    """A FullStory v2 API sandbox serving on loopback from a background thread."""

    def __init__(
        self,
        api_key: str = "sandbox-key",
        *,
        api_key_admin: bool = True,
        user_delete_ms: int = 1000,
        host: str = "127.0.0.1",
        port: int = 0,
        job_delay_ms: int = 300,
        job_jitter_ms: int = 0,
        page_size: int = 100,
        replay_errors: bool = True,
        max_batch_requests: int = 50_000,
        max_running_jobs: int = 100,
        max_in_progress_jobs: int = 200,
        max_in_flight_requests: int = 500_000,
        idempotency_ttl_s: float = 24 * 3600.0,
        request_log_limit: int = 100_000,
        seed: int | None = None,
        faults: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Builds the sandbox (not yet listening). `faults` is an initial faults spec, as
        posted to `/_sandbox/faults`. Raises `SettingsError` (e.g. a non-loopback host) or
        `ValueError` for an invalid faults spec."""
        settings = Settings(
            api_key=api_key,
            api_key_admin=api_key_admin,
            user_delete_ms=user_delete_ms,
            host=host,
            port=port,
            job_delay_ms=job_delay_ms,
            job_jitter_ms=job_jitter_ms,
            page_size=page_size,
            replay_errors=replay_errors,
            max_batch_requests=max_batch_requests,
            max_running_jobs=max_running_jobs,
            max_in_progress_jobs=max_in_progress_jobs,
            max_in_flight_requests=max_in_flight_requests,
            idempotency_ttl_s=idempotency_ttl_s,
            request_log_limit=request_log_limit,
            seed=seed,
        )
        self._init(settings, faults, clock)

    @classmethod
    def from_settings(
        cls, settings: Settings, faults: Mapping[str, Any] | None = None, clock: Clock | None = None
    ) -> Sandbox:
        sandbox = cls.__new__(cls)
        sandbox._init(settings, faults, clock)
        return sandbox

    def _init(
        self, settings: Settings, faults: Mapping[str, Any] | None, clock: Clock | None
    ) -> None:
        self.settings = settings
        self.state = SandboxState.create(settings, clock)
        if faults:
            self.set_faults(faults)
        self._server: SandboxHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._jobs_thread: CompletionThread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Binds and starts serving; returns self. Starting twice is an error."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._server = SandboxHTTPServer((self.settings.bind_host, self.settings.port), self.state)
        self._jobs_thread = CompletionThread(self.state)
        self._jobs_thread.start()
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="sandbox-http",
            daemon=True,
        )
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and the job thread; idempotent."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._jobs_thread is not None:
            self._jobs_thread.stop()
        if self._serve_thread is not None:
            self._serve_thread.join(5.0)
        self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self.settings.bind_host

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.settings.api_key

    def auth_headers(self) -> dict[str, str]:
        """`{"Authorization": "Basic <key>"}` for the configured key."""
        return {"Authorization": f"Basic {self.settings.api_key}"}

    # -- admin (same data as /_sandbox/...) -------------------------------------------

    def users(self) -> dict[str, JsonObject]:
        return admin.users_view(self.state)

    def jobs(self) -> list[JsonObject]:
        return admin.jobs_view(self.state)

    def job_requests(self) -> dict[str, list[Any]]:
        """Each job's request objects as the batch carried them, by job id, oldest first."""
        return admin.job_requests_view(self.state)

    def requests(self) -> list[JsonObject]:
        return admin.requests_view(self.state)

    def stats(self) -> JsonObject:
        return admin.stats_view(self.state)

    def violations(self) -> list[JsonObject]:
        """Upserts of a uid whose deletion was still running (``/_sandbox/violations``)."""
        return admin.violations_view(self.state)

    def faults(self) -> JsonObject:
        return admin.faults_view(self.state)

    def set_faults(self, spec: Mapping[str, Any] | None = None, **fields: Any) -> JsonObject:
        """Applies a faults spec (a mapping and/or keywords); returns the current faults.
        Raises `ValueError` when the spec is invalid (nothing is applied then)."""
        try:
            current: JsonObject = admin.set_faults(self.state, {**(spec or {}), **fields})["faults"]
        except ApiError as exc:
            raise ValueError(exc.message) from exc
        return current

    def reset(self) -> None:
        """Forgets users, jobs, keys, faults and the request log."""
        self.state.reset()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Waits until no job is queued or running; False if `timeout_s` passed first."""
        deadline = time.monotonic() + timeout_s
        with self.state.lock:
            while self.state.book.in_progress:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.state.wakeup.wait(min(remaining, 0.05))
        return True
