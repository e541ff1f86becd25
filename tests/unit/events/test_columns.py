"""Debezium's column types -> FullStory property values (``worker/events/columns.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.events.columns import ColumnError, column
from worker.events.merge import declared_type

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DBZ = "io.debezium.time."
CONNECT = "org.apache.kafka.connect.data."


def field(avro: Any, name: str = "c", nullable: bool = True) -> dict[str, Any]:
    """A row field as Debezium's Avro converter writes it (nullable: a union with null)."""
    return {"name": name, "type": ["null", avro] if nullable else avro, "default": None}


def timed(avro: str, connect: str, **extra: Any) -> dict[str, Any]:
    return {"type": avro, "connect.version": 1, "connect.name": connect, **extra}


DECIMAL = timed(
    "bytes",
    f"{CONNECT}Decimal",
    scale=2,
    precision=10,
    logicalType="decimal",
    **{"connect.parameters": {"scale": "2", "connect.decimal.precision": "10"}},
)
TS_MS = timed("long", f"{DBZ}Timestamp")
TS_US = timed("long", f"{DBZ}MicroTimestamp")
TS_NS = timed("long", f"{DBZ}NanoTimestamp")
ZONED = timed("string", f"{DBZ}ZonedTimestamp")
DAYS = timed("int", f"{DBZ}Date")
CONNECT_TS = timed("long", f"{CONNECT}Timestamp", logicalType="timestamp-millis")
CONNECT_DATE = timed("int", f"{CONNECT}Date", logicalType="date")
NOON = "2023-11-14T22:13:20"
VARIABLE = {
    "type": "record",
    "name": "VariableScaleDecimal",
    "namespace": "io.debezium.data",
    "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
    "connect.name": "io.debezium.data.VariableScaleDecimal",
}


@pytest.mark.parametrize(
    ("avro", "raw", "kind", "value"),
    [
        (TS_MS, 1_700_000_000_123, "date", f"{NOON}.123000Z"),
        (TS_US, 1_700_000_000_123_456, "date", f"{NOON}.123456Z"),
        (TS_NS, 1_700_000_000_123_456_789, "date", f"{NOON}.123456Z"),
        (TS_US, 0, "date", "1970-01-01T00:00:00Z"),
        (TS_US, -1, "date", "1969-12-31T23:59:59.999999Z"),
        (ZONED, f"{NOON}.5+01:00", "date", f"{NOON}.5+01:00"),
        (DAYS, 19_675, "date", "2023-11-14"),
        (DAYS, -1, "date", "1969-12-31"),
        (CONNECT_TS, 1_700_000_000_000, "date", f"{NOON}Z"),
        (CONNECT_DATE, 19_675, "date", "2023-11-14"),
        (DECIMAL, (12345).to_bytes(2, "big", signed=True), "real", 123.45),
        (DECIMAL, (-5).to_bytes(1, "big", signed=True), "real", -0.05),
        (VARIABLE, {"scale": 3, "value": (1500).to_bytes(2, "big", signed=True)}, "real", 1.5),
        ("int", 7, "int", 7),
        ("long", -(2**63), "int", -(2**63)),
        ("float", 1.5, "real", 1.5),
        ("double", 2.25, "real", 2.25),
        ("boolean", False, "bool", False),
        ("string", "pro", "str", "pro"),
        (timed("string", "io.debezium.data.Json"), '{"a": 1}', "str", '{"a": 1}'),
        ({"type": "enum", "name": "Plan", "symbols": ["FREE", "PRO"]}, "PRO", "str", "PRO"),
    ],
    ids=[
        "timestamp-ms", "timestamp-us", "timestamp-ns", "epoch", "before-epoch", "zoned",
        "date", "date-before-epoch", "connect-timestamp", "connect-date", "decimal",
        "negative-decimal", "variable-scale-decimal", "int", "long-min", "float", "double",
        "boolean", "string", "json-as-string", "enum",
    ],
)  # fmt: skip
def test_each_column_type_becomes_its_fullstory_type_and_value(avro, raw, kind, value):
    """What the table's column holds reaches FullStory as the type a person would expect:
    timestamps and dates as dates (not numbers), NUMERIC as real, integers as int."""
    col = column(field(avro))
    assert col.kind == kind
    converted = col.value(raw)
    assert converted == value
    assert declared_type(converted) == kind  # how the merge will declare it in `schema`
    if kind == "date":
        datetime.fromisoformat(converted)  # FullStory's rule for a date (events/rules.py)


def test_a_null_column_is_none_and_a_not_null_column_reads_the_same():
    assert column(field("long")).value(None) is None
    assert column(field("long", nullable=False)).value(3) == 3


@pytest.mark.parametrize(
    "avro",
    [
        "bytes",
        {"type": "array", "items": "string"},
        {"type": "map", "values": "string"},
        {"type": "record", "name": "Address", "fields": []},
        timed("long", f"{DBZ}MicroTime"),
        timed("int", f"{CONNECT}Time", logicalType="time-millis"),
        ["string", "long"],
    ],
    ids=["bytes", "array", "map", "record", "micro-time", "connect-time", "two-type-union"],
)
def test_a_column_type_fullstory_cannot_take_is_refused_naming_the_column(avro):
    """Refused when the schema is read (once per writer schema), never per record, and
    never sent as the number a time of day is written as."""
    with pytest.raises(ColumnError, match="'signup_time'"):
        column({"name": "signup_time", "type": avro if isinstance(avro, list) else ["null", avro]})


@pytest.mark.parametrize(
    ("avro", "raw"),
    [
        (timed("long", f"{DBZ}MicroTimestamp"), 2**62),
        (timed("long", f"{DBZ}Timestamp"), -(2**62)),
        (timed("int", f"{DBZ}Date"), 10**8),
        (timed("string", f"{DBZ}ZonedTimestamp"), "yesterday"),
    ],
    ids=["far-future", "far-past", "date-past-9999", "not-iso"],
)
def test_a_value_its_type_cannot_hold_is_a_value_error_not_a_crash(avro, raw):
    with pytest.raises(ValueError):
        column(field(avro)).value(raw)


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_micro_timestamps_in_range_read_back_to_the_same_instant(micros):
    """Every µs timestamp datetime can hold is sent exactly (to the µs), and parses back."""
    col = column(field(timed("long", f"{DBZ}MicroTimestamp")))
    try:
        text = col.value(micros)
    except ValueError:
        return  # outside datetime's years 1..9999
    assert datetime.fromisoformat(text) - EPOCH == timedelta(microseconds=micros)
