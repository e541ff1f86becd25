"""Avro encoding helpers for tests (what a producer would write)."""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro

from worker.events.decode import load_reader_schema

SCHEMA = fastavro.parse_schema(load_reader_schema())


def encode(datum: dict[str, Any], schema: Any = SCHEMA, schema_id: int | None = None) -> bytes:
    out = io.BytesIO()
    if schema_id is not None:
        out.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(out, schema, datum)
    return out.getvalue()


def event(uid: str, changed_at: int = 1_700_000_000_000, **fields: Any) -> dict[str, Any]:
    return {
        "uid": uid,
        "changed_at": changed_at,
        "display_name": None,
        "email": None,
        "properties": {},
        **fields,
    }


def _node_schema() -> dict[str, Any]:
    schema = load_reader_schema()
    node = {"type": "record", "name": "Node", "fields": [{"name": "n", "type": ["null", "Node"]}]}
    schema["fields"].append({"name": "junk", "type": ["null", node], "default": None})
    return schema


# The reader schema plus an optional field ``junk`` whose record ``Node`` holds an optional
# ``Node``: a backward-compatible change an auto-registering producer can make (issue 18).
RECURSIVE_WRITER_SCHEMA = _node_schema()


def nested_nodes(datum: dict[str, Any], depth: int, schema_id: int) -> bytes:
    """A wire-format value of ``RECURSIVE_WRITER_SCHEMA``: ``datum`` and a ``junk`` nesting
    ``Node`` ``depth`` deep, encoded by hand (fastavro's writer recurses as its reader does).
    ``junk`` is the last field: each level is the union branch 1 (zigzag 2), the end branch 0."""
    return struct.pack(">bI", 0, schema_id) + encode(datum) + b"\x02" * depth + b"\x00"
