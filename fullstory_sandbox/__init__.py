"""A FullStory server API (v2 users) sandbox: a real HTTP server on loopback.

It follows the published API (batch user import jobs, per-user errors, limits,
Idempotency-Key replay, single upserts, look-ups and background deletion with the Admin
role they need) and adds an admin API under `/_sandbox/` for injecting faults and
inspecting users, jobs, requests and upserts that raced a deletion. Standard library only.

    from fullstory_sandbox import Sandbox
    with Sandbox(api_key="test-key", job_delay_ms=200) as sb:
        sb.url, sb.users(), sb.jobs(), sb.requests(), sb.stats()

Module map (request path order): `handler` (HTTP) -> `pipeline` (auth, faults,
idempotency) -> `routing` -> `endpoints` (v2) / `admin` (/_sandbox) -> `validation`
(+ `proptypes`) -> `jobs` (book, limits) -> `scheduler` (completion) -> `store` (upsert, delete).
Shared state and its single lock: `state`. Start-up config: `settings`.
"""

from fullstory_sandbox.server import Sandbox
from fullstory_sandbox.settings import Settings, SettingsError

__all__ = ["Sandbox", "Settings", "SettingsError"]
