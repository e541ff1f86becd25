"""Maps a method and path to an endpoint name (pure).

Endpoint names are the ones faults scope to (`batch_create`, ...) and the admin ones.
Unknown paths are 404 `not_found`; a known path with another method is 405
`method_not_allowed`. A trailing slash is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fullstory_sandbox.messages import ApiError

_JOB = r"(?P<job_id>[^/]+)"
_TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("v2", "POST", r"/v2/users/batch", "batch_create"),
    ("v2", "GET", rf"/v2/users/batch/{_JOB}", "batch_status"),
    ("v2", "GET", rf"/v2/users/batch/{_JOB}/errors", "batch_errors"),
    ("v2", "GET", rf"/v2/users/batch/{_JOB}/imports", "batch_imports"),
    ("v2", "POST", r"/v2/users", "user_upsert"),
    ("v2", "GET", r"/v2/users", "user_get"),
    ("v2", "DELETE", r"/v2/users", "user_delete"),
    ("admin", "GET", r"/_sandbox/health", "health"),
    ("admin", "GET", r"/_sandbox/faults", "faults_get"),
    ("admin", "POST", r"/_sandbox/faults", "faults_set"),
    ("admin", "POST", r"/_sandbox/reset", "reset"),
    ("admin", "GET", r"/_sandbox/users", "users"),
    ("admin", "GET", r"/_sandbox/jobs", "jobs"),
    ("admin", "GET", r"/_sandbox/job_requests", "job_requests"),
    ("admin", "GET", r"/_sandbox/requests", "requests"),
    ("admin", "GET", r"/_sandbox/stats", "stats"),
    ("admin", "GET", r"/_sandbox/violations", "violations"),
)
_COMPILED = tuple(
    (area, method, re.compile(pattern), name) for area, method, pattern, name in _TABLE
)


@dataclass(frozen=True)
class Route:
    area: str  # "v2" or "admin"
    endpoint: str
    params: dict[str, str]


def is_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def resolve(method: str, path: str) -> Route:
    """The route for a request; raises `ApiError` 404 or 405."""
    if len(path) > 1:
        path = path.rstrip("/")
    path_matched = False
    for area, route_method, pattern, name in _COMPILED:
        found = pattern.fullmatch(path)
        if found is None:
            continue
        path_matched = True
        if route_method == method:
            return Route(area, name, dict(found.groupdict()))
    if path_matched:
        raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}")
    raise ApiError(404, "not_found", f"no such endpoint: {path}")
