"""What happens to one request, in order (the whole decision runs under the sandbox lock).

/v2 requests:
 1. route (404 / 405)                     -> answered, not saved
 2. `Authorization: Basic <key>` check    -> 401 `unauthorized`
 3. injected `rate_limit`                 -> 429 + Retry-After, never saved: the limiter
                                             answers before idempotency
 4. injected `reset` (when=before)        -> connection closed, nothing executed
 5. Idempotency-Key (POST endpoints): a saved answer for the key is replayed; the same key
    with another body is 400 `idempotency_key_reused`
 6. injected `server_error`, else the endpoint itself (a capacity 429 comes from here)
 7. the answer is saved under the key unless it is a 429, or a 5xx with replay_errors off
 8. injected `reset` (when=after)         -> the work is done, the answer is lost
 9. injected `slow` delays whatever is sent
/_sandbox requests go straight to the admin API: no auth, no faults, no log.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fullstory_sandbox import admin
from fullstory_sandbox.endpoints import V2_ENDPOINTS
from fullstory_sandbox.faults import CountedFault
from fullstory_sandbox.idempotency import fingerprint, should_save
from fullstory_sandbox.messages import ApiError, ApiRequest, Response, error_response, retry_after
from fullstory_sandbox.requestlog import RequestRecord
from fullstory_sandbox.routing import Route, is_v2, resolve
from fullstory_sandbox.state import SandboxState

IDEMPOTENT_ENDPOINTS = frozenset({"batch_create", "user_upsert"})


@dataclass
class Outcome:
    """Send `response` after `delay_s` seconds, or reset the connection when it is None.
    `record` (for /v2 requests) is logged by the handler just before sending."""

    response: Response | None
    delay_s: float = 0.0
    record: RequestRecord | None = None


def handle(state: SandboxState, request: ApiRequest) -> Outcome:
    """Decides the outcome of one request. Never raises for bad input."""
    with state.lock:
        if not is_v2(request.path):
            try:
                route = resolve(request.method, request.path)
            except ApiError as exc:
                return Outcome(exc.response())
            return Outcome(admin.handle(state, request, route))
        return _handle_v2(state, request)


def _handle_v2(state: SandboxState, request: ApiRequest) -> Outcome:
    record = RequestRecord(
        method=request.method,
        path=request.target,
        endpoint="unknown",
        received_mono=request.received_mono,
        received_wall=request.received_wall,
        idempotency_key=request.header("idempotency-key") or None,
    )
    try:
        route = resolve(request.method, request.path)
    except ApiError as exc:
        return _answer(record, exc.response())
    record.endpoint = route.endpoint
    if not _authorized(state, request):
        return _answer(record, error_response(401, "unauthorized", "missing or invalid API key"))
    injection = state.faults.take(route.endpoint)
    fault = injection.answer
    if fault is not None and fault.kind == "rate_limit":
        record.fault = "rate_limit"
        response = error_response(
            429,
            "rate_limited",
            "rate limit exceeded (sandbox fault)",
            retry_after(fault.retry_after_s),
        )
        return _answer(record, response, injection.delay_s)
    if fault is not None and fault.kind == "reset" and fault.when == "before":
        record.fault = "reset"
        return Outcome(None, injection.delay_s, record)
    server_error = fault if fault is not None and fault.kind == "server_error" else None
    response = _execute(state, request, route, record, server_error)
    if fault is not None and fault.kind == "reset":
        record.fault = "reset"
        return Outcome(None, injection.delay_s, record)
    return _answer(record, response, injection.delay_s)


def _execute(
    state: SandboxState,
    request: ApiRequest,
    route: Route,
    record: RequestRecord,
    server_error: CountedFault | None,
) -> Response:
    """Steps 5-7: idempotency lookup, the endpoint (or injected 5xx), saving the answer."""
    key = record.idempotency_key if route.endpoint in IDEMPOTENT_ENDPOINTS else None
    body_fingerprint = fingerprint(request.body) if key else ""
    if key:
        try:
            saved = state.keys.lookup(key, body_fingerprint, state.clock.monotonic())
        except ApiError as exc:
            return exc.response()
        if saved is not None:
            record.replayed = True
            return saved
    if server_error is not None:
        record.fault = "server_error"
        response = error_response(
            server_error.status, "internal", "injected server error (sandbox fault)"
        )
    else:
        try:
            response = V2_ENDPOINTS[route.endpoint](state, request, route.params)
        except ApiError as exc:
            response = exc.response()
    if key and should_save(response, state.faults.tunables.replay_errors):
        state.keys.save(key, body_fingerprint, response, state.clock.monotonic())
    return response


def _answer(record: RequestRecord, response: Response, delay_s: float = 0.0) -> Outcome:
    record.status = response.status
    header = response.header("Retry-After")
    record.retry_after = int(header) if header is not None else None
    job = response.body.get("job")
    if record.endpoint == "batch_create" and isinstance(job, dict):
        record.job_id = job.get("id")
    return Outcome(response, delay_s, record)


def _authorized(state: SandboxState, request: ApiRequest) -> bool:
    scheme, _, credential = (request.header("authorization") or "").strip().partition(" ")
    expected = state.settings.api_key.encode()
    return scheme.lower() == "basic" and hmac.compare_digest(credential.strip().encode(), expected)
