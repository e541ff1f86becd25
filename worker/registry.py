"""Writer schemas by id from a Confluent Schema Registry, fetched once and cached.

``GET {url}/schemas/ids/{id}``. An unknown id is an ``InvalidRecord`` (the record can
never be decoded); any other failure is ``RetriableError``: the registry may come back.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import fastavro
import httpx

from worker.decode import without_logical_types
from worker.errors import InvalidRecord, RetriableError
from worker.redact import Secret

# Confluent Schema Registry's error_code for "Schema not found".
_SCHEMA_NOT_FOUND = 40403


def _error_code(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return None
    code = body.get("error_code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


class SchemaRegistry:
    def __init__(
        self,
        url: str,
        *,
        auth: Secret | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        basic = None
        if auth is not None:
            user, _, password = auth.reveal().partition(":")
            basic = httpx.BasicAuth(user, password)
        self._client = httpx.Client(
            base_url=url, auth=basic, timeout=timeout_s, transport=transport
        )
        self._cache: dict[int, Any] = {}
        self._lock = threading.Lock()

    def writer_schema(self, schema_id: int) -> Any:
        """The parsed writer schema for ``schema_id``, without its logical types."""
        with self._lock:
            cached = self._cache.get(schema_id)
        if cached is not None:
            return cached
        try:
            response = self._client.get(f"/schemas/ids/{schema_id}")
        except httpx.HTTPError as exc:
            raise RetriableError(f"schema registry unreachable: {type(exc).__name__}") from exc
        if response.status_code == 404 and _error_code(response) == _SCHEMA_NOT_FOUND:
            raise InvalidRecord("unknown_schema_id", f"schema id {schema_id} is not registered")
        if response.status_code != 200:
            # A 404 without the registry's own error code is a wrong URL, not a missing
            # schema: wait and alert rather than dead-letter every record.
            raise RetriableError(
                f"schema registry answered {response.status_code}", status=response.status_code
            )
        try:
            text = response.json()["schema"]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # A maintenance page, a proxy's answer: the registry is not answering yet.
            raise RetriableError("schema registry answer is not a schema") from exc
        try:
            parsed = fastavro.parse_schema(without_logical_types(json.loads(text)))
        except (
            ValueError,
            KeyError,
            TypeError,
            RecursionError,
            fastavro.schema.SchemaParseException,
        ) as exc:
            raise InvalidRecord(
                "bad_writer_schema", f"schema id {schema_id} is not a usable Avro schema"
            ) from exc
        with self._lock:
            self._cache[schema_id] = parsed
        return parsed

    def close(self) -> None:
        self._client.close()
