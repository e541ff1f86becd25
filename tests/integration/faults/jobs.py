"""The sandbox's side for the fault suite: jobs with their timings, contents and per-user
errors."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

NEVER = float("inf")


def _wall(iso: str | None) -> float:
    return NEVER if iso is None else datetime.fromisoformat(iso).timestamp()


def job_errors(sandbox: Any, jobs: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per failed job, its per-user errors, read through the public ``/errors`` pages.

    Call it once the scenario is over: it retries past any fault still pending (bounded).
    """
    found: dict[str, list[dict[str, Any]]] = {}
    with httpx.Client(base_url=sandbox.url, headers=sandbox.auth_headers(), timeout=10) as http:
        for job in jobs:
            if not job.get("errors"):
                continue
            errors: list[dict[str, Any]] = []
            token: str | None = None
            for _page in range(10_000):
                params = {"page_token": token} if token else None
                body = _get_json(http, f"/v2/users/batch/{job['id']}/errors", params)
                errors.extend(body.get("results") or [])
                token = body.get("next_page_token")
                if not token:
                    break
            found[job["id"]] = errors
    return found


def _get_json(http: httpx.Client, path: str, params: dict[str, str] | None) -> dict[str, Any]:
    for _attempt in range(50):
        try:
            response = http.get(path, params=params)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        time.sleep(0.2)
    raise AssertionError(f"the sandbox did not answer {path}")


@dataclass(frozen=True, slots=True)
class JobSpan:
    """One sandbox job: wall and monotonic times, the uids it carried, the uids it failed
    (with FullStory's error code each) and, by uid, the request object it received."""

    id: str
    created_s: float
    finished_s: float
    created_mono: float
    finished_mono: float
    uids: tuple[str, ...]
    failed_uids: frozenset[str]
    requests: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    error_codes: Mapping[str, str] = field(default_factory=dict)


def job_spans(
    jobs: Iterable[dict[str, Any]],
    errors: dict[str, list[dict[str, Any]]],
    contents: Mapping[str, list[Any]] | None = None,
) -> list[JobSpan]:
    """Jobs from the sandbox's ``/_sandbox/jobs`` view, their ``/errors`` pages and their
    request objects (``/_sandbox/job_requests``)."""
    spans = []
    for job in jobs:
        codes = {
            str((e.get("user") or {}).get("uid", "")): str(e.get("code", ""))
            for e in errors.get(job["id"], [])
        }
        requests = {
            r["uid"]: r
            for r in (contents or {}).get(job["id"], [])
            if isinstance(r, dict) and isinstance(r.get("uid"), str)
        }
        finished_mono = job.get("finished_monotonic")
        spans.append(
            JobSpan(
                id=job["id"],
                created_s=_wall(job["created"]),
                finished_s=_wall(job.get("finished")),
                created_mono=job["created_monotonic"],
                finished_mono=NEVER if finished_mono is None else finished_mono,
                uids=tuple(job["uids"]),
                failed_uids=frozenset(codes),
                requests=requests,
                error_codes=codes,
            )
        )
    return spans
