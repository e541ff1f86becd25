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

from worker.config import Secret
from worker.decode import without_logical_types
from worker.errors import InvalidRecord, RetriableError


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
        if response.status_code == 404:
            raise InvalidRecord("unknown_schema_id", f"schema id {schema_id} is not registered")
        if response.status_code != 200:
            raise RetriableError(
                f"schema registry answered {response.status_code}", status=response.status_code
            )
        try:
            raw = json.loads(response.json()["schema"])
            parsed = fastavro.parse_schema(without_logical_types(raw))
        except (ValueError, KeyError, TypeError, fastavro.schema.SchemaParseException) as exc:
            raise InvalidRecord(
                "bad_writer_schema", f"schema id {schema_id} is not a usable Avro schema"
            ) from exc
        with self._lock:
            self._cache[schema_id] = parsed
        return parsed

    def close(self) -> None:
        self._client.close()
