"""The sandbox's own admin API under `/_sandbox/` (no auth; callers hold the lock).

    GET  /_sandbox/health    {"ok": true}
    GET  /_sandbox/faults    {"faults": <pending faults and tunables>}
    POST /_sandbox/faults    body: a faults spec (see `faults`) -> {"faults": ...}; 400 if bad
    POST /_sandbox/reset     forget users, jobs, keys, faults, request log -> {"reset": true}
    GET  /_sandbox/users     {"users": {uid: {"id", "display_name", "email",
                                              "properties", "types"}}}
    GET  /_sandbox/jobs      {"jobs": [<job>, ...]} oldest first (see `Job.describe`)
    GET  /_sandbox/job_requests
                             {"job_requests": {job id: [<request object>, ...]}} oldest
                             job first: what each batch carried (see `Job.contents`)
    GET  /_sandbox/requests  {"requests": [<record>, ...]} oldest first (see `requestlog`)
    GET  /_sandbox/stats     {"requests": {"total", "by_status", "replays"},
                              "jobs": {"total", "processing", "queued", "running",
                                       "completed", "failed",
                                       "in_flight_requests", "max_running"},
                              "users", "upserts", "duplicates", "idempotency_keys",
                              "violations"}
    GET  /_sandbox/violations
                             {"violations": [{"uid", "at"}, ...]}: upserts of a uid whose
                             deletion was still running, oldest first (see `store`)
The view functions are shared with the Python `Sandbox` API, so both return the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fullstory_sandbox.faults import FaultSpecError
from fullstory_sandbox.messages import ApiError, ApiRequest, JsonObject, Response, parse_json
from fullstory_sandbox.routing import Route
from fullstory_sandbox.state import SandboxState


def handle(state: SandboxState, request: ApiRequest, route: Route) -> Response:
    try:
        return Response(200, _dispatch(state, request, route.endpoint))
    except ApiError as exc:
        return exc.response()


def _dispatch(state: SandboxState, request: ApiRequest, endpoint: str) -> JsonObject:
    if endpoint == "faults_set":
        spec = parse_json(request.body) if request.body.strip() else {}
        return set_faults(state, spec)
    if endpoint == "reset":
        state.reset()
        return {"reset": True}
    views: dict[str, Callable[[], JsonObject]] = {
        "health": lambda: {"ok": True},
        "faults_get": lambda: {"faults": faults_view(state)},
        "users": lambda: {"users": users_view(state)},
        "jobs": lambda: {"jobs": jobs_view(state)},
        "job_requests": lambda: {"job_requests": job_requests_view(state)},
        "requests": lambda: {"requests": requests_view(state)},
        "stats": lambda: stats_view(state),
        "violations": lambda: {"violations": violations_view(state)},
    }
    return views[endpoint]()


def set_faults(state: SandboxState, spec: object) -> JsonObject:
    """Applies a faults spec; raises `ApiError` 400 when it is invalid (nothing applied)."""
    with state.lock:
        try:
            state.faults.configure(spec)
        except FaultSpecError as exc:
            raise ApiError(400, "invalid_argument", str(exc)) from exc
        return {"faults": faults_view(state)}


def faults_view(state: SandboxState) -> JsonObject:
    with state.lock:
        return state.faults.snapshot()


def users_view(state: SandboxState) -> dict[str, JsonObject]:
    with state.lock:
        return state.store.snapshot()


def jobs_view(state: SandboxState) -> list[JsonObject]:
    with state.lock:
        return [job.describe() for job in state.book.all()]


def job_requests_view(state: SandboxState) -> dict[str, list[Any]]:
    with state.lock:
        return {job.id: job.contents() for job in state.book.all()}


def requests_view(state: SandboxState) -> list[JsonObject]:
    with state.lock:
        return state.log.entries()


def stats_view(state: SandboxState) -> JsonObject:
    with state.lock:
        return {
            "requests": state.log.counts(),
            "jobs": state.book.counts(),
            "users": len(state.store),
            "upserts": state.store.upserts,
            "duplicates": state.store.duplicates,
            "idempotency_keys": len(state.keys),
            "violations": len(state.store.violations),
        }


def violations_view(state: SandboxState) -> list[JsonObject]:
    with state.lock:
        return [violation.to_json() for violation in state.store.violations]
