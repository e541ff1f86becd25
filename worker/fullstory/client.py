"""FullStory v2 users over HTTP (batch import, look-up, deletion): one call, one answer,
errors translated.

No retrying here (``calls`` owns the policy). This is the one place that reads HTTP
statuses; every failure becomes one ``worker.errors`` class:

- timeout, connection error -> ``Unreachable``
- 5xx -> ``ServerError``
- 429 -> ``RateLimited`` with its Retry-After
- 401 / 403 -> ``AuthFailed``
- 404 -> ``NotFound`` (a job FullStory does not know, or a wrong base URL); for a user's
  look-up or deletion, an answer: the user does not exist
- 400 / 413 / 422 (the body is invalid) -> ``RejectedRequest``
- any other status (a wrong URL's 3xx / 405, 408, 415 ...), a 200 whose body is not what
  the API documents, an answer longer than ``ANSWER_MAX_BYTES`` -> ``BadAnswer``

Every call is over within ``timeout_s`` (``FULLSTORY_HTTP_TIMEOUT_S``), connecting, waiting
for a pooled connection and a trickled answer included (``bounded_http``); past it, the call
is ``Unreachable``. Job ids are checked where FullStory hands them out (``create_batch``) and
escaped wherever they go into a URL.

The API key is sent as ``Authorization: Basic <key>`` and appears nowhere else.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import quote

import httpx

from worker.bounded_http import Answer, AnswerTooLarge, Proxies, client, fetch
from worker.config.redact import Secret, redact_url
from worker.errors import (
    AuthFailed,
    BadAnswer,
    NotFound,
    RateLimited,
    RejectedRequest,
    ServerError,
    Unreachable,
)

# The longest answer read: a job status or an /errors page is a few KiB to a few MiB (a page
# of errors carries each failed user's request); past this the connection is closed unread.
ANSWER_MAX_BYTES = 8 * 1024 * 1024
# The longest job id believed (FullStory's are short); anything longer is a bad answer.
JOB_ID_MAX_CHARS = 256

# Answers that blame the request body: only these split a batch and dead-letter its users.
_INVALID_INPUT = (400, 413, 422)


class JobState(Enum):
    """A batch import job's status; the API documents these three and no other."""

    PROCESSING = "PROCESSING"  # accepted, running
    COMPLETED = "COMPLETED"  # every user imported
    FAILED = "FAILED"  # some users (perhaps all) failed, each listed under /errors


@dataclass(frozen=True, slots=True)
class JobStatus:
    id: str
    state: JobState
    imports: int = 0
    errors: int = 0

    @property
    def done(self) -> bool:
        return self.state is not JobState.PROCESSING


class UserPresence(Enum):
    """What ``GET /v2/users?uid=`` says of a uid."""

    PRESENT = "present"
    BEING_DELETED = "being_deleted"  # deleted, FullStory still removing it in the background
    ABSENT = "absent"  # 404: never created, or its deletion finished


@dataclass(frozen=True, slots=True)
class UserError:
    uid: str
    code: str
    message: str
    job_id: str | None = None  # the job that failed the user (None: refused with a 400)


# The longest Retry-After believed: a larger value waits this long and asks again (one
# absurd header must not park every job thread for days, or overflow a wait and crash).
RETRY_AFTER_MAX_S = 60.0


def _retry_after(response: Answer) -> float | None:
    """Seconds to wait, within 0..``RETRY_AFTER_MAX_S``; None when absent or not a number
    (an HTTP-date, garbage: the worker's own backoff applies)."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), RETRY_AFTER_MAX_S)


def _json(response: Answer) -> Any:
    """The answer's JSON; ``ValueError`` for anything else, nesting too deep included."""
    try:
        return json.loads(response.body)
    except RecursionError as exc:
        raise ValueError("answer nests too deep") from exc


def _job_id(value: object) -> str:
    """A job id fit for a URL path segment and a log line; ``BadAnswer`` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 0 < len(value) <= JOB_ID_MAX_CHARS:
        raise BadAnswer("create batch: the job id is missing, empty or too long", 200)
    if value in (".", ".."):
        # Never one path segment: URLs drop "." and climb out of the job for "..", so the
        # status poll would read /v2/users/batch or /v2/users instead.
        raise BadAnswer("create batch: the job id is a dot segment ('.' or '..')", 200)
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise BadAnswer("create batch: the job id has control characters", 200)
    return value


def _job_path(job_id: str) -> str:
    return f"/v2/users/batch/{quote(job_id, safe='')}"


def _error_code(response: Answer) -> str:
    """The ``code`` of FullStory's JSON error body (bounded), "" when the body is not one."""
    try:
        code = _json(response).get("code")
    except (ValueError, AttributeError):
        return ""
    return code[:100] if isinstance(code, str) else ""


def _check(response: Answer, what: str) -> dict[str, Any]:
    status = response.status
    if status == 200:
        try:
            body = _json(response)
        except ValueError as exc:
            raise BadAnswer(f"{what}: answer is not JSON", status) from exc
        if not isinstance(body, dict):
            raise BadAnswer(f"{what}: answer is not a JSON object", status)
        return body
    if status == 429:
        raise RateLimited(f"{what}: rate limited", _retry_after(response))
    if status >= 500:
        raise ServerError(f"{what}: HTTP {status}", status)
    if status in (401, 403):
        raise AuthFailed(f"{what}: HTTP {status} (check FULLSTORY_API_KEY)", status)
    if status == 404:
        raise NotFound(f"{what}: HTTP 404", _error_code(response))
    if status not in _INVALID_INPUT:
        # 3xx, 405, 408, 415, ...: the URL or the API is not what we expect; waiting and
        # alerting beats dead-lettering every user.
        raise BadAnswer(f"{what}: HTTP {status}", status)
    try:
        body = _json(response)
        # Bounded: they travel in the user's dead-letter headers.
        code, message = str(body.get("code", ""))[:100], str(body.get("message", ""))[:1000]
    except (ValueError, AttributeError):
        code, message = "", response.body[:200].decode("utf-8", "replace")
    raise RejectedRequest(status, code or f"http_{status}", message)


class FullStoryClient:
    """Thread-safe: one ``httpx.Client`` shared by every job runner thread."""

    def __init__(
        self,
        base_url: str,
        api_key: Secret,
        *,
        timeout_s: float = 30.0,
        max_connections: int = 20,
        proxies: Proxies | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``timeout_s``: the longest a call may take, whatever the server (or the proxy)
        does. ``proxies``: ``bounded_http.environment_proxies()``; None: direct."""
        self._timeout_s = timeout_s
        self._client = client(
            base_url,
            deadline_s=timeout_s,
            limits=httpx.Limits(max_connections=max_connections),
            proxies=proxies or {},
            transport=transport,
            headers={"Authorization": f"Basic {api_key.reveal()}"},
        )

    def __repr__(self) -> str:
        return f"FullStoryClient(base_url={redact_url(str(self._client.base_url))!r})"

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = fetch(
                self._client,
                method,
                path,
                max_bytes=ANSWER_MAX_BYTES,
                deadline_s=self._timeout_s,
                **kwargs,
            )
        except AnswerTooLarge as exc:
            raise BadAnswer(f"{what}: {exc}", exc.status) from exc
        except httpx.TimeoutException as exc:
            raise Unreachable(f"{what}: timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:  # transport errors, bad encodings, ...
            raise Unreachable(f"{what}: {type(exc).__name__}") from exc
        return _check(response, what)

    def create_batch(self, body: bytes, idempotency_key: str) -> str:
        """POST /v2/users/batch; returns the job id."""
        answer = self._send(
            "POST",
            "/v2/users/batch",
            "create batch",
            content=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
        )
        try:
            job_id = answer["job"]["id"]
        except (KeyError, TypeError) as exc:
            raise BadAnswer("create batch: answer has no job id", 200) from exc
        return _job_id(job_id)

    def job_status(self, job_id: str) -> JobStatus:
        """A state this client does not know is a ``BadAnswer``, never taken as an end."""
        answer = self._send("GET", _job_path(job_id), "job status")
        try:
            state = answer["job"]["status"]
            # The SDK's models type these counts as strings; accept both.
            imports, errors = int(answer.get("imports") or 0), int(answer.get("errors") or 0)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadAnswer("job status: answer has an unexpected shape", 200) from exc
        try:
            return JobStatus(job_id, JobState(state), imports, errors)
        except ValueError as exc:
            raise BadAnswer(f"job status: unknown state {state!r}", 200) from exc

    def job_errors(
        self, job_id: str, page_token: str | None = None
    ) -> tuple[list[UserError], str | None]:
        """One page of a failed job's per-user errors, and the next page token."""
        params = {"page_token": page_token} if page_token else None
        path = f"{_job_path(job_id)}/errors"
        answer = self._send("GET", path, "job errors", params=params)
        try:
            errors = [
                UserError(
                    uid=str(item["user"]["uid"]),  # unmatched to a user, an error is no use
                    code=str(item.get("code", "")),
                    message=str(item.get("message", "")),
                )
                for item in answer.get("results") or []
            ]
        except (AttributeError, KeyError, TypeError) as exc:
            raise BadAnswer("job errors: answer has an unexpected shape", 200) from exc
        token = answer.get("next_page_token")
        return errors, str(token) if token else None

    def user_presence(self, uid: str) -> UserPresence:
        """``GET /v2/users?uid=``. Needs an Admin or Architect key: a key without the role is
        ``AuthFailed`` (403), which is how a look-up of a uid that does not exist tells a key
        that may delete (404, ``ABSENT``) from one that may not, touching no user."""
        try:
            answer = self._send("GET", "/v2/users", "user look-up", params={"uid": uid})
        except NotFound:
            return UserPresence.ABSENT
        results = answer.get("results")
        if not isinstance(results, list) or len(results) > 1:
            raise BadAnswer("user look-up: answer has an unexpected shape", 200)
        if not results:
            return UserPresence.ABSENT
        user = results[0]
        if not isinstance(user, dict) or user.get("uid") not in (None, uid):
            raise BadAnswer("user look-up: the answer is about another user", 200)
        deleting = user.get("is_being_deleted", False)
        if not isinstance(deleting, bool):
            raise BadAnswer("user look-up: is_being_deleted is not a boolean", 200)
        return UserPresence.BEING_DELETED if deleting else UserPresence.PRESENT

    def delete_user(self, uid: str) -> bool:
        """``DELETE /v2/users?uid=``: True when FullStory took the deletion (200; it runs in
        the background), False when it does not know the uid (404). Both mean the delete is
        done as far as the caller is concerned; every other answer raises as any call's."""
        try:
            self._send("DELETE", "/v2/users", "user delete", params={"uid": uid})
        except NotFound:
            return False
        return True

    def close(self) -> None:
        self._client.close()
