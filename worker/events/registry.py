"""Writer schemas by id from a Confluent Schema Registry, fetched once and cached.

``GET {url}/schemas/ids/{id}``. An unknown id is an ``InvalidRecord`` (the record can
never be decoded); any other failure is ``RegistryUnavailable``: the registry may come back.

A fetch runs on the poll loop (the decoder asks for an id it has not seen), so it is bounded:
it is over within ``timeout_s`` (10 s by default) whatever the registry does, connecting and a
trickled answer included, and reads at most ``ANSWER_MAX_BYTES``; past either it is
``RegistryUnavailable`` and the connection is closed. The loop asks again on a later turn (the
record waits at the head of the intake), so one turn waits at most ``timeout_s`` for it.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import fastavro
import httpx

from worker.bounded_http import Answer, AnswerTooLarge, Proxies, client, fetch
from worker.config.redact import Secret
from worker.errors import DeadLetterCode, InvalidRecord, RegistryUnavailable
from worker.events.decode import without_logical_types

# Confluent Schema Registry's error_code for "Schema not found".
_SCHEMA_NOT_FOUND = 40403
# The longest answer read: a schema is a few KiB; a proxy's page or a runaway answer is not.
ANSWER_MAX_BYTES = 1024 * 1024


def _json(response: Answer) -> Any:
    return json.loads(response.body)


def _error_code(response: Answer) -> int | None:
    try:
        body = _json(response)
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
        proxies: Proxies | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``proxies``: ``bounded_http.environment_proxies()``; None: direct."""
        basic = None
        if auth is not None:
            user, _, password = auth.reveal().partition(":")
            basic = httpx.BasicAuth(user, password)
        self._timeout_s = timeout_s
        self._client = client(
            url,
            deadline_s=timeout_s,
            limits=httpx.Limits(max_connections=2),
            proxies=proxies or {},
            transport=transport,
            auth=basic,
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
            response = fetch(
                self._client,
                "GET",
                f"/schemas/ids/{schema_id}",
                max_bytes=ANSWER_MAX_BYTES,
                deadline_s=self._timeout_s,
            )
        except AnswerTooLarge as exc:
            raise RegistryUnavailable(f"schema registry: {exc}", status=exc.status) from exc
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"schema registry unreachable: {type(exc).__name__}") from exc
        if response.status == 404 and _error_code(response) == _SCHEMA_NOT_FOUND:
            raise InvalidRecord(
                DeadLetterCode.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered"
            )
        if response.status != 200:
            # A 404 without the registry's own error code is a wrong URL, not a missing
            # schema: wait and alert rather than dead-letter every record.
            raise RegistryUnavailable(
                f"schema registry answered {response.status}", status=response.status
            )
        try:
            text = _json(response)["schema"]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # A maintenance page, a proxy's answer: the registry is not answering yet.
            raise RegistryUnavailable("schema registry answer is not a schema") from exc
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
                DeadLetterCode.BAD_WRITER_SCHEMA,
                f"schema id {schema_id} is not a usable Avro schema",
            ) from exc
        with self._lock:
            self._cache[schema_id] = parsed
        return parsed

    def close(self) -> None:
        self._client.close()
