"""The worker's error tree. Third-party exceptions are translated once, at the boundary.

WorkerError
├── ConfigError          bad configuration: exit 2 with one line naming the variable
├── InvalidRecord        this record can never be delivered: it goes to the DLQ
├── RetriableError       try again later (network, 5xx, registry down); never data loss
│   └── RateLimited      429: wait ``retry_after`` seconds before the next request
├── RejectedRequest      FullStory refused a whole request body (400, 413, 422)
└── Abandoned            the worker is shutting down; stop retrying
"""

from __future__ import annotations


class WorkerError(Exception):
    """Base of every error the worker raises on purpose."""


class ConfigError(WorkerError):
    """A configuration variable is missing or invalid."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class InvalidRecord(WorkerError):
    """A record that can never be imported; ``code`` is a stable snake_case reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RetriableError(WorkerError):
    """A transient failure: the same call may succeed later."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(RetriableError):
    """HTTP 429: no request to that endpoint before ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class RejectedRequest(WorkerError):
    """FullStory refused a whole request body as invalid (400, 413 or 422)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Abandoned(WorkerError):
    """Raised inside a retry loop when the worker stops waiting (shutdown deadline)."""
