"""Debezium change events of a users table -> events (``SOURCE_FORMAT=debezium``). Pure apart
from the registry lookup it is given.

Values are Confluent wire format; each writer schema (fetched by id, read without logical
types) is read by fastavro as it was written, with no reader schema to resolve against: a
table's schema is the table's, not ours. When a schema id is first seen its shape is found
and the field mapping applied to its row schema (``events.mapping.RowMapper``), once:

* the raw envelope (``before``, ``after``, ``op``): ``c``, ``r``, ``u`` upsert the ``after``
  row, an update whose ``before`` maps to the same user is ``Skip.UNCHANGED``; ``d`` deletes
  the uid of its ``before`` row; ``t`` and ``m`` are skipped;
* the flattened row of ``ExtractNewRecordState``: upserted, or deleted when ``__deleted`` is
  ``"true"`` (``delete.tombstone.handling.mode=rewrite``) or ``__op`` is ``d``;
* a PostgreSQL logical-decoding message (``op`` ``m`` with ``message``, no row images; it has
  a schema of its own, ``MessageValue``, reaching this topic when routed here): skipped.

A delete that is the first half of a primary-key change (header ``__debezium.newkey``) is
``Skip.KEY_CHANGE``: the ``c`` under the new key upserts the new uid. A tombstone (no value)
is ``Skip.TOMBSTONE``: the ``d`` before it carried the delete. A schema the mapping cannot read
is reported once (``on_problem``) and its records raise ``InvalidRecord`` with the mismatch's
code; a registry outage raises ``RegistryUnavailable``, as in ``decode``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, auto
from functools import partial
from typing import Any

import fastavro

from worker.errors import DeadLetterCode, InvalidRecord
from worker.events.change import Delete, Event, Skip, Skipped
from worker.events.decode import read_exactly
from worker.events.mapping import FieldMapping, MappingMismatch, RowMapper
from worker.events.readers import ReadBody, Reader, ReaderChoice, Why
from worker.events.rules import Rules
from worker.records import Message

_HEADER = struct.Struct(">bI")
_SCHEMAS_MAX = 1_000  # schema ids remembered; a table has a few
NEW_KEY_HEADER = "__debezium.newkey"

UNCHANGED = Skipped(Skip.UNCHANGED)
KEY_CHANGE = Skipped(Skip.KEY_CHANGE)
TOMBSTONE = Skipped(Skip.TOMBSTONE)
TRUNCATE = Skipped(Skip.TRUNCATE)
MESSAGE = Skipped(Skip.MESSAGE)


class _Form(Enum):
    ENVELOPE = auto()  # before, after, op
    ROW = auto()  # a flattened row
    MESSAGE = auto()  # a logical-decoding message: op, message; no row to map


@dataclass(frozen=True, slots=True)
class _Shape:
    """How the records of one writer schema are read and mapped."""

    writer: Any
    read: ReadBody
    form: _Form
    mapper: RowMapper | None  # None: a message, or ``problem`` says why the mapping cannot
    problem: InvalidRecord | None = None


class DebeziumDecoder:
    def __init__(
        self,
        mapping: FieldMapping,
        writer_schema: Callable[[int], Any],
        rules: Rules | None = None,
        *,
        on_problem: Callable[[int, str], None] | None = None,
        on_reader: Callable[[ReaderChoice], None] | None = None,
    ) -> None:
        """``writer_schema(id)``: a parsed schema read without logical types (the registry's);
        ``on_problem(schema_id, message)``: told once per schema id the mapping cannot read;
        ``on_reader``: told the reader of each schema id when it is first seen."""
        self._mapping = mapping
        self._writer_schema = writer_schema
        self._rules = rules or Rules()
        self._on_problem = on_problem
        self._on_reader = on_reader
        self._shapes: dict[int, _Shape] = {}

    def read(self, message: Message) -> Event:
        value = message.value()
        if value is None:
            return TOMBSTONE
        if len(value) < _HEADER.size or value[0] != 0:
            raise InvalidRecord(
                DeadLetterCode.NOT_WIRE_FORMAT, "value lacks the Confluent wire-format header"
            )
        _, schema_id = _HEADER.unpack_from(value)
        shape = self._shape(schema_id, self._writer_schema(schema_id))
        if shape.problem is not None:  # a new exception a record: a raised one keeps its frames
            raise InvalidRecord(shape.problem.code, shape.problem.message)
        try:
            datum = shape.read(value[_HEADER.size :])
        except Exception as exc:  # fastavro raises many types on bad bytes
            raise InvalidRecord(
                DeadLetterCode.UNDECODABLE, f"Avro body does not match schema id {schema_id}: {exc}"
            ) from exc
        if shape.form is _Form.MESSAGE:
            if datum.get("op") == "m":
                return MESSAGE
            op = str(datum.get("op"))[:16]
            raise InvalidRecord(DeadLetterCode.UNKNOWN_OP, f"a message whose op {op!r} is not m")
        mapper = shape.mapper
        assert mapper is not None  # a row shape without a problem has one
        if shape.form is _Form.ENVELOPE:
            return self._envelope(datum, mapper, message)
        return self._flattened(datum, mapper, message)

    def _envelope(self, datum: dict[str, Any], mapper: RowMapper, message: Message) -> Event:
        op = datum.get("op")
        if op in ("c", "r", "u"):
            after = datum.get("after")
            if not isinstance(after, dict):
                raise InvalidRecord(
                    DeadLetterCode.NOT_A_CHANGE_EVENT, f"op {op} carries no after image"
                )
            if op == "u":
                before = datum.get("before")
                if isinstance(before, dict) and mapper.key(before) == mapper.key(after):
                    return UNCHANGED
            return mapper.change(after, _changed_at(datum))
        if op == "d":
            if _has_header(message, NEW_KEY_HEADER):
                return KEY_CHANGE
            return Delete(self._deleted_uid(datum.get("before"), mapper))
        if op == "t":
            return TRUNCATE
        if op == "m":
            return MESSAGE
        raise InvalidRecord(
            DeadLetterCode.UNKNOWN_OP, f"op {str(op)[:16]!r} is not c, u, d, r, t or m"
        )

    def _flattened(self, row: dict[str, Any], mapper: RowMapper, message: Message) -> Event:
        op = row.get("__op")
        if row.get("__deleted") == "true" or op == "d":
            if _has_header(message, NEW_KEY_HEADER):
                return KEY_CHANGE
            return Delete(self._deleted_uid(row, mapper))
        if op == "t":
            return TRUNCATE
        if op == "m":
            return MESSAGE
        return mapper.change(row, _changed_at(row))

    def _deleted_uid(self, row: object, mapper: RowMapper) -> str:
        """The uid of a deleted row (its ``before`` image), checked as any uid is."""
        try:
            if not isinstance(row, dict):
                raise InvalidRecord(DeadLetterCode.EMPTY_UID, "no before image")
            uid = mapper.uid(row)
        except InvalidRecord as exc:
            raise InvalidRecord(
                DeadLetterCode.DELETE_WITHOUT_UID,
                f"a delete whose before image has no uid ({exc.message}): map uid to the "
                "primary key, or set REPLICA IDENTITY FULL on the table",
            ) from exc
        return self._rules.check_uid(uid, deleting=True)

    def _shape(self, schema_id: int, writer: Any) -> _Shape:
        known = self._shapes.get(schema_id)
        if known is not None and known.writer is writer:
            return known
        read: ReadBody = partial(
            read_exactly, read=lambda stream: fastavro.schemaless_reader(stream, writer, None)
        )
        form, mapper, problem = _Form.ROW, None, None
        try:
            form, row = _row_schema(writer)
            if row is not None:
                mapper = RowMapper(self._mapping, row, self._rules, _named(writer))
        except MappingMismatch as exc:
            problem = InvalidRecord(exc.code, f"schema id {schema_id}: {exc.message}")
        except InvalidRecord as exc:
            problem = InvalidRecord(exc.code, f"schema id {schema_id}: {exc.message}")
        shape = _Shape(writer, read, form, mapper, problem)
        if len(self._shapes) >= _SCHEMAS_MAX:
            self._shapes.clear()
        self._shapes[schema_id] = shape
        if problem is not None and self._on_problem is not None:
            self._on_problem(schema_id, problem.message)
        if self._on_reader is not None:
            self._on_reader(ReaderChoice(Reader.FASTAVRO, Why.TABLE_SCHEMA, schema_id))
        return shape


def _row_schema(writer: Any) -> tuple[_Form, Mapping[str, Any] | None]:
    """(the form of a writer schema's records, the row's record schema: None for messages)."""
    if not isinstance(writer, dict) or writer.get("type") != "record":
        raise InvalidRecord(DeadLetterCode.NOT_A_CHANGE_EVENT, "the value is not an Avro record")
    fields = {f.get("name"): f for f in writer.get("fields", ()) if isinstance(f, dict)}
    if {"op", "message"} <= fields.keys() and not {"before", "after"} & fields.keys():
        return _Form.MESSAGE, None
    if not {"before", "after", "op"} <= fields.keys():
        return _Form.ROW, writer
    named = _named(writer)
    for name in ("after", "before"):
        branches = fields[name].get("type")
        for branch in branches if isinstance(branches, list) else [branches]:
            found = named.get(branch) if isinstance(branch, str) else branch
            if isinstance(found, dict) and found.get("type") == "record":
                return _Form.ENVELOPE, found
    raise InvalidRecord(
        DeadLetterCode.NOT_A_CHANGE_EVENT, "an envelope whose before and after are not records"
    )


def _named(writer: Any) -> Mapping[str, Any]:
    named = writer.get("__named_schemas") if isinstance(writer, dict) else None
    return named if isinstance(named, dict) else {}


def _changed_at(datum: Mapping[str, Any]) -> int:
    source = datum.get("source")
    ts = source.get("ts_ms") if isinstance(source, dict) else datum.get("__source_ts_ms")
    return ts if isinstance(ts, int) else 0


def _has_header(message: Message, name: str) -> bool:
    headers = message.headers()
    if not headers:
        return False
    items = headers.keys() if isinstance(headers, dict) else (k for k, _ in headers)
    return any(key == name for key in items)
