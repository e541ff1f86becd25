"""Writer schemas by id from a Confluent Schema Registry, fetched once and cached.

``GET {url}/schemas/ids/{id}``. An unknown id is an ``InvalidRecord`` (the record can
never be decoded), believed for ``UNKNOWN_ID_WINDOW_S`` without asking again (at most
``UNKNOWN_IDS_MAX`` ids at once); a schema that is not Avro, or whose values could nest without
end or past ``nesting.MAX_DEPTH`` (fastavro's reader would recurse in C until the process
dies), is refused for good, once per id: its records are ``InvalidRecord`` too. Any other
failure is ``RegistryUnavailable``: the registry may come back.

A fetch runs on the poll loop (the decoder asks for an id it has not seen), so it is bounded:
it is over within ``timeout_s`` (10 s by default) whatever the registry does, connecting and a
trickled answer included, and reads at most ``ANSWER_MAX_BYTES``; past either it is
``RegistryUnavailable`` and the connection is closed. The loop asks again on a later turn (the
record waits at the head of the intake), so one turn waits at most ``timeout_s`` for it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastavro
import httpx

from worker.bounded_http import Answer, AnswerTooLarge, Proxies, client, fetch
from worker.config.redact import Secret
from worker.errors import DeadLetterCode, InvalidRecord, RegistryUnavailable
from worker.events.decode import without_logical_types
from worker.events.nesting import check_nesting

# Confluent Schema Registry's error_code for "Schema not found".
_SCHEMA_NOT_FOUND = 40403
# The longest answer read: a schema is a few KiB; a proxy's page or a runaway answer is not.
ANSWER_MAX_BYTES = 1024 * 1024
# The registry's "no such schema" (40403) for an id is believed this long: a flood of records
# naming it costs one fetch a window, not one each. Short, because a registry follower may
# answer 40403 for a moment after its leader registered the schema.
UNKNOWN_ID_WINDOW_S = 10.0
UNKNOWN_IDS_MAX = 10_000  # ids believed unknown at once (about 1 MiB); the oldest go first


def _json(response: Answer) -> Any:
    return json.loads(response.body)


def _error_code(response: Answer) -> int | None:
    try:
        body = _json(response)
    except (ValueError, RecursionError):
        return None
    code = body.get("error_code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


@dataclass(frozen=True, slots=True)
class _Refused:
    """A schema the registry serves for an id but that is never read, and why: kept for good,
    since a registry never changes the schema of an id."""

    code: DeadLetterCode
    message: str


class SchemaRegistry:
    def __init__(
        self,
        url: str,
        *,
        auth: Secret | None = None,
        timeout_s: float = 10.0,
        proxies: Proxies | None = None,
        transport: httpx.BaseTransport | None = None,
        unknown_window_s: float = UNKNOWN_ID_WINDOW_S,
        unknown_ids_max: int = UNKNOWN_IDS_MAX,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``proxies``: ``bounded_http.environment_proxies()``; None: direct.
        ``unknown_window_s``, ``unknown_ids_max``: how long, and for how many ids at once,
        the registry's "no such schema" is believed without asking again; ``monotonic``: the
        clock of that window (a ``runtime.clock.Clock``'s ``monotonic``)."""
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
        self._cache: dict[int, Any] = {}  # id -> its parsed schema, or _Refused
        # id -> until when its "no such schema" holds; oldest first (one window for all)
        self._unknown: dict[int, float] = {}
        self._unknown_window_s = unknown_window_s
        self._unknown_ids_max = unknown_ids_max
        self._monotonic = monotonic
        self._lock = threading.Lock()

    def writer_schema(self, schema_id: int) -> Any:
        """The parsed writer schema for ``schema_id``, without its logical types. Fetched once
        per id; an id the registry does not have is asked about again only once its window
        has passed; a schema that is not Avro, or whose values could nest without end or too
        deep (``nesting``), is refused for good."""
        with self._lock:
            cached = self._cache.get(schema_id)
            unknown_until = self._unknown.get(schema_id)
        if isinstance(cached, _Refused):
            raise InvalidRecord(cached.code, cached.message)
        if cached is not None:
            return cached
        if unknown_until is not None and self._monotonic() < unknown_until:
            raise _not_registered(schema_id)
        try:
            text = self._fetch(schema_id)
        except InvalidRecord:
            self._remember_unknown(schema_id)
            raise
        schema = _read(schema_id, text)
        with self._lock:
            self._unknown.pop(schema_id, None)
            self._cache[schema_id] = schema
        if isinstance(schema, _Refused):
            raise InvalidRecord(schema.code, schema.message)
        return schema

    def _fetch(self, schema_id: int) -> Any:
        """The schema the registry holds for ``schema_id``, as it sent it (JSON text)."""
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
            raise _not_registered(schema_id)
        if response.status != 200:
            # A 404 without the registry's own error code is a wrong URL, not a missing
            # schema: wait and alert rather than dead-letter every record.
            raise RegistryUnavailable(
                f"schema registry answered {response.status}", status=response.status
            )
        try:
            return _json(response)["schema"]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # A maintenance page, a proxy's answer: the registry is not answering yet.
            raise RegistryUnavailable("schema registry answer is not a schema") from exc

    def subjects(self) -> list[str]:
        """``GET /subjects``: the subjects the registry holds (``check``: it answers, and
        what it holds), within the same deadline and size cap as a schema fetch."""
        try:
            response = fetch(
                self._client,
                "GET",
                "/subjects",
                max_bytes=ANSWER_MAX_BYTES,
                deadline_s=self._timeout_s,
            )
        except AnswerTooLarge as exc:
            raise RegistryUnavailable(f"schema registry: {exc}", status=exc.status) from exc
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"schema registry unreachable: {type(exc).__name__}") from exc
        if response.status != 200:
            raise RegistryUnavailable(
                f"schema registry answered {response.status}", status=response.status
            )
        try:
            subjects = _json(response)
        except (ValueError, RecursionError) as exc:
            raise RegistryUnavailable("schema registry answer is not JSON") from exc
        if not isinstance(subjects, list):
            raise RegistryUnavailable("schema registry answer is not a list of subjects")
        return [str(subject) for subject in subjects]

    def _remember_unknown(self, schema_id: int) -> None:
        """Believe the registry's "no such schema" for ``schema_id`` for one window, forgetting
        expired ids and, past ``unknown_ids_max``, the oldest."""
        now = self._monotonic()
        with self._lock:
            unknown = self._unknown
            unknown.pop(schema_id, None)
            while unknown and (
                len(unknown) >= self._unknown_ids_max or next(iter(unknown.values())) <= now
            ):
                del unknown[next(iter(unknown))]
            unknown[schema_id] = now + self._unknown_window_s

    def close(self) -> None:
        self._client.close()


def _not_registered(schema_id: int) -> InvalidRecord:
    return InvalidRecord(
        DeadLetterCode.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered"
    )


def _read(schema_id: int, text: Any) -> Any:
    """The schema text parsed by fastavro (without logical types), or why it is refused."""
    try:
        schema = without_logical_types(json.loads(text))
        parsed = fastavro.parse_schema(schema)
    except (
        ValueError,
        KeyError,
        TypeError,
        RecursionError,
        fastavro.schema.SchemaParseException,
    ):
        return _Refused(
            DeadLetterCode.BAD_WRITER_SCHEMA, f"schema id {schema_id} is not a usable Avro schema"
        )
    try:
        check_nesting(schema, schema_id)
    except InvalidRecord as exc:
        return _Refused(exc.code, exc.message)
    return parsed
