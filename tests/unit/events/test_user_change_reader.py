"""The compiled reader (worker/events/_user_change.c) against fastavro, the reference it replaces.

Its contract: every valid encoding reads to exactly what fastavro returns (same values, same
types, same key order); on any bytes at all it is never more lenient than fastavro, raises
ValueError and nothing else; it is stricter only where the Avro specification is.

Under FSUS_NO_EXTENSIONS (``make test-unit-pure``) the worker reads with fastavro, but the
module itself is still held to fastavro here (the switch is the worker's, not the build's);
``make sanitize`` runs the same tests on a build with AddressSanitizer and UBSan.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import types
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.events import readers
from worker.events.decode import SCHEMA_PATH, Decoder, load_reader_schema, without_logical_types
from worker.events.readers import Reader, ReaderChoice, Why
from worker.runtime.metrics import AVRO_READERS, Metrics

SCHEMA = fastavro.parse_schema(without_logical_types(load_reader_schema()))
COMPILED = readers.compiled_reader(SCHEMA)
PURE = readers.extensions_disabled(os.environ)
FAST = settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(max_size=40)
VALUES = st.one_of(st.none(), st.booleans(), INT64, st.floats(allow_nan=True), TEXT)
CHANGES = st.fixed_dictionaries(
    {
        "uid": TEXT,
        "changed_at": INT64,
        "display_name": st.none() | TEXT,
        "email": st.none() | TEXT,
        "properties": st.dictionaries(TEXT, VALUES, max_size=12),
    }
)


def written(change: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, SCHEMA, change)
    return out.getvalue()


def reference(body: bytes) -> Any:
    """fastavro's reading, with the worker's own check that no byte is left over."""
    stream = io.BytesIO(body)
    datum = fastavro.schemaless_reader(stream, SCHEMA, None)
    if stream.tell() != len(body):
        raise ValueError("trailing bytes")
    return datum


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types in equal order (repr tells True from 1, 1 from 1.0, and
    NaN equals NaN)."""
    return repr(a) == repr(b)


def test_the_projects_build_has_the_compiled_reader_and_uses_it():
    """make venv compiles it (a C compiler is part of this project's setup): a build that
    silently lost it would decode five times slower and still pass every other test. Under
    FSUS_NO_EXTENSIONS the worker says it reads with fastavro, and why."""
    assert COMPILED is not None
    if PURE:
        decoder = Decoder(load_reader_schema())
        assert decoder.reader == "fastavro"
        assert decoder.local_reader == ReaderChoice(Reader.FASTAVRO, Why.DISABLED)
    else:
        assert Decoder(load_reader_schema()).reader == "compiled"


def test_the_reader_schema_is_the_one_the_compiled_reader_reads():
    """schemas/user_change.avsc and the SCHEMA of worker/events/_user_change.c change together:
    a new field or type in the schema alone would quietly make every record five times slower
    to read (the worker would fall back to fastavro), so the change fails here, with what to
    do. Holds under FSUS_NO_EXTENSIONS too: it is about the build, not the switch."""
    read, why = readers.compiled_choice(SCHEMA)
    assert read is not None and why is Why.COMPILED, (
        f"schemas/{SCHEMA_PATH.name} is no longer the schema worker/events/_user_change.c reads "
        f"({why.value}): the worker would read every record with fastavro, about five times "
        "slower. Either change the C reader for it (its read_* functions, and SCHEMA to the "
        "canonical form below) and extend tests/unit/events/test_user_change_reader.py's "
        "strategies and bodies to what changed, then run make test (it runs make sanitize); "
        "or accept fastavro knowingly: drop the extension (pyproject.toml's ext-modules, the "
        "image's checks) and these tests in the same change. The schema's canonical form: "
        f"{fastavro.schema.to_parsing_canonical_form(SCHEMA)}"
    )


@FAST
@given(CHANGES)
def test_every_valid_encoding_reads_as_fastavro_reads_it(change: dict[str, Any]) -> None:
    body = written(change)
    assert COMPILED is not None
    assert same(COMPILED(body), reference(body))


def zz(n: int) -> bytes:
    """A zigzag varint, as Avro writes a long."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(text: str) -> bytes:
    raw = text.encode()
    return zz(len(raw)) + raw


@FAST
@given(
    st.lists(st.tuples(TEXT, st.one_of(st.none(), INT64, TEXT)), min_size=1, max_size=9),
    st.integers(min_value=1, max_value=4),
)
def test_a_map_written_in_several_blocks_with_sizes_reads_as_fastavro_reads_it(
    entries: list[tuple[str, Any]], block: int
) -> None:
    """Writers may split a map into blocks, and give a block's byte size (negative count);
    fastavro's own writer never does, so these bodies are built here."""
    body = avro_string("u") + zz(5) + zz(0) + zz(0)
    for start in range(0, len(entries), block):
        chunk = b""
        for key, value in entries[start : start + block]:
            chunk += avro_string(key)
            if value is None:
                chunk += zz(0)
            elif isinstance(value, int):
                chunk += zz(2) + zz(value)
            else:
                chunk += zz(4) + avro_string(value)
        count = len(entries[start : start + block])
        body += zz(-count) + zz(len(chunk)) + chunk if start % 2 else zz(count) + chunk
    body += zz(0)
    assert COMPILED is not None
    assert same(COMPILED(body), reference(body))


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(CHANGES, st.data())
def test_on_damaged_bytes_it_is_never_more_lenient_than_fastavro(
    change: dict[str, Any], data: st.DataObject
) -> None:
    """Truncated, extended or overwritten encodings: either both read the same datum, or the
    compiled reader refused with a ValueError (fastavro may or may not have refused)."""
    body = bytearray(written(change))
    damage = data.draw(st.sampled_from(["truncate", "append", "overwrite"]))
    if damage == "truncate":
        del body[data.draw(st.integers(min_value=0, max_value=len(body) - 1)) :]
    elif damage == "append":
        body += data.draw(st.binary(min_size=1, max_size=8))
    else:
        at = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
        body[at] = data.draw(st.integers(min_value=0, max_value=255))
    assert COMPILED is not None
    try:
        ours = COMPILED(bytes(body))
    except ValueError:
        return
    assert same(ours, reference(bytes(body)))


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(st.binary(max_size=64))
def test_on_random_bytes_it_never_accepts_what_fastavro_refuses(body: bytes) -> None:
    assert COMPILED is not None
    try:
        ours = COMPILED(body)
    except ValueError:
        return
    assert same(ours, reference(body))


HEAD = avro_string("u") + zz(1)  # uid "u", changed_at -1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (HEAD + zz(0) + zz(0) + zz(1) + avro_string("k") + zz(1) + b"\x02" + zz(0), "boolean"),
        (b"\xff" * 9 + b"\x81\x01", "longer than 10 bytes"),
        (b"\xff" * 9 + b"\x7f", "64 bits"),
        (zz(-1), "negative length"),
        (avro_string("u") + zz(1) + zz(2), "union branch"),
        (HEAD + zz(0) + zz(0) + zz(1) + avro_string("k") + zz(5), "union branch"),
        (HEAD + zz(0) + zz(0) + zz(2**40), "map block"),
        (HEAD + zz(0) + zz(0) + zz(-1) + zz(-1), "negative size"),
        (HEAD + zz(0) + zz(0) + zz(0) + b"\x00", "trailing bytes"),
        (b"\x04\xff\xfe" + zz(1) + zz(0) + zz(0) + zz(0), "utf-8"),
        (HEAD + zz(0) + zz(0) + zz(1) + avro_string("k") + zz(3) + b"\x00" * 7, "double"),
        (zz(3) + b"ab", "truncated: a string"),
    ],
)
def test_what_the_avro_specification_forbids_is_refused_with_its_reason(
    body: bytes, reason: str
) -> None:
    assert COMPILED is not None
    with pytest.raises(ValueError, match=reason):
        COMPILED(body)


def test_only_bytes_are_read():
    assert COMPILED is not None
    with pytest.raises(TypeError):
        COMPILED(bytearray(written({"uid": "u", "changed_at": 1, "properties": {}})))  # type: ignore[arg-type]


def test_another_reader_schema_is_read_by_fastavro():
    """The compiled reader reads one schema: with a reader schema that differs in anything
    that changes the bytes (here a field more), the decoder falls back to fastavro."""
    schema = json.loads(json.dumps(load_reader_schema()))
    schema["fields"].append({"name": "tier", "type": "string", "default": "free"})
    decoder = Decoder(schema, environ={})
    assert decoder.reader == "fastavro"
    assert decoder.local_reader.why is Why.SCHEMA_DIFFERS
    parsed = fastavro.parse_schema(without_logical_types(schema))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, {"uid": "u", "changed_at": 1, "tier": "pro"})
    assert decoder.decode(out.getvalue())["tier"] == "pro"


def test_registry_bodies_written_with_the_reader_schema_read_as_fastavro_resolves_them():
    change = {"uid": "u1", "changed_at": 5, "email": "e@x.io", "properties": {"n": 2.5}}
    body = b"\x00" + struct.pack(">I", 3) + written(change)
    by_registry = Decoder(load_reader_schema(), {3: SCHEMA}.__getitem__).decode(body)
    expected = fastavro.schemaless_reader(io.BytesIO(body[5:]), SCHEMA, SCHEMA)
    assert same(by_registry, expected)


def test_without_the_compiled_module_fastavro_reads_the_same(monkeypatch: pytest.MonkeyPatch):
    """A build without a C compiler has no worker.events._user_change: the decoder says so (the
    worker logs it at start-up) and reads every record as before."""
    change = {"uid": "u1", "changed_at": 5, "display_name": "Ann", "properties": {"n": 1}}
    body = written(change)
    compiled = Decoder(load_reader_schema()).decode(body)
    monkeypatch.setitem(sys.modules, "worker.events._user_change", None)  # import fails
    decoder = Decoder(load_reader_schema(), environ={})
    assert decoder.reader == "fastavro"
    assert decoder.local_reader.why is Why.NOT_BUILT
    assert same(decoder.decode(body), compiled)


def test_a_module_that_reads_the_probe_otherwise_is_not_used(monkeypatch: pytest.MonkeyPatch):
    """A module built from another version of the source, declaring the schema but reading it
    differently, is caught by the probe record before it reads anything of the stream's."""
    stale = types.ModuleType("worker.events._user_change")
    stale.SCHEMA = fastavro.schema.to_parsing_canonical_form(SCHEMA)  # type: ignore[attr-defined]
    stale.read_user_change = lambda body: {"uid": "?"}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "worker.events._user_change", stale)
    decoder = Decoder(load_reader_schema(), environ={})
    assert decoder.local_reader == ReaderChoice(Reader.FASTAVRO, Why.PROBE_MISMATCH)
    assert decoder.decode(written({"uid": "u1", "changed_at": 5, "properties": {}}))["uid"] == "u1"


@pytest.mark.parametrize(
    ("value", "disabled"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        ("No", False),
        ("1", True),
        ("true", True),
        ("yes", True),
        (" 1 ", True),
        ("anything", True),
    ],
    ids=lambda v: repr(v),
)
def test_fsus_no_extensions_is_off_only_when_unset_empty_0_false_or_no(value, disabled):
    """The switch as README documents it: an unexpected value turns the compiled reader off
    (fastavro reads everything correctly, only slower), never on."""
    environ = {} if value is None else {"FSUS_NO_EXTENSIONS": value}
    assert readers.extensions_disabled(environ) is disabled
    decoder = Decoder(load_reader_schema(), environ=environ)
    assert (decoder.reader == "fastavro") is (disabled or COMPILED is None)
    body = written({"uid": "u1", "changed_at": 5, "properties": {"n": 1}})
    assert same(decoder.decode(body)["properties"], {"n": 1})


def test_each_writer_schema_id_is_reported_once_with_its_reader():
    """With a registry, each writer schema id is reported with its reader the first time a
    record of it is decoded, not on every record (the local schema's is ``local_reader``)."""
    extended = json.loads(json.dumps(load_reader_schema()))
    extended["fields"].append({"name": "tier", "type": "string", "default": "free"})
    other = fastavro.parse_schema(without_logical_types(extended))
    by_id = {3: SCHEMA, 4: other}
    told: list[ReaderChoice] = []
    decoder = Decoder(load_reader_schema(), by_id.__getitem__, environ={}, on_reader=told.append)
    for schema_id in (3, 4, 3, 4, 3):
        change = {"uid": "u1", "changed_at": 5, "properties": {}}
        out = io.BytesIO()
        fastavro.schemaless_writer(out, by_id[schema_id], change)
        body = b"\x00" + struct.pack(">I", schema_id) + out.getvalue()
        assert decoder.decode(body)["uid"] == "u1"
    local = decoder.local_reader
    same_reader = (
        ReaderChoice(Reader.COMPILED, Why.SAME_AS_READER, 3)
        if local.reader == "compiled"
        else ReaderChoice(Reader.FASTAVRO, local.why, 3)
    )
    assert told == [same_reader, ReaderChoice(Reader.FASTAVRO, Why.RESOLVED, 4)]
    told.clear()
    pure = Decoder(
        load_reader_schema(),
        by_id.__getitem__,
        environ={"FSUS_NO_EXTENSIONS": "1"},
        on_reader=told.append,
    )
    pure.decode(b"\x00" + struct.pack(">I", 3) + written({"uid": "u", "changed_at": 1}))
    assert pure.local_reader == ReaderChoice(Reader.FASTAVRO, Why.DISABLED)
    assert told == [ReaderChoice(Reader.FASTAVRO, Why.DISABLED, 3)]


def test_the_reader_metric_knows_every_reader_and_refuses_others():
    """fsus_avro_schemas{reader} is a closed set: every reader the decoder can choose has its
    series from start-up, and no other value becomes a label."""
    assert {reader.value for reader in Reader} == set(AVRO_READERS)
    metrics = Metrics()
    with pytest.raises(ValueError, match="unknown Avro reader"):
        metrics.avro_reader(None, "cavro")
