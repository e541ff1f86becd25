"""No writer schema and no body can take the process down: generated writer schemas (records,
unions, arrays, maps, enums, fixed, named types with namespaces, some recursive) with valid,
deep, cut, damaged and random bodies go through the worker's decode path (the registry client,
then canonical and Debezium decoding) in a child process, which must end by itself, having
decoded each or refused it with a dead-letter code. fastavro's compiled reader recurses in C
once per level of a value: before recursive schemas were refused, the first deep body of one
killed the child with SIGSEGV."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastavro
import pytest

from tests.fakes.writer_schemas import SchemaFields, body
from worker.errors import DeadLetterCode
from worker.events.decode import load_reader_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_PER_RUN = 60
DEEP = 40_000  # levels: 20,000 records in unions, as the value nests Node
BODY_MAX = 256 * 1024  # a deep body is cut there (still deep enough: about 17,000 levels kill)
CHILD_TIMEOUT_S = 300  # a bound on the run, not a measure: it takes a few seconds


def _writers(rng: random.Random) -> tuple[bool, dict[str, Any]]:
    """Generated fields, added to the reader schema (as an auto-registering producer adds a
    field) and to a table row keyed by ``id`` (as a Debezium table grows a column)."""
    generator = SchemaFields(rng)
    extra = generator.fields("usersync.v1", rng.randint(1, 3))
    canonical = load_reader_schema()
    canonical["fields"] += extra
    row = {
        "type": "record",
        "name": "Row",
        "namespace": "usersync.v1",
        "fields": [{"name": "id", "type": "long"}, *extra],
    }
    return generator.recursive, {"canonical": canonical, "debezium": row}


def _bodies(schema: dict[str, Any], recursive: bool, rng: random.Random) -> list[bytes]:
    """A valid shallow body, its damaged twin, random bytes and, for a recursive schema, a
    deep one and the same cut short."""
    noise = rng.randbytes(rng.randint(0, 64))
    named: dict[str, Any] = {}
    try:
        parsed = fastavro.parse_schema(json.loads(json.dumps(schema)), named)
    except Exception:  # not Avro: the registry refuses it as bad_writer_schema
        return [noise]
    shallow = body(parsed, named, rng, depth=3)
    damaged = bytearray(shallow)
    damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
    bodies = [shallow, bytes(damaged), noise]
    if recursive:
        deep = body(parsed, named, rng, depth=DEEP, max_bytes=BODY_MAX)
        bodies += [deep, deep[: rng.randrange(len(deep) + 1)]]
    return bodies


def _cases(seed: int) -> tuple[dict[str, Any], list[bool]]:
    """The child's input, and for each record whether its schema is recursive."""
    rng = random.Random(seed)
    schemas: dict[int, str] = {}
    records: list[dict[str, Any]] = []
    recursive_records: list[bool] = []
    for n in range(SCHEMAS_PER_RUN):
        recursive, writers = _writers(rng)
        for k, (source, schema) in enumerate(writers.items()):
            schema_id = 2 * n + k + 1
            schemas[schema_id] = json.dumps(schema)
            for value in _bodies(schema, recursive, rng):
                header = struct.pack(">bI", 0, schema_id)
                records.append({"id": schema_id, "source": source, "value": (header + value).hex()})
                recursive_records.append(recursive)
    return {"schemas": schemas, "records": records}, recursive_records


@pytest.mark.parametrize("seed", [18])
def test_no_writer_schema_nor_body_kills_the_decoding_process(seed: int):
    """The child decodes every record and exits 0 (never by a signal, never by another
    exception); every record of a recursive schema is refused as ``recursive_schema`` and
    no other schema is taken for one."""
    cases, recursive = _cases(seed)
    assert sum(recursive) >= 50, "the generator made too few recursive records to mean much"
    child = subprocess.run(
        [sys.executable, "-m", "tests.hostile.decode_child"],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=CHILD_TIMEOUT_S,
    )
    outcomes = [json.loads(line)["outcome"] for line in child.stdout.splitlines()]
    if child.returncode != 0:
        dead = cases["records"][len(outcomes)]
        pytest.fail(
            f"the decoding process ended with {child.returncode} at record {len(outcomes)} of "
            f"schema {cases['schemas'][dead['id']][:400]} ({len(dead['value']) // 2} "
            f"bytes); stderr: {child.stderr[-2000:]}"
        )
    assert len(outcomes) == len(cases["records"])
    codes = {code.value for code in DeadLetterCode} | {"ok"}
    assert set(outcomes) <= codes
    refused = [outcome == "recursive_schema" for outcome in outcomes]
    assert refused == recursive
    assert "ok" in outcomes  # good records still decode
