"""A table column, as Debezium's Avro converter writes it, -> a FullStory property value. Pure.

Debezium marks its time types by the field's ``connect.name`` on a plain ``long``/``int``/
``string``; Connect's own types (``Decimal``, ``Date``, ``Timestamp``) carry an Avro
``logicalType`` too (``../shared/docs/debezium.md``). The worker reads writer schemas without
their logical types, so every value arrives as its plain Avro type (a decimal as its unscaled
bytes) and is converted here, by what the schema says the column is:

- Debezium ``Timestamp`` (ms), ``MicroTimestamp`` (µs), ``NanoTimestamp`` (ns, kept to the
  µs) and Connect ``Timestamp`` (ms): ``date``, ISO-8601 in UTC;
- Debezium ``ZonedTimestamp`` (an ISO-8601 string): ``date``, as written;
- Debezium ``Date`` and Connect ``Date`` (days since the epoch): ``date``, ``YYYY-MM-DD``;
- Connect ``Decimal`` (unscaled bytes and ``scale``), Debezium ``VariableScaleDecimal``:
  ``real``;
- Avro ``int``, ``long``: ``int``; ``float``, ``double``: ``real``; ``boolean``: ``bool``;
  ``string``, ``enum``: ``str``.

Timestamps without a zone (Debezium's ``Timestamp`` family) are the database's wall clock,
sent as UTC. Any other column type (bytes without a scale, arrays, maps, nested records,
``Time``) raises ``ColumnError`` naming the column when the schema is read, never per record.
A value the type cannot hold (a date past year 9999, a malformed zoned timestamp) raises
``ValueError`` when converted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from worker.events.merge import DateStr

Value = bool | int | float | str
Convert = Callable[[Any], Value]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)
DEBEZIUM_TIME = "io.debezium.time."
CONNECT_DATA = "org.apache.kafka.connect.data."


class ColumnError(ValueError):
    """A column whose type the worker cannot send to FullStory; the message names it."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str  # FullStory's declared type: str, int, real, bool, date
    convert: Convert  # the decoded Avro value (never None) -> the property value

    def value(self, raw: Any) -> Value | None:
        """The property value of ``raw``; None for a NULL column."""
        return None if raw is None else self.convert(raw)


def column(field: Mapping[str, Any]) -> Column:
    """The column of one field of a row's Avro record schema (its JSON)."""
    name = str(field.get("name", "?"))
    schema = _not_null(field.get("type"), name)
    if isinstance(schema, str):
        schema = {"type": schema}
    if not isinstance(schema, Mapping):
        raise ColumnError(f"column {name!r}: unsupported type {schema!r}")
    connect = str(schema.get("connect.name", ""))
    avro = schema.get("type")
    found = _BY_CONNECT_NAME.get(connect)
    # Another time or Connect type (Time, MicroTime, Interval, ...) is refused rather than sent
    # as the number it is written as; other names (Json, Uuid, ...) go as their Avro type.
    if found is None and not connect.startswith((DEBEZIUM_TIME, CONNECT_DATA)):
        found = _BY_AVRO_TYPE.get(str(avro))
    if found is None:
        raise ColumnError(f"column {name!r}: unsupported type {connect or avro!r}")
    kind, make = found
    return Column(name, kind, make(schema))


def _not_null(avro: Any, name: str) -> Any:
    """The type of a nullable column (``["null", T]``); a union of two real types is refused."""
    if not isinstance(avro, list):
        return avro
    branches = [b for b in avro if b != "null"]
    if len(branches) != 1:
        raise ColumnError(f"column {name!r}: a union of {avro!r} is not a column type")
    return branches[0]


def _iso(moment: datetime) -> DateStr:
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return DateStr(text.replace("+00:00", "Z"))


def _since_epoch(unit_us: float) -> Callable[[Mapping[str, Any]], Convert]:
    def make(_schema: Mapping[str, Any]) -> Convert:
        def convert(raw: Any) -> Value:
            try:
                return _iso(_EPOCH + timedelta(microseconds=int(raw) * unit_us))
            except OverflowError as exc:
                raise ValueError(f"timestamp {raw} is out of range") from exc

        return convert

    return make


def _nanos(_schema: Mapping[str, Any]) -> Convert:
    def convert(raw: Any) -> Value:
        try:
            return _iso(_EPOCH + timedelta(microseconds=int(raw) // 1000))
        except OverflowError as exc:
            raise ValueError(f"timestamp {raw} is out of range") from exc

    return convert


def _days(_schema: Mapping[str, Any]) -> Convert:
    def convert(raw: Any) -> Value:
        try:
            return DateStr((_EPOCH_DAY + timedelta(days=int(raw))).isoformat())
        except OverflowError as exc:
            raise ValueError(f"date {raw} is out of range") from exc

    return convert


def _zoned(_schema: Mapping[str, Any]) -> Convert:
    def convert(raw: Any) -> Value:
        text = str(raw)
        datetime.fromisoformat(text)  # ValueError for anything that is not ISO-8601
        return DateStr(text)

    return convert


def _decimal(schema: Mapping[str, Any]) -> Convert:
    scale = schema.get("scale")
    if scale is None:
        parameters = schema.get("connect.parameters") or {}
        scale = parameters.get("scale", 0) if isinstance(parameters, Mapping) else 0
    exponent = -int(scale)

    def convert(raw: Any) -> Value:
        return _unscaled(raw, exponent)

    return convert


def _variable_decimal(_schema: Mapping[str, Any]) -> Convert:
    def convert(raw: Any) -> Value:
        return _unscaled(raw["value"], -int(raw["scale"]))

    return convert


def _unscaled(raw: bytes, exponent: int) -> float:
    """A decimal as Connect writes it: big-endian two's complement, times 10**exponent."""
    unscaled = int.from_bytes(raw, "big", signed=True)
    return float(Decimal(unscaled).scaleb(exponent))


def _plain(cast: Callable[[Any], Value]) -> Callable[[Mapping[str, Any]], Convert]:
    return lambda _schema: cast


_BY_CONNECT_NAME: dict[str, tuple[str, Callable[[Mapping[str, Any]], Convert]]] = {
    f"{DEBEZIUM_TIME}Timestamp": ("date", _since_epoch(1000)),
    f"{DEBEZIUM_TIME}MicroTimestamp": ("date", _since_epoch(1)),
    f"{DEBEZIUM_TIME}NanoTimestamp": ("date", _nanos),
    f"{DEBEZIUM_TIME}ZonedTimestamp": ("date", _zoned),
    f"{DEBEZIUM_TIME}Date": ("date", _days),
    f"{CONNECT_DATA}Timestamp": ("date", _since_epoch(1000)),
    f"{CONNECT_DATA}Date": ("date", _days),
    f"{CONNECT_DATA}Decimal": ("real", _decimal),
    "io.debezium.data.VariableScaleDecimal": ("real", _variable_decimal),
}
_BY_AVRO_TYPE: dict[str, tuple[str, Callable[[Mapping[str, Any]], Convert]]] = {
    "int": ("int", _plain(int)),
    "long": ("int", _plain(int)),
    "float": ("real", _plain(float)),
    "double": ("real", _plain(float)),
    "boolean": ("bool", _plain(bool)),
    "string": ("str", _plain(str)),
    "enum": ("str", _plain(str)),
}
