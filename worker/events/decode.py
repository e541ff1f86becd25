"""Kafka value bytes -> ``UserChange``. Pure apart from the registry lookup it is given (and
``FSUS_NO_EXTENSIONS``, read from the environment when a ``Decoder`` is built).

With a registry: Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro
body), decoded with the writer schema and resolved against the reader schema. Without:
Avro written with the local schema, without that 5-byte header or with one whose schema id the
operator declared for the local schema (``LOCAL_SCHEMA_IDS``): any other id is dead-lettered,
never read with a schema it was not written with. A record that can
never be decoded, or that breaks a rule of FullStory's (``rules``), raises
``InvalidRecord``; a registry outage raises ``RegistryUnavailable``.

The datum read is the ``UserChange`` itself (no copy into other objects: this runs for every
record). Schemas are read without their logical types, so ``changed_at`` stays integer millis
instead of becoming a datetime, another cost on every record.

Who reads: bodies written with the reader schema itself (every local value, and registry values
whose writer schema is the same) go to the compiled reader of
``worker/events/_user_change.c``, about 0.7 us a record against fastavro's 5; anything else,
and everything when that module was not built or ``FSUS_NO_EXTENSIONS`` is on, to fastavro
(``readers.py`` chooses, once per schema: the local schema when the decoder is built, a
writer schema when its id is first seen). Both read valid bodies to the same dict
(``tests/unit/events/test_user_change_reader.py``).
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Callable, Collection, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from worker.errors import DeadLetterCode, InvalidRecord
from worker.events.change import Delete, Event, UserChange
from worker.events.readers import (
    Read,
    ReadBody,
    Reader,
    ReaderChoice,
    Why,
    choose_local,
    record_reader,
)
from worker.events.rules import Rules
from worker.records import Message

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "user_change.avsc"
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


def read_exactly(body: bytes, read: Read) -> Any:
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
        *,
        environ: Mapping[str, str] | None = None,
        on_reader: Callable[[ReaderChoice], None] | None = None,
    ) -> None:
        """``reader_schema``: the schema JSON; ``writer_schema(id)``: a parsed schema read
        without logical types (``without_logical_types``); ``rules``: FullStory's rules each
        decoded event is checked against (``PropertyTypes.V2`` when not given);
        ``local_schema_ids``: without a registry, the wire-format schema ids written with the
        local schema;
        ``environ``: where ``FSUS_NO_EXTENSIONS`` is read (``os.environ`` when not given);
        ``on_reader``: with a registry, told which reader reads each writer schema when its id
        is first seen (or seen with another schema), never per record; the local schema's is
        ``local_reader``."""
        self._local = fastavro.parse_schema(without_logical_types(reader_schema))
        self._compiled, self.local_reader = choose_local(
            self._local, os.environ if environ is None else environ
        )
        self._on_reader = on_reader
        read = record_reader(self._local)
        self._read_local: ReadBody = self._compiled or partial(read_exactly, read=read)
        # Registry mode: how each writer schema's bodies are read, by schema id.
        self._by_id: dict[int, tuple[Any, ReadBody]] = {}
        self._writer_schema = writer_schema
        self._rules = rules or Rules()
        self._check = self._rules.check
        self._local_ids = frozenset(local_schema_ids)

    @property
    def reader(self) -> Reader:
        """Which reader decodes bodies written with the reader schema: "compiled" or
        "fastavro" (logged at start-up: a backlog decodes about five times slower with the
        second); ``local_reader`` says why."""
        return self.local_reader.reader

    def read(self, message: Message) -> Event:
        """The event a consumed record carries: its change, or, for a tombstone whose key is
        a uid (UTF-8, as the worker's own producers key records), that user's ``Delete``."""
        value = message.value()
        if value is None:
            return self._tombstone(message.key())
        return self.decode(value)

    def _tombstone(self, key: bytes | None) -> Delete:
        try:
            uid = key.decode("utf-8") if key else ""
        except UnicodeDecodeError:
            raise InvalidRecord(
                DeadLetterCode.TOMBSTONE, "record has no value, and its key is not a UTF-8 uid"
            ) from None
        if not uid or uid.isspace():
            raise InvalidRecord(DeadLetterCode.TOMBSTONE, "record has no value and no uid key")
        try:
            self._rules.check_uid(uid, deleting=True)
        except InvalidRecord as exc:
            raise InvalidRecord(
                DeadLetterCode.TOMBSTONE,
                f"record has no value, and its key is no uid: {exc.message}",
            ) from None
        return Delete(uid)

    def decode(self, value: bytes | None) -> UserChange:
        if value is None:
            raise InvalidRecord(DeadLetterCode.TOMBSTONE, "record has no value")
        if self._writer_schema is not None:
            change: UserChange = self._decode_registry(value, self._writer_schema)
        else:
            change = self._decode_local(value)
        uid = change["uid"]
        if not uid or uid.isspace():
            raise InvalidRecord(DeadLetterCode.EMPTY_UID, "uid is empty or only white space")
        return self._check(change)

    def _decode_registry(self, value: bytes, writer_schema: Callable[[int], Any]) -> Any:
        if len(value) < _HEADER.size or value[0] != 0:
            raise InvalidRecord(
                DeadLetterCode.NOT_WIRE_FORMAT, "value lacks the Confluent wire-format header"
            )
        _, schema_id = _HEADER.unpack_from(value)
        read = self._writer_reader(schema_id, writer_schema(schema_id))
        try:
            return read(value[_HEADER.size :])
        except Exception as exc:  # fastavro raises many types on bad bytes
            raise InvalidRecord(
                DeadLetterCode.UNDECODABLE, f"Avro body does not match schema id {schema_id}: {exc}"
            ) from exc

    def _writer_reader(self, schema_id: int, writer: Any) -> ReadBody:
        """How bodies written with ``writer`` are read into the reader schema: like local
        bodies when it is the reader schema itself (no resolution to do), else resolved by
        fastavro. Kept per schema id, as long as the registry hands out the same schema."""
        known = self._by_id.get(schema_id)
        if known is not None and known[0] is writer:
            return known[1]
        same = _same_schema(writer, self._local)
        read: ReadBody
        if same and self._compiled is not None:
            choice = ReaderChoice(Reader.COMPILED, Why.SAME_AS_READER, schema_id)
            read = self._compiled
        else:  # fastavro resolves it (a copy of the reader schema: for the local reason)
            choice = ReaderChoice(
                Reader.FASTAVRO, self.local_reader.why if same else Why.RESOLVED, schema_id
            )
            read = partial(
                read_exactly,
                read=lambda stream: fastavro.schemaless_reader(stream, writer, self._local),
            )
        if len(self._by_id) >= _READERS_MAX:
            self._by_id.clear()
        self._by_id[schema_id] = (writer, read)
        if self._on_reader is not None:
            self._on_reader(choice)
        return read

    def _decode_local(self, value: bytes) -> Any:
        # A plain Avro body starts with 0 only when its uid is empty (never imported: it is
        # read as such when it can be, for its reason), so a leading 0 is otherwise the
        # wire-format header, and its schema id must be the local schema's. A value that
        # reads both ways is neither trusted nor imported.
        if value[:1] == b"\x00" and len(value) >= _HEADER.size:
            _, schema_id = _HEADER.unpack_from(value)
            if schema_id not in self._local_ids:
                try:
                    return self._read_local(value)  # an empty uid
                except Exception:  # fastavro raises many types on bad bytes
                    pass
                raise InvalidRecord(
                    DeadLetterCode.UNDECLARED_SCHEMA_ID,
                    f"value has the wire-format header of schema id {schema_id}, not one "
                    "LOCAL_SCHEMA_IDS declares for the local schema (no SCHEMA_REGISTRY_URL)",
                )
            try:
                self._read_local(value)
            except Exception:  # not a plain body: the header is what it looks like
                value = value[_HEADER.size :]
            else:
                raise InvalidRecord(
                    DeadLetterCode.AMBIGUOUS_SCHEMA_ID,
                    f"value reads both as plain Avro (an empty uid) and as the wire format of "
                    f"declared schema id {schema_id}: which one it is cannot be told",
                )
        try:
            return self._read_local(value)
        except Exception as exc:  # fastavro raises many types on bad bytes
            raise InvalidRecord(
                DeadLetterCode.UNDECODABLE, f"value is not Avro of the local schema: {exc}"
            ) from exc


_READERS_MAX = 1_000  # schema ids remembered; a registry holds a few per subject


def _same_schema(a: Any, b: Any) -> bool:
    try:
        return bool(to_parsing_canonical_form(a) == to_parsing_canonical_form(b))
    except Exception:  # a schema fastavro cannot put in canonical form: resolve it
        return False
