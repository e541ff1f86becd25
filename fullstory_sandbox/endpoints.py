"""The FullStory v2 endpoints the sandbox serves (callers hold the sandbox lock).

Each takes the state, the request and the route's path parameters and returns a
`Response`, or raises `ApiError`. Auth, faults, idempotency and logging are the
pipeline's business; these functions only do what FullStory's endpoints do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fullstory_sandbox.jobs import CapacityExceeded, Job
from fullstory_sandbox.messages import (
    ApiError,
    ApiRequest,
    JsonObject,
    Response,
    parse_json,
    retry_after,
)
from fullstory_sandbox.paging import page
from fullstory_sandbox.state import SandboxState
from fullstory_sandbox.validation import UserError, ValidUser, validate_user

Endpoint = Callable[[SandboxState, ApiRequest, Mapping[str, str]], Response]


def batch_create(state: SandboxState, request: ApiRequest, params: Mapping[str, str]) -> Response:
    """`POST /v2/users/batch`: queues a job, `200 {"job": {"id", "status", "created"}}`.

    400 for a malformed body or a `requests` array that is missing, empty or longer than
    the batch limit; 429 with Retry-After while the org is at a job limit. Per-user
    problems never fail the request: they end up under the job's errors.
    """
    body = parse_json(request.body)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_argument", "request body must be a JSON object")
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise ApiError(400, "invalid_argument", "requests must be a non-empty array")
    limit = state.settings.max_batch_requests
    if len(requests) > limit:
        raise ApiError(
            400, "invalid_argument", f"a batch holds at most {limit} requests, got {len(requests)}"
        )
    now_mono, now_wall = state.clock.monotonic(), state.clock.now()
    try:
        state.book.check_capacity(len(requests), now_mono)
    except CapacityExceeded as exc:
        raise ApiError(429, "rate_limited", exc.reason, retry_after(exc.retry_after_s)) from exc
    valid: list[ValidUser] = []
    errors: list[JsonObject] = []
    for item in requests:
        outcome = validate_user(item, state.faults.reject_uids)
        if isinstance(outcome, UserError):
            errors.append({"code": outcome.code, "message": outcome.message, "user": item})
        else:
            valid.append(outcome)
    key = request.header("idempotency-key") or None
    job = state.book.submit(requests, valid, errors, key, now_mono, now_wall)
    state.wakeup.notify_all()
    return Response(200, {"job": job.metadata()})


def batch_status(state: SandboxState, request: ApiRequest, params: Mapping[str, str]) -> Response:
    """`GET /v2/users/batch/{id}`: `{"imports", "errors" (FAILED only), "job"}`."""
    job = _job(state, params)
    body: JsonObject = {"imports": 0 if job.in_progress else len(job.imports)}
    if job.api_status == "FAILED":
        body["errors"] = len(job.errors)
    body["job"] = job.metadata()
    return Response(200, body)


def batch_errors(state: SandboxState, request: ApiRequest, params: Mapping[str, str]) -> Response:
    """`GET /v2/users/batch/{id}/errors`: failed users, paged; empty while processing."""
    job = _job(state, params)
    errors = [] if job.in_progress else job.errors
    results, paging = page(errors, request.query.get("page_token"), state.faults.tunables.page_size)
    return Response(200, {"results": list(results), **paging})


def batch_imports(state: SandboxState, request: ApiRequest, params: Mapping[str, str]) -> Response:
    """`GET /v2/users/batch/{id}/imports`: imported users `{"id", "uid", ...}`, paged;
    with `include_schema=true` each carries `"schema": {"properties": {path: type}}`."""
    job = _job(state, params)
    indexes = [] if job.in_progress else range(len(job.imports))
    chosen, paging = page(indexes, request.query.get("page_token"), state.faults.tunables.page_size)
    with_schema = request.query.get("include_schema", "").lower() in ("true", "1")
    results = [_import(job, index, with_schema) for index in chosen]
    return Response(200, {"results": results, **paging})


def user_upsert(state: SandboxState, request: ApiRequest, params: Mapping[str, str]) -> Response:
    """`POST /v2/users`: upserts one user at once, `200 {"id"}`; 400 when it is invalid."""
    outcome = validate_user(parse_json(request.body), state.faults.reject_uids)
    if isinstance(outcome, UserError):
        raise ApiError(400, outcome.code, outcome.message)
    return Response(200, {"id": state.store.upsert(outcome).id})


def user_get(state: SandboxState, request: ApiRequest, params: Mapping[str, str]) -> Response:
    """`GET /v2/users?uid=`: `200 {"results": [user]}`, the user with `is_being_deleted` while
    its deletion runs; 404 `resource_not_found` for an unknown (or deleted) uid; 403 for a key
    without the Admin or Architect role; 400 without uid."""
    uid = _uid_of(state, request)
    stored = state.store.get(uid)
    if stored is None:
        raise ApiError(404, "resource_not_found", "no user with this uid")
    user: JsonObject = {
        "id": stored.id,
        "uid": stored.uid,
        "display_name": stored.display_name,
        "email": stored.email,
        "properties": stored.to_json()["properties"],
        "is_being_deleted": state.store.is_being_deleted(uid),
    }
    return Response(200, {"results": [user]})


def user_delete(state: SandboxState, request: ApiRequest, params: Mapping[str, str]) -> Response:
    """`DELETE /v2/users?uid=`: `200 {}` at once, the deletion runs in the background
    (`Settings.user_delete_ms`); 404 `resource_not_found` for an unknown uid; 403 for a key
    without the Admin or Architect role; 400 without uid."""
    uid = _uid_of(state, request)
    if not state.store.delete(uid):
        raise ApiError(404, "resource_not_found", "no user with this uid")
    return Response(200, {})


def _uid_of(state: SandboxState, request: ApiRequest) -> str:
    """The `uid` a look-up or a deletion names, once the key may do either."""
    if not state.settings.api_key_admin:
        raise ApiError(
            403, "forbidden", "viewing and deleting users needs an Admin or Architect API key"
        )
    uid = request.query.get("uid")
    if not uid:
        raise ApiError(400, "invalid_argument", "the uid query parameter is required")
    return uid


V2_ENDPOINTS: dict[str, Endpoint] = {
    "batch_create": batch_create,
    "batch_status": batch_status,
    "batch_errors": batch_errors,
    "batch_imports": batch_imports,
    "user_upsert": user_upsert,
    "user_get": user_get,
    "user_delete": user_delete,
}


def _job(state: SandboxState, params: Mapping[str, str]) -> Job:
    job = state.book.get(params["job_id"])
    if job is None:
        raise ApiError(404, "not_found", "no batch import job with this id")
    return job


def _import(job: Job, index: int, with_schema: bool) -> JsonObject:
    result: dict[str, Any] = dict(job.imports[index])
    if with_schema:
        result["schema"] = {"properties": dict(job.valid[index].types)}
    return result
