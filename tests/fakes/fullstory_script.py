"""FullStory answers scripted with httpx.MockTransport, for the import and job-stage tests."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from tests.fakes.factories import change
from worker.config.settings import Secret
from worker.events.merge import UserUpdate, fold
from worker.fullstory.client import FullStoryClient
from worker.fullstory.importer import Importer
from worker.runtime.retry import Backoff


def users_of(*uids: str) -> list[UserUpdate]:
    """These users, as the importer takes them, one change each."""
    return [fold([change(uid, seats=offset)]) for offset, uid in enumerate(uids)]


class Script:
    """Answers by route; records every request."""

    def __init__(self, answers):
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        queue = self.answers[key]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(request) if callable(answer) else answer


def importer_on(script: Script, abandon: threading.Event | None = None, **options: Any) -> Importer:
    """An importer on ``script`` with short waits; ``options`` override Importer's arguments."""
    client = FullStoryClient("http://fs.test", Secret("KEY"), transport=httpx.MockTransport(script))
    arguments: dict[str, Any] = {
        "poll_max_interval_s": 0.01,
        "poll_min_interval_s": 0.001,
        "backoff": lambda: Backoff(base_s=0.001, cap_s=0.005, floor_s=0.001),
        **options,
    }
    return Importer(client, abandon=abandon or threading.Event(), **arguments)


JOB = httpx.Response(200, json={"job": {"id": "j1", "status": "PROCESSING"}})
DONE = httpx.Response(200, json={"imports": 2, "job": {"id": "j1", "status": "COMPLETED"}})


def status_answer(state: str, errors: int = 0):
    """A job-status answer, fresh for every request."""
    return lambda _request: httpx.Response(
        200, json={"errors": errors, "job": {"id": "j1", "status": state}}
    )


PROCESSING = status_answer("PROCESSING")


def error_pages(*pages: list[str]):
    """The /errors listing of a FAILED job, one page per list of uids, chained by tokens."""

    def answer(request: httpx.Request) -> httpx.Response:
        index = int(request.url.params.get("page_token") or 0)
        results = [
            {"code": "invalid_user", "message": f"bad {uid}", "user": {"uid": uid}}
            for uid in pages[index]
        ]
        token = str(index + 1) if index + 1 < len(pages) else None
        return httpx.Response(200, json={"results": results, "next_page_token": token})

    return answer


def retry_after_0() -> httpx.Response:
    """A 429 that lets the next request go at once."""
    return httpx.Response(429, headers={"Retry-After": "0"})


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def timed_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


class InstantWaits(threading.Event):
    """A cancel event whose waits return at once, noting how long the importer meant to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()
