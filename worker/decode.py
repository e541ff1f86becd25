"""Kafka value bytes -> ``UserChange``. Pure apart from the registry lookup it is given.

With a registry: Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro
body), decoded with the writer schema and resolved against the reader schema. Without:
Avro written with the local schema, without that 5-byte header or with one whose schema id the
operator declared for the local schema (``LOCAL_SCHEMA_IDS``): any other id is dead-lettered,
never read with a schema it was not written with. A record that can
never be decoded, or that breaks a rule of FullStory's (``validate``), raises
``InvalidRecord``; a registry outage raises ``RetriableError``.

The datum fastavro returns is the ``UserChange`` itself (no copy into other objects: this
runs for every record). Schemas are read without their logical types, so ``changed_at``
stays integer millis instead of becoming a datetime, another cost on every record.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import fastavro

from worker.errors import InvalidRecord
from worker.records import UserChange
from worker.validate import Rules

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "user_change.avsc"
_HEADER = struct.Struct(">bI")


def load_reader_schema(path: Path = SCHEMA_PATH) -> Any:
    """The reader schema's JSON (``Decoder`` parses it)."""
    return json.loads(path.read_text())


def without_logical_types(schema: Any) -> Any:
    """The schema (JSON, not yet parsed) with its logical types dropped."""
    if isinstance(schema, dict):
        return {k: without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [without_logical_types(item) for item in schema]
    return schema


Read = Callable[[io.BytesIO], Any]


def record_reader(parsed: Any) -> Read:
    """How one record of the parsed schema is read (no schema resolution).

    fastavro's public ``schemaless_reader`` parses the schema again and builds two dicts on
    every call: a fifth of its time on a record this small (1 us of 5, measured). Its
    compiled ``_read_data``, which it calls, does not. That function is private, so it is used
    only when it exists and reads a probe record exactly as the public function does;
    otherwise (another fastavro, another schema) the public function is.
    """

    def public(stream: io.BytesIO) -> Any:
        return fastavro.schemaless_reader(stream, parsed, None)

    try:
        from fastavro._read import _read_data  # type: ignore[attr-defined]

        named: dict[str, dict[str, Any]] = {"writer": {}, "reader": {}}
        fastavro.parse_schema(parsed, named["writer"])
        options = {
            "return_record_name": False,
            "return_record_name_override": False,
            "handle_unicode_errors": "strict",
            "return_named_type": False,
            "return_named_type_override": False,
        }

        def direct(stream: io.BytesIO) -> Any:
            return _read_data(stream, parsed, named, None, options)

        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, _PROBE)
        probe = out.getvalue()
        if direct(io.BytesIO(probe)) != public(io.BytesIO(probe)):
            return public
    except Exception:  # not there, another signature, or another schema: the public one
        return public
    return direct


_PROBE = {
    "uid": "probe-é",
    "changed_at": 1_700_000_000_000,
    "display_name": "Probe",
    "email": None,
    "properties": {"n": 3, "r": 1.5, "s": "s", "b": True, "z": None},
}


def _read_exactly(body: bytes, read: Read) -> Any:
    stream = io.BytesIO(body)
    datum = read(stream)
    if stream.tell() != len(body):
        raise ValueError("trailing bytes after the Avro record")
    if not isinstance(datum, dict):
        raise ValueError("not an Avro record")
    return datum


class Decoder:
    """Decodes values; ``writer_schema`` fetches a schema by id (registry mode) or is None."""

    def __init__(
        self,
        reader_schema: Any,
        writer_schema: Callable[[int], Any] | None = None,
        rules: Rules | None = None,
        local_schema_ids: Collection[int] = (),
    ) -> None:
        """``reader_schema``: the schema JSON; ``writer_schema(id)``: a parsed schema read
        without logical types (``without_logical_types``); ``rules``: FullStory's rules each
        decoded event is checked against (v2 mode when not given); ``local_schema_ids``:
        without a registry, the wire-format schema ids written with the local schema."""
        self._local = fastavro.parse_schema(without_logical_types(reader_schema))
        self._read_local = record_reader(self._local)
        self._writer_schema = writer_schema
        self._check = (rules or Rules()).check
        self._local_ids = frozenset(local_schema_ids)

    def decode(self, value: bytes | None) -> UserChange:
        if value is None:
            raise InvalidRecord("tombstone", "record has no value")
        if self._writer_schema is not None:
            change: UserChange = self._decode_registry(value, self._writer_schema)
        else:
            change = self._decode_local(value)
        uid = change["uid"]
        if not uid or uid.isspace():
            raise InvalidRecord("empty_uid", "uid is empty or only white space")
        return self._check(change)

    def _decode_registry(self, value: bytes, writer_schema: Callable[[int], Any]) -> Any:
        if len(value) < _HEADER.size or value[0] != 0:
            raise InvalidRecord("not_wire_format", "value lacks the Confluent wire-format header")
        _, schema_id = _HEADER.unpack_from(value)
        writer = writer_schema(schema_id)
        try:
            return _read_exactly(
                value[_HEADER.size :],
                lambda stream: fastavro.schemaless_reader(stream, writer, self._local),
            )
        except Exception as exc:  # fastavro raises many types on bad bytes
            raise InvalidRecord(
                "undecodable", f"Avro body does not match schema id {schema_id}: {exc}"
            ) from exc

    def _decode_local(self, value: bytes) -> Any:
        # A plain Avro body starts with 0 only when its uid is empty (never imported: it is
        # read as such when it can be, for its reason), so a leading 0 is otherwise the
        # wire-format header, and its schema id must be the local schema's.
        if value[:1] == b"\x00" and len(value) >= _HEADER.size:
            _, schema_id = _HEADER.unpack_from(value)
            if schema_id not in self._local_ids:
                try:
                    return _read_exactly(value, self._read_local)  # an empty uid
                except Exception:  # fastavro raises many types on bad bytes
                    pass
                raise InvalidRecord(
                    "undeclared_schema_id",
                    f"value has the wire-format header of schema id {schema_id}, not one "
                    "LOCAL_SCHEMA_IDS declares for the local schema (no SCHEMA_REGISTRY_URL)",
                )
            value = value[_HEADER.size :]
        try:
            return _read_exactly(value, self._read_local)
        except Exception as exc:  # fastavro raises many types on bad bytes
            raise InvalidRecord(
                "undecodable", f"value is not Avro of the local schema: {exc}"
            ) from exc
