"""Injectable faults and run-time knobs, configured by `POST /_sandbox/faults`.

Spec (every key optional; unknown keys, bad types or bad values are refused whole):
    {"rate_limit":   {"count": N, "retry_after_s": S},   # 429 + Retry-After: S
     "server_error": {"count": N, "status": 500},         # any 5xx status
     "reset":        {"count": N, "when": "before"},      # close without answering;
                                                          # "after" = once processed
     "slow":         {"count": N, "delay_ms": D},         # delay the answer
     "endpoint": "any",                                   # default scope of the above
     "reject_uids": "<regex>" | null,                     # per-user `invalid_user` errors
     "job_delay_ms": D, "job_jitter_ms": J,               # jobs started from now on
     "page_size": P, "replay_errors": true}
Each counted fault may carry its own `"endpoint"`: one of `ENDPOINTS` or `any`. Setting a
kind again for the same endpoint replaces its remaining count; count 0 removes it.

Per /v2 request, `take` consumes at most one answer-replacing fault, by priority
rate_limit > reset > server_error (endpoint-specific before `any`), plus at most one
`slow` fault, which delays whatever answer is sent.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from fullstory_sandbox.messages import JsonObject

ENDPOINTS = (
    "batch_create",
    "batch_status",
    "batch_errors",
    "batch_imports",
    "user_upsert",
    "user_get",
    "user_delete",
)
ANSWER_KINDS = ("rate_limit", "reset", "server_error")
COUNTED_KINDS = (*ANSWER_KINDS, "slow")
_TUNABLES = ("job_delay_ms", "job_jitter_ms", "page_size", "replay_errors")


class FaultSpecError(ValueError):
    """A fault spec that cannot be applied; nothing from it was applied."""


@dataclass
class CountedFault:
    """A fault hitting the next `remaining` matching requests."""

    kind: str
    endpoint: str
    remaining: int
    retry_after_s: int = 1
    status: int = 500
    delay_ms: int = 0
    when: str = "before"

    def to_json(self) -> JsonObject:
        extra: dict[str, JsonObject] = {
            "rate_limit": {"retry_after_s": self.retry_after_s},
            "server_error": {"status": self.status},
            "reset": {"when": self.when},
            "slow": {"delay_ms": self.delay_ms},
        }
        return {"count": self.remaining, "endpoint": self.endpoint, **extra[self.kind]}


@dataclass
class Tunables:
    """Run-time knobs; start from the settings, changed by the faults spec."""

    job_delay_ms: int
    job_jitter_ms: int
    page_size: int
    replay_errors: bool


@dataclass(frozen=True)
class Injection:
    """What one request gets: an answer-replacing fault (or None) and an answer delay."""

    answer: CountedFault | None
    delay_s: float


class Faults:
    """Pending faults and tunables. Not thread-safe: callers hold the sandbox lock."""

    def __init__(self, defaults: Tunables) -> None:
        self._defaults = defaults
        self.tunables = replace(defaults)
        self.reject_uids: re.Pattern[str] | None = None
        self._pending: dict[tuple[str, str], CountedFault] = {}

    def configure(self, spec: object) -> None:
        """Applies a spec atomically; raises `FaultSpecError` naming the first bad field."""
        if not isinstance(spec, Mapping):
            raise FaultSpecError("the faults spec must be a JSON object")
        unknown = set(spec) - {*COUNTED_KINDS, *_TUNABLES, "endpoint", "reject_uids"}
        if unknown:
            raise FaultSpecError(f"unknown fault keys: {sorted(unknown)}")
        scope = _endpoint(spec.get("endpoint", "any"), "endpoint")
        counted = [_counted(kind, spec[kind], scope) for kind in COUNTED_KINDS if kind in spec]
        tunables = replace(
            self.tunables, **{k: _tunable(k, spec[k]) for k in _TUNABLES if k in spec}
        )
        reject = self.reject_uids
        if "reject_uids" in spec:
            reject = _pattern(spec["reject_uids"])
        for fault in counted:
            self._pending.pop((fault.kind, fault.endpoint), None)
            if fault.remaining:
                self._pending[(fault.kind, fault.endpoint)] = fault
        self.tunables, self.reject_uids = tunables, reject

    def take(self, endpoint: str) -> Injection:
        """Consumes the faults that hit one request to `endpoint`."""
        answer = next(
            (f for kind in ANSWER_KINDS if (f := self._consume(kind, endpoint)) is not None), None
        )
        slow = self._consume("slow", endpoint)
        return Injection(answer, slow.delay_ms / 1000 if slow else 0.0)

    def job_duration_s(self, rng: random.Random) -> float:
        """How long a job starting now runs: the delay plus uniform jitter."""
        jitter = rng.uniform(0, self.tunables.job_jitter_ms) if self.tunables.job_jitter_ms else 0
        return (self.tunables.job_delay_ms + jitter) / 1000

    def clear(self) -> None:
        """Drops every fault and restores the start-up tunables."""
        self._pending.clear()
        self.reject_uids = None
        self.tunables = replace(self._defaults)

    def snapshot(self) -> JsonObject:
        body: JsonObject = {kind: [] for kind in COUNTED_KINDS}
        for fault in self._pending.values():
            body[fault.kind].append(fault.to_json())
        body["reject_uids"] = self.reject_uids.pattern if self.reject_uids else None
        body.update(vars(self.tunables))
        return body

    def _consume(self, kind: str, endpoint: str) -> CountedFault | None:
        for scope in (endpoint, "any"):
            fault = self._pending.get((kind, scope))
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._pending[(kind, scope)]
                return replace(fault)
        return None


def _counted(kind: str, raw: object, scope: str) -> CountedFault:
    if not isinstance(raw, Mapping):
        raise FaultSpecError(f'{kind} must be an object like {{"count": 1}}')
    allowed = {
        "count",
        "endpoint",
        {
            "rate_limit": "retry_after_s",
            "server_error": "status",
            "reset": "when",
            "slow": "delay_ms",
        }[kind],
    }
    unknown = set(raw) - allowed
    if unknown:
        raise FaultSpecError(f"unknown {kind} keys: {sorted(unknown)}")
    fault = CountedFault(
        kind=kind,
        endpoint=_endpoint(raw.get("endpoint", scope), f"{kind}.endpoint"),
        remaining=_int(raw.get("count", 1), f"{kind}.count"),
        retry_after_s=_int(raw.get("retry_after_s", 1), f"{kind}.retry_after_s"),
        status=_int(raw.get("status", 500), f"{kind}.status"),
        delay_ms=_int(raw.get("delay_ms", 0), f"{kind}.delay_ms"),
        when=str(raw.get("when", "before")),
    )
    if not 500 <= fault.status <= 599:
        raise FaultSpecError(f"{kind}.status must be a 5xx status")
    if fault.when not in ("before", "after"):
        raise FaultSpecError(f"{kind}.when must be 'before' or 'after'")
    return fault


def _tunable(name: str, raw: object) -> Any:
    if name == "replay_errors":
        if not isinstance(raw, bool):
            raise FaultSpecError("replay_errors must be a boolean")
        return raw
    return _int(raw, name, minimum=1 if name == "page_size" else 0)


def _endpoint(raw: object, field_name: str) -> str:
    if raw != "any" and raw not in ENDPOINTS:
        raise FaultSpecError(f"{field_name} must be 'any' or one of {list(ENDPOINTS)}")
    return str(raw)


def _int(raw: object, field_name: str, minimum: int = 0) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < minimum:
        raise FaultSpecError(f"{field_name} must be an integer >= {minimum}")
    return raw


def _pattern(raw: object) -> re.Pattern[str] | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise FaultSpecError("reject_uids must be a regular expression string or null")
    try:
        return re.compile(raw)
    except re.error as exc:
        raise FaultSpecError(f"reject_uids is not a valid regular expression: {exc}") from exc
