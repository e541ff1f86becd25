"""Writer schemas whose values could nest without end, or deeper than ``MAX_DEPTH``, are
refused before any body is read (``worker/events/nesting.py``): fastavro's compiled reader
recurses in C once per level and a deep enough value kills the process with SIGSEGV."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.debezium import KEY_SCHEMA, MESSAGE_SCHEMA, envelope_schema, flattened_schema
from worker.errors import InvalidRecord
from worker.events.decode import load_reader_schema
from worker.events.nesting import MAX_DEPTH, check_nesting


def record(name: str, *types: Any, **extra: Any) -> dict[str, Any]:
    fields = [{"name": f"f{i}", "type": t} for i, t in enumerate(types)]
    return {"type": "record", "name": name, "fields": fields, **extra}


def _with_junk(junk: Any) -> dict[str, Any]:
    """The reader schema plus an optional field, as an auto-registering producer adds one."""
    schema = load_reader_schema()
    schema["fields"].append({"name": "junk", "type": ["null", junk], "default": None})
    return schema


def _arrays(levels: int, inner: Any = "int") -> Any:
    for _ in range(levels):
        inner = {"type": "array", "items": inner}
    return inner


def _chain(length: int, optional: bool = False) -> dict[str, Any]:
    """Named records each holding the one before (``optional``: in a union with null), defined
    side by side in a union: a shallow JSON (no recursion) nesting 2 + ``length`` levels (Top,
    the union of definitions, the records), or 2 * ``length`` + 1 when ``optional``."""
    defs = [record("r0", "int")] + [
        record(f"r{i}", ["null", f"r{i - 1}"] if optional else f"r{i - 1}")
        for i in range(1, length)
    ]
    return record("Top", ["null", *defs], f"r{length - 1}")


RECURSIVE = {
    "the-issues-node": _with_junk(record("Node", ["null", "Node"])),
    "self-through-array": record("Tree", {"type": "array", "items": "Tree"}),
    "self-through-map": record("Tree", {"type": "map", "values": "Tree"}),
    "self-without-union": record("Loop", "Loop"),  # no value ends: nothing read per level
    "error-type": {"type": "error", "name": "E", "fields": [{"name": "e", "type": ["null", "E"]}]},
    "two-records": record("A", ["null", record("B", ["null", "A"])]),
    "three-records-in-a-union": record(
        "A", ["null", record("B", "int"), record("C", ["null", "B", "A"])]
    ),
    "short-name-in-its-namespace": record(
        "Outer", ["null", record("Node", ["null", "Node"])], namespace="shop.v1"
    ),
    "fullname-across-namespaces": record(
        "A",
        ["null", record("B", ["null", "one.A"], namespace="two")],
        namespace="one",
    ),
    "dotted-name-wins-over-namespace": record("x.Node", ["null", "x.Node"], namespace="ignored"),
    "inherited-namespace-of-a-nested-definition": record(
        "Top",
        ["null", record("Mid", ["null", record("Leaf", ["null", "Mid"])])],
        namespace="n",
    ),
    "reference-wrapped-in-a-type-object": record("W", ["null", {"type": "W"}]),
    "null-namespace": {
        "type": "record",
        "name": "Root",
        "namespace": "",
        "fields": [
            {"name": "n", "type": ["null", record("Node", ["null", "Node"], namespace="")]},
        ],
    },
    "falsy-namespace-means-none-as-fastavro-reads-it": record(
        "Outer", ["null", record("Node", ["null", "Node"], namespace=None)], namespace="a"
    ),
    "deep-inside-a-debezium-row": envelope_schema(
        [{"name": "id", "type": "long"}, {"name": "tree", "type": record("T", ["null", "T"])}]
    ),
}


@pytest.mark.parametrize("schema", RECURSIVE.values(), ids=RECURSIVE.keys())
def test_a_schema_whose_named_types_refer_to_themselves_is_refused(schema):
    """A cycle through any path (unions, arrays, maps, nested definitions, namespaces and
    fullnames) is refused with its own code, naming the cycle."""
    with pytest.raises(InvalidRecord) as refused:
        check_nesting(schema, 42)
    assert refused.value.code == "recursive_schema"
    assert "schema id 42 is recursive" in refused.value.message


BOUNDED = {
    "the-reader-schema": load_reader_schema(),
    "debezium-envelope": envelope_schema(),
    "debezium-flattened": flattened_schema(),
    "debezium-message": MESSAGE_SCHEMA,
    "debezium-key": KEY_SCHEMA,
    "a-named-type-used-twice": record(
        "A", record("B", "int"), "B", {"type": "array", "items": "B"}
    ),
    "same-short-name-in-two-namespaces": record(
        "Top",
        record("Node", "int", namespace="a"),
        record("Node", ["null", "a.Node"], namespace="b"),
    ),
    "enum-and-fixed-named-like-their-holder": record(
        "R",
        {"type": "enum", "name": "E", "symbols": ["A"]},
        {"type": "fixed", "name": "F", "size": 2},
        "E",
        "F",
    ),
    "a-primitive-schema": "string",
    f"{MAX_DEPTH}-levels": _arrays(MAX_DEPTH),
    f"{MAX_DEPTH - 1}-levels-of-optional-records": _chain(MAX_DEPTH // 2 - 1, optional=True),
    "not-avro-at-all": {"type": {"type": [1, None, {"fields": 5}]}, "name": {}},
}


# Names fastavro would read otherwise than Avro's rules ("namespace": true is "True.Node" to
# it), or fastavro's own markers, which make it take named types from elsewhere: a cycle could
# hide between the two readings, so the schema is refused.
UNNAMABLE = {
    "truthy-non-text-namespace": _with_junk(
        {
            "type": "record",
            "name": "Node",
            "namespace": True,
            "fields": [{"name": "n", "type": ["null", "True.Node"]}],
        }
    ),
    "non-text-name": {
        "type": "record",
        "name": "R",
        "namespace": "a",
        "fields": [{"name": "n", "type": ["null", record(["x"], ["null", "a.['x']"])]}],  # type: ignore[arg-type]
    },
    "empty-name": record("", "int"),
    "fastavro-parse-markers": {
        **record("Top", ["null", "Node"]),
        "__fastavro_parsed": True,
        "__named_schemas": {"Node": record("Node", ["null", "Node"])},
    },
}


@pytest.mark.parametrize("schema", UNNAMABLE.values(), ids=UNNAMABLE.keys())
def test_a_schema_whose_names_fastavro_would_read_otherwise_is_refused(schema):
    with pytest.raises(InvalidRecord) as caught:
        check_nesting(schema, 9)
    assert caught.value.code == "bad_writer_schema"
    assert "schema id 9" in caught.value.message


@pytest.mark.parametrize("schema", BOUNDED.values(), ids=BOUNDED.keys())
def test_a_schema_without_recursion_within_the_depth_is_accepted(schema):
    """Real schemas (ours, Debezium's) and named types reused without a cycle are read; a
    schema that is not Avro is left to fastavro's parser, which refuses it."""
    check_nesting(schema, 42)


@pytest.mark.parametrize(
    "schema",
    [
        _arrays(MAX_DEPTH + 1),
        _chain(MAX_DEPTH // 2, optional=True),
        _chain(MAX_DEPTH - 1),
        _arrays(50_000),
        _chain(20_000),
    ],
    ids=[
        "one-array-too-many",
        "one-optional-record-too-many",
        "one-record-too-many",
        "arrays-50000-deep",
        "named-chain-20000-deep",
    ],
)
def test_a_schema_nesting_deeper_than_the_limit_is_refused_without_recursing(schema):
    """Without recursion a value still nests as deep as its schema: 36,000 arrays in a 900 KB
    schema killed fastavro's reader. Past ``MAX_DEPTH`` it is refused, and the check itself
    walks a schema 50,000 levels deep without a ``RecursionError``."""
    with pytest.raises(InvalidRecord) as refused:
        check_nesting(schema, 7)
    assert refused.value.code == "schema_too_deep"
    assert f"at most {MAX_DEPTH}" in refused.value.message


def test_a_long_cycle_of_long_names_gives_a_short_message():
    """The message (a DLQ header) names the cycle's first types, each cut: a peer's names
    never make it long."""
    names = [f"{'n' * 5000}{i}" for i in range(1000)]
    defs = [record(name, ["null", names[(i + 1) % len(names)]]) for i, name in enumerate(names)]
    with pytest.raises(InvalidRecord) as refused:
        check_nesting(record("Top", ["null", *defs]), 1)
    assert refused.value.code == "recursive_schema"
    assert len(refused.value.message) < 600
