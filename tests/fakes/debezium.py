"""What Debezium's PostgreSQL connector writes for a ``users`` table through Confluent's Avro
converter (``../shared/docs/debezium.md``): the key and envelope schemas, the flattened row of
``ExtractNewRecordState``, and wire-format values. Schemas are registered as written, logical
types included; ``registry`` hands them out as the worker's registry does (without them).

    CREATE TABLE public.users (
        id bigint PRIMARY KEY, full_name text, email text, pricing_plan text,
        created_at timestamptz, signup_date date, ltv numeric(12,2),
        last_login_at timestamp, visits int, churn_risk double precision);
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import fastavro

from worker.events.decode import without_logical_types

PREFIX = "shop"
TABLE = f"{PREFIX}.public.users"
COMMITTED_MS = 1_709_285_400_000  # 2024-03-01T09:30:00Z: source.ts_ms, the commit time
PROCESSED_MS = COMMITTED_MS + 142  # ts_ms: when the connector read it


def _optional(avro: Any) -> list[Any]:
    return ["null", avro]


def _connect(avro: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"type": avro, "connect.version": 1, "connect.name": name, **extra}


def column(name: str, avro: Any, nullable: bool = True) -> dict[str, Any]:
    """A table column as a field of the row record (nullable: a union with null)."""
    if not nullable:
        return {"name": name, "type": avro}
    return {"name": name, "type": _optional(avro), "default": None}


ZONED_TIMESTAMP = _connect("string", "io.debezium.time.ZonedTimestamp")
DATE = _connect("int", "io.debezium.time.Date")
MICRO_TIMESTAMP = _connect("long", "io.debezium.time.MicroTimestamp")
MICRO_TIME = _connect("long", "io.debezium.time.MicroTime")
NUMERIC_12_2 = _connect(
    "bytes",
    "org.apache.kafka.connect.data.Decimal",
    scale=2,
    precision=12,
    logicalType="decimal",
    **{"connect.parameters": {"scale": "2", "connect.decimal.precision": "12"}},
)

COLUMNS: list[dict[str, Any]] = [
    column("id", "long", nullable=False),
    column("full_name", "string"),
    column("email", "string"),
    column("pricing_plan", "string"),
    column("created_at", ZONED_TIMESTAMP),
    column("signup_date", DATE),
    column("ltv", NUMERIC_12_2),
    column("last_login_at", MICRO_TIMESTAMP),
    column("visits", "int"),
    column("churn_risk", "double"),
]

KEY_SCHEMA = {
    "type": "record",
    "name": "Key",
    "namespace": TABLE,
    "fields": [column("id", "long", nullable=False)],
    "connect.name": f"{TABLE}.Key",
}

SOURCE = {
    "type": "record",
    "name": "Source",
    "namespace": "io.debezium.connector.postgresql",
    "fields": [
        {"name": "version", "type": "string"},
        {"name": "connector", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "ts_ms", "type": "long"},
        {
            "name": "snapshot",
            "type": [
                {
                    "type": "string",
                    "connect.version": 1,
                    "connect.parameters": {
                        "allowed": "true,first,first_in_data_collection,"
                        "last_in_data_collection,last,false,incremental"
                    },
                    "connect.default": "false",
                    "connect.name": "io.debezium.data.Enum",
                },
                "null",
            ],
            "default": "false",
        },
        {"name": "db", "type": "string"},
        column("sequence", "string"),
        column("ts_us", "long"),
        column("ts_ns", "long"),
        {"name": "schema", "type": "string"},
        {"name": "table", "type": "string"},
        column("txId", "long"),
        column("lsn", "long"),
        column("xmin", "long"),
    ],
    "connect.name": "io.debezium.connector.postgresql.Source",
}

TRANSACTION = {
    "type": "record",
    "name": "block",
    "namespace": "event",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "total_order", "type": "long"},
        {"name": "data_collection_order", "type": "long"},
    ],
    "connect.version": 1,
    "connect.name": "event.block",
}


def value_schema(columns: list[dict[str, Any]]) -> dict[str, Any]:
    """The row record ``<prefix>.public.users.Value`` of these columns."""
    return {
        "type": "record",
        "name": "Value",
        "namespace": TABLE,
        "fields": columns,
        "connect.name": f"{TABLE}.Value",
    }


def envelope_schema(columns: list[dict[str, Any]] = COLUMNS) -> dict[str, Any]:
    """``<prefix>.public.users.Envelope``: ``after`` refers to the ``Value`` by its name."""
    return {
        "type": "record",
        "name": "Envelope",
        "namespace": TABLE,
        "fields": [
            {"name": "before", "type": _optional(value_schema(columns)), "default": None},
            {"name": "after", "type": _optional(f"{TABLE}.Value"), "default": None},
            {"name": "source", "type": SOURCE},
            column("transaction", TRANSACTION),
            {"name": "op", "type": "string"},
            column("ts_ms", "long"),
            column("ts_us", "long"),
            column("ts_ns", "long"),
        ],
        "connect.version": 2,
        "connect.name": f"{TABLE}.Envelope",
    }


def flattened_schema(columns: list[dict[str, Any]] = COLUMNS) -> dict[str, Any]:
    """``ExtractNewRecordState`` with ``delete.tombstone.handling.mode=rewrite`` and
    ``add.fields=op,source.ts_ms``: the row, plus ``__op``, ``__source_ts_ms``, ``__deleted``."""
    extra = [column("__op", "string"), column("__source_ts_ms", "long")]
    return value_schema([*columns, *extra, column("__deleted", "string")])


# PostgreSQL logical-decoding messages (pg_logical_emit_message): no before, no after.
MESSAGE_SCHEMA = {
    "type": "record",
    "name": "MessageValue",
    "namespace": "io.debezium.connector.postgresql",
    "fields": [
        {"name": "op", "type": "string"},
        column("ts_ms", "long"),
        {"name": "source", "type": SOURCE},
        {
            "name": "message",
            "type": {
                "type": "record",
                "name": "Message",
                "namespace": "io.debezium.connector.postgresql",
                "fields": [
                    {"name": "prefix", "type": "string"},
                    column("content", "bytes"),
                ],
            },
        },
    ],
    "connect.name": "io.debezium.connector.postgresql.MessageValue",
}


def user_row(**columns: Any) -> dict[str, Any]:
    """One row of the table; ``columns`` replace the defaults (None is SQL NULL)."""
    return {
        "id": 42,
        "full_name": "Ada Lovelace",
        "email": "ada@example.com",
        "pricing_plan": "pro",
        "created_at": "2024-03-01T09:30:00Z",
        "signup_date": 19783,  # 2024-03-01
        "ltv": Decimal("1234.50"),
        "last_login_at": 1_709_285_400_123_456,  # 2024-03-01T09:30:00.123456 (no zone)
        "visits": 17,
        "churn_risk": 0.25,
        **columns,
    }


# ``user_row()`` under the tests' usual mapping (plan, signed_up, signup_day, ltv, visits), as
# FullStory receives it: the property values, and the types the request declares.
USER_ROW_PROPERTIES = {
    "plan": "pro",
    "signed_up": "2024-03-01T09:30:00Z",
    "signup_day": "2024-03-01",
    "ltv": 1234.5,
    "visits": 17,
}
USER_ROW_TYPES = {
    "plan": "str",
    "signed_up": "date",
    "signup_day": "date",
    "ltv": "real",
    "visits": "int",
}


def source(snapshot: str = "false") -> dict[str, Any]:
    return {
        "version": "2.7.0.Final",
        "connector": "postgresql",
        "name": PREFIX,
        "ts_ms": COMMITTED_MS,
        "snapshot": snapshot,
        "db": "shop",
        "sequence": '["24023104","24023128"]',
        "ts_us": COMMITTED_MS * 1000,
        "ts_ns": COMMITTED_MS * 1_000_000,
        "schema": "public",
        "table": "users",
        "txId": 555,
        "lsn": 24023128,
        "xmin": None,
    }


def change_event(
    op: str, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An envelope datum: ``op`` with its before and after images."""
    return {
        "before": before,
        "after": after,
        "source": source("true" if op == "r" else "false"),
        "transaction": None,
        "op": op,
        "ts_ms": PROCESSED_MS,
        "ts_us": PROCESSED_MS * 1000,
        "ts_ns": PROCESSED_MS * 1_000_000,
    }


def flattened(op: str, deleted: bool = False, **columns: Any) -> dict[str, Any]:
    """A flattened datum: the row (the before image of a delete) and the added fields."""
    return {
        **user_row(**columns),
        "__op": op,
        "__source_ts_ms": COMMITTED_MS,
        "__deleted": "true" if deleted else "false",
    }


def wire(schema: Mapping[str, Any], schema_id: int, datum: Mapping[str, Any]) -> bytes:
    """Confluent wire format: magic byte 0, the schema id, the Avro body."""
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(out, fastavro.parse_schema(dict(schema)), dict(datum))
    return out.getvalue()


def registry(schemas: Mapping[int, Mapping[str, Any]]) -> Callable[[int], Any]:
    """``writer_schema(id)`` as ``events.registry`` answers it: parsed once, logical types
    dropped, the same object every time."""
    parsed = {i: fastavro.parse_schema(without_logical_types(s)) for i, s in schemas.items()}
    return parsed.__getitem__
