"""The worker's error tree. Third-party exceptions are translated once, at the boundary.

WorkerError
├── ConfigError          bad configuration: exit 2 with one line naming the variable
├── InvalidRecord        this record can never be delivered: it goes to the DLQ with its
│                        ``code``, a ``DeadLetterCode``
├── RetriableError       try again later (network, 5xx, registry down); never data loss
│   ├── Unreachable      no answer from FullStory: a timeout, a refused or broken connection
│   ├── ServerError      FullStory answered 5xx
│   ├── RateLimited      429: wait ``retry_after`` seconds before the next request
│   ├── AuthFailed       401 / 403: the API key is wrong or lacks a permission
│   ├── NotFound         404: no such job (unknown or expired), or a wrong base URL
│   ├── BadAnswer        an answer the API does not document for the call: a 200 whose
│   │                    body is not JSON or lacks a field, a job state the worker does
│   │                    not know, a status such as 3xx / 405 / 408 / 415
│   ├── RegistryUnavailable  the schema registry handed out no schema (unreachable, too
│   │                        slow, an answer not its own): the record waits, never a letter
│   └── ReadBackFailed   Kafka did not hand back a rejected user's records in time
├── RejectedRequest      FullStory refused a whole request body (400, 413, 422)
└── Abandoned            the worker is shutting down; stop retrying

Each adapter translates its peer's failures once: ``worker.fullstory.client`` maps every HTTP
answer to one of these, ``worker.events.registry`` raises ``RegistryUnavailable`` and
``worker.kafka.readback`` ``ReadBackFailed``. The layers above dispatch on the class (the
specific one they can wait out), never on ``status``; a ``RetriableError`` a handler does not
expect is a bug and propagates (the worker stops, and a restart reads again what it had not
committed).
"""

from __future__ import annotations

from enum import StrEnum, unique
from typing import Any


class WorkerError(Exception):
    """Base of every error the worker raises on purpose."""


class ConfigError(WorkerError):
    """A configuration variable is missing or invalid."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@unique
class DeadLetterCode(StrEnum):
    """Why a record went to the DLQ: its ``dlq.error.code`` header and the ``code`` label of
    ``fsus_dead_letters_total``. A closed set (README.md, "Dead letters", lists each), so a
    peer never decides the metric's cardinality; the values are an interface, never renamed."""

    # -- the record cannot be read (``worker.events.decode``, ``worker.events.registry``)
    TOMBSTONE = "tombstone"  # no value, and a key that is not a uid (canonical format)
    NOT_WIRE_FORMAT = "not_wire_format"  # with a registry: no 5-byte Confluent header
    UNDECLARED_SCHEMA_ID = "undeclared_schema_id"  # no registry: an id LOCAL_SCHEMA_IDS lacks
    AMBIGUOUS_SCHEMA_ID = "ambiguous_schema_id"  # no registry: plain Avro, and under a declared id
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"  # the registry says it has no such schema id
    BAD_WRITER_SCHEMA = "bad_writer_schema"  # the registry's schema for the id is not Avro
    RECURSIVE_SCHEMA = "recursive_schema"  # the writer schema's named types refer to themselves
    SCHEMA_TOO_DEEP = "schema_too_deep"  # the writer schema nests deeper than nesting.MAX_DEPTH
    UNDECODABLE = "undecodable"  # the bytes are not Avro of the schema they claim
    # -- a Debezium change event the field mapping cannot read (``worker.events.debezium``)
    MAPPED_COLUMN_MISSING = "mapped_column_missing"  # the table lacks a column FIELD_MAPPING maps
    UNSUPPORTED_COLUMN = "unsupported_column"  # a mapped column of a type FullStory cannot take
    NOT_A_CHANGE_EVENT = "not_a_change_event"  # neither a Debezium envelope nor a flattened row
    UNKNOWN_OP = "unknown_op"  # an envelope whose op is not c, u, d, r, t or m
    DELETE_WITHOUT_UID = "delete_without_uid"  # a delete whose before image lacks the uid column
    # -- the event breaks one of FullStory's published rules (``worker.events.rules``, ``merge``)
    EMPTY_UID = "empty_uid"  # the uid is empty or only white space
    INVALID_UID = "invalid_uid"  # the uid is too long or holds a control character
    INVALID_DISPLAY_NAME = "invalid_display_name"  # display_name too long
    INVALID_EMAIL = "invalid_email"  # email too long
    INVALID_PROPERTY_NAME = "invalid_property_name"  # a property name FullStory refuses
    PROPERTY_TOO_LARGE = "property_too_large"  # a property value over 8,192 bytes as JSON
    NON_FINITE_NUMBER = "non_finite_number"  # NaN or an infinity, which JSON cannot carry
    TYPE_MISMATCH = "type_mismatch"  # a value that does not match its name's type suffix
    PROPERTY_COLLISION = "property_collision"  # two names of one property (plan, plan_str)
    TOO_MANY_PROPERTIES = "too_many_properties"  # over 500 properties on the merged user
    # -- FullStory's own verdict (``worker.fullstory``): its free-form code is never a label value
    FULLSTORY_REJECTED = "fullstory_rejected"  # refused by FullStory: see dlq.fullstory.code


class InvalidRecord(WorkerError):
    """A record that can never be imported, and why (``code``)."""

    def __init__(self, code: DeadLetterCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RetriableError(WorkerError):
    """A transient failure: the same call may succeed later. ``status``: the HTTP status
    behind it, if any (for logs and metric labels)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Unreachable(RetriableError):
    """No answer could be read: a timeout, a refused or broken connection, a garbled transfer.
    The request may have reached FullStory."""


class ServerError(RetriableError):
    """HTTP 5xx: FullStory failed. Its idempotency store may replay this answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status=status)


class RateLimited(RetriableError):
    """HTTP 429: no request to that endpoint before ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class AuthFailed(RetriableError):
    """HTTP 401 or 403: retried, since waiting (and alerting) beats dead-lettering users."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status=status)


class NotFound(RetriableError):
    """HTTP 404: on a job's URL, FullStory does not know the job (never created, or expired);
    on every URL, a wrong base URL. ``code``: the error code of a JSON error body as FullStory
    writes one (``{"code": "not_found", ...}``), "" for any other body (a web server's page:
    surely not FullStory)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message, status=404)
        self.code = code


class BadAnswer(RetriableError):
    """An answer the API does not document for the call (``status`` 200 when the body is
    wrong): not a sign the request is wrong, so asked again rather than acted on."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status=status)


class RegistryUnavailable(RetriableError):
    """The schema registry did not hand out a schema: unreachable, past its deadline or size
    cap, or an answer that is not the registry's (an HTML 404, a maintenance page). Its own
    "no such schema" (40403) is an ``InvalidRecord`` instead. The intake holds the record and
    every one after it, and decodes them again later."""


class ReadBackFailed(RetriableError):
    """Reading a rejected user's records back from Kafka failed or got no answer in time;
    the job thread reads them again (their dead letters wait, nothing is acknowledged).
    ``found``: the records the failed pass did read (offset -> record), so the next pass
    reads only the rest: a pass too long for its deadline still ends after a few."""

    def __init__(self, message: str, found: dict[int, Any] | None = None) -> None:
        super().__init__(message)
        self.found: dict[int, Any] = found or {}


class RejectedRequest(WorkerError):
    """FullStory refused a whole request body as invalid (400, 413 or 422)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Abandoned(WorkerError):
    """Raised inside a retry loop when the worker stops waiting (shutdown deadline)."""
