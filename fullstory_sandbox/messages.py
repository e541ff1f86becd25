"""The transport-neutral request and answer types shared by the pipeline and the handler.

`ApiRequest` is what the HTTP handler hands over once it has read a whole request;
`Response` is a JSON answer; `ApiError` is raised by endpoint code and turned into an
error answer `{"message", "code"}` by the pipeline, never by the endpoints themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ApiRequest:
    """One fully read HTTP request. Header names are lower-case; query keeps first values."""

    method: str
    target: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    received_mono: float
    received_wall: datetime

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Response:
    """A JSON answer: status, body object and extra headers (Content-* are added on write)."""

    status: int
    body: Mapping[str, Any]
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def encode(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


class ApiError(Exception):
    """An error answer raised by endpoint code; the pipeline renders it as JSON."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message, self.headers)


def error_response(
    status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """The FullStory error shape `{"message", "code"}`."""
    return Response(status, {"message": message, "code": code}, headers)


def retry_after(seconds: int) -> tuple[tuple[str, str], ...]:
    """A `Retry-After` header in whole seconds, as FullStory sends it."""
    return (("Retry-After", str(max(0, seconds))),)


def parse_json(body: bytes) -> Any:
    """Parses a JSON request body; raises `ApiError` 400 `invalid_json` on anything malformed.

    NaN and Infinity literals are refused: they are not JSON.
    """

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return orjson.loads(body)  # strict and fast; what it refuses, `json` decides
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body.decode("utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from exc
