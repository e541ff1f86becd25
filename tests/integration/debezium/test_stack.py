"""The Debezium stack itself: what the real PostgreSQL connector writes through Apicurio's
converter, read as the worker reads it (Confluent wire format, schema by id)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.debezium.stack import Message, Postgres, consume, decode, field_types
from tests.integration.kafka_tools import Broker
from tests.integration.registry import Registry

# A cold first run installs PostgreSQL and resolves the Connect jars inside the first test's
# fixtures (pytest-timeout counts them): more than the suite's 300 s may be needed there.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

EPOCH = dt.date(1970, 1, 1)
COLUMNS = (
    "id bigint PRIMARY KEY, full_name text, email text, pricing_plan text,"
    " created_at timestamptz, signup_date date, ltv numeric(12,2), last_login_at timestamp"
)
SNAPSHOT_ROW = (
    "(1, 'Ada Lovelace', 'ada@example.com', 'pro', '2024-03-01 12:34:56.789+00',"
    " '2024-03-01', 1234.50, '2024-03-02 08:00:00.123456')"
)


def _table(postgres: Postgres) -> str:
    table = f"users_{uuid.uuid4().hex[:8]}"
    postgres.sql(f"CREATE TABLE {table} ({COLUMNS}); INSERT INTO {table} VALUES {SNAPSHOT_ROW};")
    return table


def _changes(postgres: Postgres, table: str) -> None:
    postgres.sql(
        f"INSERT INTO {table} VALUES (2, 'Grace Hopper', 'grace@example.com', 'free',"
        " '2024-05-06 07:08:09+02', '2024-05-06', -0.05, '2024-05-06 07:08:09');\n"
        f"UPDATE {table} SET pricing_plan = 'enterprise', ltv = 99999.99 WHERE id = 2;\n"
        f"DELETE FROM {table} WHERE id = 1;"
    )


def _micros(value: str) -> int:
    stamp = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return int(stamp.timestamp()) * 1_000_000 + stamp.microsecond


def test_envelope_in_confluent_wire_format(
    postgres: Postgres,
    create_connector: Callable[..., str],
    broker: Broker,
    schema_registry: Registry,
) -> None:
    """Snapshot, insert, update, delete and the delete's tombstone arrive as Debezium
    envelopes in Confluent's wire format whose ids the registry serves, with the column
    values the worker will map (the writer schema's types are printed for the record)."""
    table = _table(postgres)
    topic = create_connector("smoke", table)
    _changes(postgres, table)

    messages = consume(broker.bootstrap, topic, lambda got: len(got) >= 5)
    assert len(messages) == 5, messages
    values = [decode(schema_registry, _value(m)) for m in messages[:-1]]
    ops = [v.datum["op"] for v in values]
    assert ops == ["r", "c", "u", "d"]
    assert messages[-1].value is None, "the delete's tombstone"
    tombstone_key = decode(schema_registry, _key(messages[-1]))
    assert tombstone_key.datum == {"id": 1}

    for message in messages:
        key = decode(schema_registry, _key(message))
        assert key.schema["name"] == "Key" and key.schema["namespace"] == topic
        assert [f["name"] for f in key.schema["fields"]] == ["id"]
    assert schema_registry.artifact(f"{topic}-value").content_id == values[0].schema_id
    assert (
        schema_registry.artifact(f"{topic}-key").content_id
        == decode(schema_registry, _key(messages[0])).schema_id
    )

    snapshot, created, updated, deleted = (v.datum for v in values)
    assert snapshot["source"]["snapshot"] in (
        "true",
        "first",
        "last",
        "first_in_data_collection",
        "last_in_data_collection",
    )
    assert snapshot["after"] == {
        "id": 1,
        "full_name": "Ada Lovelace",
        "email": "ada@example.com",
        "pricing_plan": "pro",
        # ZonedTimestamp: UTC, "Z", always six fraction digits (the column's precision).
        "created_at": "2024-03-01T12:34:56.789000Z",
        "signup_date": (dt.date(2024, 3, 1) - EPOCH).days,
        "ltv": Decimal("1234.50"),
        "last_login_at": _micros("2024-03-02T08:00:00.123456"),
    }
    assert created["before"] is None
    assert created["after"]["created_at"] == "2024-05-06T05:08:09.000000Z"
    assert created["after"]["ltv"] == Decimal("-0.05")
    assert updated["after"]["pricing_plan"] == "enterprise"
    assert updated["after"]["ltv"] == Decimal("99999.99")
    assert deleted["after"] is None
    # Without REPLICA IDENTITY FULL, a delete's `before` holds the key columns only.
    assert deleted["before"]["id"] == 1 and deleted["before"]["email"] is None

    types = field_types(values[0].schema, "Value")
    _record("envelope Value", types)
    _record("key", field_types(decode(schema_registry, _key(messages[0])).schema, "Key"))
    assert types["created_at"] == {
        "type": "string",
        "connect.version": 1,
        "connect.name": "io.debezium.time.ZonedTimestamp",
    }
    assert types["signup_date"]["type"] == "int"
    assert types["signup_date"]["connect.name"] == "io.debezium.time.Date"
    assert types["last_login_at"]["type"] == "long"
    assert types["last_login_at"]["connect.name"] == "io.debezium.time.MicroTimestamp"
    assert types["ltv"]["type"] == "bytes"
    assert types["ltv"]["logicalType"] == "decimal"
    assert (types["ltv"]["precision"], types["ltv"]["scale"]) == (12, 2)
    assert types["ltv"]["connect.name"] == "org.apache.kafka.connect.data.Decimal"


def test_flattened_rows_mark_deletes(
    postgres: Postgres,
    create_connector: Callable[..., str],
    broker: Broker,
    schema_registry: Registry,
) -> None:
    """With ExtractNewRecordState (rewrite), each value is the row itself plus ``__op`` and
    ``__deleted`` (a string); a delete is its key columns with ``__deleted: "true"`` and no
    tombstone follows."""
    table = _table(postgres)
    topic = create_connector("flat", table, flatten=True)
    _changes(postgres, table)

    messages = consume(broker.bootstrap, topic, lambda got: len(got) >= 4)
    assert all(m.value is not None for m in messages), "rewrite mode writes no tombstone"
    rows = [decode(schema_registry, _value(m)).datum for m in messages]
    assert len(rows) == 4, messages
    assert [(r["id"], r["__op"], r["__deleted"]) for r in rows] == [
        (1, "r", "false"),
        (2, "c", "false"),
        (2, "u", "false"),
        (1, "d", "true"),
    ]
    assert rows[0]["ltv"] == Decimal("1234.50")
    assert rows[2]["pricing_plan"] == "enterprise"
    assert rows[3]["email"] is None
    types = field_types(decode(schema_registry, _value(messages[0])).schema, "Value")
    _record("flattened Value", types)
    assert types["__deleted"] == "string"
    assert types["__op"] == "string"


def _key(message: Message) -> bytes:
    assert message.key is not None, "every Debezium record of a table with a key has one"
    return message.key


def _value(message: Message) -> bytes:
    assert message.value is not None, "a tombstone where a row was expected"
    return message.value


def _record(what: str, types: dict[str, Any]) -> None:
    """Shown with ``pytest -s`` (and kept in the report on failure): the converter's types."""
    print(f"\n{what} field types:\n{json.dumps(types, indent=1, sort_keys=True)}")
