"""Which reader reads the Avro bodies of a schema: the compiled reader or fastavro, chosen
once per schema, never per record (``decode.Decoder`` asks when it is built and when a registry
schema id is first seen).

The compiled reader (``worker/events/_user_change.c``, about 0.7 us a record against fastavro's 5)
reads only the schema it was written for; it is used when it was built, the schema has its
canonical form, it reads a probe record exactly as fastavro does, and ``FSUS_NO_EXTENSIONS`` is
off. Everything else is read by fastavro, through ``record_reader`` where it can.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

Read = Callable[[io.BytesIO], Any]
# A whole Avro body -> its datum; raises if any byte is left over or missing.
ReadBody = Callable[[bytes], Any]


# The switch that makes the worker read every body with fastavro, as a build without a C
# compiler does (like aiokafka's AIOKAFKA_NO_EXTENSIONS): `make test-unit-pure` runs the fast
# tier with it. Read from the environment when a ``Decoder`` is built.
NO_EXTENSIONS = "FSUS_NO_EXTENSIONS"


def extensions_disabled(environ: Mapping[str, str]) -> bool:
    """Whether ``FSUS_NO_EXTENSIONS`` is on: set to anything but empty, ``0``, ``false`` or
    ``no`` (any case)."""
    return environ.get(NO_EXTENSIONS, "").strip().lower() not in ("", "0", "false", "no")


class Reader(StrEnum):
    COMPILED = "compiled"
    FASTAVRO = "fastavro"


class Why(StrEnum):
    """Why a schema's bodies are read by the reader they are (logged as ``avro_reader``)."""

    COMPILED = "the compiled reader's schema"
    SAME_AS_READER = "writer schema is the reader schema"
    DISABLED = f"disabled by {NO_EXTENSIONS}"
    NOT_BUILT = "not built"
    SCHEMA_DIFFERS = "schema differs from the compiled reader's"
    PROBE_MISMATCH = "probe mismatch"
    RESOLVED = "writer schema differs from the reader schema"
    TABLE_SCHEMA = "a table's change events (SOURCE_FORMAT=debezium)"


@dataclass(frozen=True, slots=True)
class ReaderChoice:
    """Which reader reads the bodies of one schema, and why."""

    reader: Reader
    why: Why
    schema_id: int | None = None  # a writer schema's registry id; None: the local schema


def compiled_choice(parsed: Any) -> tuple[ReadBody | None, Why]:
    """The compiled reader of ``worker/events/_user_change.c`` when it reads this schema: it was
    built (the build skips it where no C compiler is at hand; a module that fails to import
    counts as not built), the schema is the one it was written for (same canonical form), and
    it reads a probe record exactly as fastavro does. Else None, why, and fastavro reads.
    ``FSUS_NO_EXTENSIONS`` is the decoder's to apply, not this function's."""
    try:
        _user_change = importlib.import_module("worker.events._user_change")
    except Exception:  # not built, or not loadable here
        return None, Why.NOT_BUILT
    try:
        if to_parsing_canonical_form(parsed) != _user_change.SCHEMA:
            return None, Why.SCHEMA_DIFFERS
    except Exception:  # no canonical form, or a module without SCHEMA
        return None, Why.SCHEMA_DIFFERS
    try:
        read: ReadBody = _user_change.read_user_change
        probe = _probe(parsed)
        expected: Any = fastavro.schemaless_reader(io.BytesIO(probe), parsed, None)
        if repr(read(probe)) != repr(expected):  # equal values, types and key order
            return None, Why.PROBE_MISMATCH
    except Exception:  # built from another version of the source
        return None, Why.PROBE_MISMATCH
    return read, Why.COMPILED


def compiled_reader(parsed: Any) -> ReadBody | None:
    """``compiled_choice``'s reader, or None."""
    return compiled_choice(parsed)[0]


def choose_local(parsed: Any, environ: Mapping[str, str]) -> tuple[ReadBody | None, ReaderChoice]:
    """The compiled reader for the local (reader) schema, or None, and what was chosen and why:
    ``FSUS_NO_EXTENSIONS`` in ``environ`` first, then ``compiled_choice``."""
    if extensions_disabled(environ):
        return None, ReaderChoice(Reader.FASTAVRO, Why.DISABLED)
    read, why = compiled_choice(parsed)
    return read, ReaderChoice(Reader.COMPILED if read is not None else Reader.FASTAVRO, why)


def record_reader(parsed: Any) -> Read:
    """How one record of the parsed schema is read by fastavro (no schema resolution).

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

        probe = _probe(parsed)
        if direct(io.BytesIO(probe)) != public(io.BytesIO(probe)):
            return public
    except Exception:  # not there, another signature, or another schema: the public one
        return public
    return direct


def _probe(parsed: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, _PROBE)
    return out.getvalue()


_PROBE = {
    "uid": "probe-é",
    "changed_at": -1_700_000_000_000,
    "display_name": "Probe",
    "email": None,
    "properties": {"n": 3, "r": 1.5, "s": "s", "b": True, "f": False, "z": None, "m": -(2**63)},
}
