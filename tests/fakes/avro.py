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
