"""The field mapping (``FIELD_MAPPING``): a table row -> a ``UserChange``. Pure but for
``load_mapping``, which reads the file.

The file names, for each FullStory field and property, the column it comes from::

    {"uid": "id", "display_name": "full_name", "email": "email",
     "properties": {"plan": "pricing_plan", "signed_up": "created_at"}}

``uid`` is required, everything else optional; any other key is refused. It is checked at
start-up (``load_mapping``: ``ConfigError`` naming ``FIELD_MAPPING``, so the worker exits 2 with
one line), then against each row schema when its schema id is first seen (``RowMapper``: a
mapped column missing from the table, or of a type FullStory cannot take, is a
``MappingMismatch``; the records written with that schema are dead-lettered with its code).

A row is the whole row (Debezium's ``after`` image), so a mapped column that is NULL clears
its field or property in FullStory (``CLEAR``), where the canonical event's null leaves it as
it is. The exception is a column Debezium could not read: an unchanged TOASTed value (a long
text) of an update, without ``REPLICA IDENTITY FULL``, arrives as Debezium's placeholder
(``UNAVAILABLE``, its default ``unavailable.value.placeholder``); it is left as it is, never
sent as that text.

Values take the column's type (``events.columns``); a uid column that is a number is sent as
its decimal string. Every FullStory rule of the canonical event applies to the mapped
user (``events.rules``): the mapping's property names are checked once, here, and the values
of each row by ``Rules.check``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.config.choices import PropertyTypes
from worker.errors import ConfigError, DeadLetterCode, InvalidRecord
from worker.events.change import CLEAR, PropertyValue, UserChange
from worker.events.columns import Column, ColumnError, column
from worker.events.rules import PropertyNames, Rules

VARIABLE = "FIELD_MAPPING"
UNAVAILABLE = "__debezium_unavailable_value"  # Debezium's default unavailable.value.placeholder
MAPPING_MAX_BYTES = 1024 * 1024
_FIELDS = ("uid", "display_name", "email")
_KEYS = frozenset(_FIELDS) | {"properties"}


@dataclass(frozen=True, slots=True)
class FieldMapping:
    uid: str
    display_name: str | None = None
    email: str | None = None
    # (property name as the mapping writes it, column), in the file's order
    properties: tuple[tuple[str, str], ...] = ()

    def columns(self) -> list[str]:
        """Every column the mapping reads, the uid's first."""
        named = [self.uid, self.display_name, self.email, *(c for _, c in self.properties)]
        return list(dict.fromkeys(c for c in named if c is not None))


def load_mapping(path: Path, mode: PropertyTypes) -> FieldMapping:
    """The mapping in ``path``, checked; ``ConfigError`` (naming ``FIELD_MAPPING``) when the
    file cannot be read or is not a valid mapping."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAPPING_MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(VARIABLE, f"cannot read {str(path)!r}: {exc.strerror}") from None
    if len(raw) > MAPPING_MAX_BYTES:
        raise ConfigError(VARIABLE, f"{str(path)!r} is larger than {MAPPING_MAX_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(VARIABLE, f"{str(path)!r} is not JSON: {exc}") from None
    return parse_mapping(data, mode)


def parse_mapping(data: Any, mode: PropertyTypes) -> FieldMapping:
    if not isinstance(data, dict):
        raise ConfigError(VARIABLE, "must be a JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(
            VARIABLE, f"unknown key {unknown[0]!r} (known: uid, display_name, email, properties)"
        )
    if "uid" not in data:
        raise ConfigError(VARIABLE, "must map 'uid' to a column")
    fields = {name: _column_name(data.get(name), name) for name in _FIELDS if name in data}
    properties = data.get("properties", {})
    if not isinstance(properties, dict):
        raise ConfigError(VARIABLE, "'properties' must be an object of property: column")
    names = PropertyNames(mode)
    sent: dict[str, str] = {}
    for name, col in properties.items():
        _column_name(col, f"properties.{name}")
        try:
            as_sent, _suffix = names.lookup(name)
        except InvalidRecord as exc:
            raise ConfigError(VARIABLE, f"properties: {exc.message}") from None
        key = as_sent or name
        if key in sent:
            raise ConfigError(
                VARIABLE, f"properties {sent[key]!r} and {name!r} would both be sent as {key!r}"
            )
        sent[key] = name
    return FieldMapping(
        uid=fields["uid"],
        display_name=fields.get("display_name"),
        email=fields.get("email"),
        properties=tuple(properties.items()),
    )


def _column_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(VARIABLE, f"{what!r} must name a column (a non-empty string)")
    return value


class MappingMismatch(ColumnError):
    """A row schema the mapping cannot read; ``code`` is its records' dead-letter code."""

    def __init__(self, code: DeadLetterCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RowMapper:
    """The mapping applied to rows of one schema (a record schema's JSON, parsed by fastavro;
    ``named``: the schema's named types by full name, for a field that refers to one)."""

    def __init__(
        self,
        mapping: FieldMapping,
        row_schema: Mapping[str, Any],
        rules: Rules,
        named: Mapping[str, Any] | None = None,
    ) -> None:
        fields = {
            str(f.get("name")): f for f in row_schema.get("fields", ()) if isinstance(f, dict)
        }
        table = str(row_schema.get("name", "?"))
        self._rules = rules
        self._suffixed = rules.names.mode is PropertyTypes.SUFFIXED
        self._uid = self._column(fields, mapping.uid, "uid", table, named, ("int", "str"))
        self._display_name = self._optional(fields, mapping.display_name, table, named)
        self._email = self._optional(fields, mapping.email, table, named)
        self._properties: list[tuple[str, Column]] = []
        mapped_as: dict[str, str] = {}  # name as sent -> the mapping's name
        for name, col in mapping.properties:
            found = self._column(fields, col, f"property {name!r}", table, named, None)
            sent = self._sent_name(name, found)
            # In suffixed mode ``plan`` on a text column is ``plan_str``: parse_mapping cannot
            # see that collision, the column's type decides it.
            if sent in mapped_as:
                raise MappingMismatch(
                    DeadLetterCode.UNSUPPORTED_COLUMN,
                    f"properties {mapped_as[sent]!r} and {name!r} would both be sent as "
                    f"{sent!r} (column {found.name!r} holds {found.kind})",
                )
            mapped_as[sent] = name
            self._properties.append((sent, found))
        self.columns = tuple(mapping.columns())

    def _optional(
        self,
        fields: Mapping[str, Any],
        name: str | None,
        table: str,
        named: Mapping[str, Any] | None,
    ) -> Column | None:
        if name is None:
            return None
        return self._column(fields, name, f"column {name!r}", table, named, ("str",))

    @staticmethod
    def _column(
        fields: Mapping[str, Any],
        name: str,
        what: str,
        table: str,
        named: Mapping[str, Any] | None,
        kinds: tuple[str, ...] | None,
    ) -> Column:
        field = fields.get(name)
        if field is None:
            raise MappingMismatch(
                DeadLetterCode.MAPPED_COLUMN_MISSING,
                f"{table} has no column {name!r} (FIELD_MAPPING maps {what} to it)",
            )
        if named and isinstance(field.get("type"), (str, list)):
            field = {**field, "type": _resolved(field["type"], named)}
        try:
            found = column(field)
        except ColumnError as exc:
            raise MappingMismatch(DeadLetterCode.UNSUPPORTED_COLUMN, f"{table}: {exc}") from None
        if kinds is not None and found.kind not in kinds:
            raise MappingMismatch(
                DeadLetterCode.UNSUPPORTED_COLUMN,
                f"{table}: column {name!r} holds {found.kind}, {what} needs {' or '.join(kinds)}",
            )
        return found

    def _sent_name(self, name: str, found: Column) -> str:
        """The name the rules see: in ``suffixed`` mode with its type suffix (from the
        column when the mapping wrote none), so a NULL, which has no type, clears the right
        property. A suffix the column's type cannot match is refused here, not per row."""
        _sent, suffix = self._rules.names.lookup(name)
        if suffix is not None and suffix != found.kind and (suffix, found.kind) != ("real", "int"):
            raise MappingMismatch(
                DeadLetterCode.UNSUPPORTED_COLUMN,
                f"property {name!r} has the suffix {suffix}, its column "
                f"{found.name!r} holds {found.kind}",
            )
        if self._suffixed and suffix is None:
            return f"{name}_{found.kind}"
        return name

    def uid(self, row: Mapping[str, Any]) -> str:
        """The row's uid as sent; ``empty_uid`` when the column is NULL or blank."""
        value = self._value(self._uid, row)
        uid = "" if value is None else str(value)
        if not uid or uid.isspace():
            raise InvalidRecord(
                DeadLetterCode.EMPTY_UID, f"uid column {self._uid.name!r} is NULL or blank"
            )
        return uid

    def key(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The row's mapped columns as decoded: equal keys map to the same user."""
        return tuple(row.get(c) for c in self.columns)

    def change(self, row: Mapping[str, Any], changed_at: int = 0) -> UserChange:
        """The user the row maps to, checked by FullStory's rules; NULL columns ``CLEAR``."""
        display_name = _available(self._display_name, row)
        email = _available(self._email, row)
        properties: dict[str, PropertyValue] = {
            name: self._value(col, row)
            for name, col in self._properties
            if _available(col, row) is not None
        }
        change: UserChange = {
            "uid": self.uid(row),
            "changed_at": changed_at,
            "display_name": self._text(display_name, row),
            "email": self._text(email, row),
            "properties": properties,
        }
        change = self._rules.check(change)
        if display_name is not None and change["display_name"] is None:
            change["display_name"] = CLEAR
        if email is not None and change["email"] is None:
            change["email"] = CLEAR
        checked = change["properties"]
        for name, value in checked.items():
            if value is None:
                checked[name] = CLEAR
        return change

    def _text(self, col: Column | None, row: Mapping[str, Any]) -> str | None:
        if col is None:
            return None
        value = self._value(col, row)
        return None if value is None else str(value)

    @staticmethod
    def _value(col: Column, row: Mapping[str, Any]) -> Any:
        try:
            return col.value(row.get(col.name))
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidRecord(DeadLetterCode.UNDECODABLE, f"column {col.name!r}: {exc}") from exc


def _available(col: Column | None, row: Mapping[str, Any]) -> Column | None:
    """The column, unless the row holds Debezium's placeholder for a value it could not read."""
    if col is None or row.get(col.name) == UNAVAILABLE:
        return None
    return col


def _resolved(avro: Any, named: Mapping[str, Any]) -> Any:
    """A field type with a reference to a named type (``"Value"``) replaced by its schema."""
    if isinstance(avro, list):
        return [_resolved(branch, named) for branch in avro]
    if isinstance(avro, str) and avro in named:
        return named[avro]
    return avro
