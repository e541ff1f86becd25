"""The schema registry adapter: only the registry itself saying "no such schema" dead-letters a
record; a wrong URL, a maintenance page or an absurd answer is an outage to wait out."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fakes.avro import RECURSIVE_WRITER_SCHEMA, encode, event, nested_nodes
from tests.fakes.debezium import COLUMNS, change_event, column, envelope_schema, user_row, wire
from tests.fakes.kafka import FakeMessage
from worker.config.choices import PropertyTypes
from worker.errors import InvalidRecord, RegistryUnavailable
from worker.events.debezium import DebeziumDecoder
from worker.events.decode import Decoder, load_reader_schema
from worker.events.mapping import parse_mapping
from worker.events.registry import SchemaRegistry
from worker.records import SourceRecord

SCHEMA = {"type": "record", "name": "U", "fields": [{"name": "uid", "type": "string"}]}
DEEP = "[" * 100_000 + "]" * 100_000


def _registry(answer: httpx.Response) -> SchemaRegistry:
    return SchemaRegistry("http://127.0.0.1:1", transport=httpx.MockTransport(lambda _: answer))


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (
            httpx.Response(404, json={"error_code": 40403, "message": "Schema not found"}),
            "unknown_schema_id",
        ),
        (httpx.Response(200, json={"schema": "{not a schema"}), "bad_writer_schema"),
        (httpx.Response(200, json={"schema": json.dumps({"type": "record"})}), "bad_writer_schema"),
    ],
    ids=["registry-404", "schema-not-json", "schema-not-avro"],
)
def test_only_the_registrys_own_answers_about_a_schema_dead_letter(answer, code):
    with pytest.raises(InvalidRecord) as info:
        _registry(answer).writer_schema(3)
    assert info.value.code == code


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, text="<html><body>Not Found</body></html>"),
        httpx.Response(200, text="<html>Down for maintenance</html>"),
        httpx.Response(200, json=["schema"]),
        httpx.Response(200, content=DEEP.encode()),
        httpx.Response(503),
    ],
    ids=["wrong-url-404", "maintenance-page", "not-an-object", "nested-too-deep", "503"],
)
def test_a_registry_that_is_not_answering_as_one_is_an_outage_not_a_dead_letter(answer):
    with pytest.raises(RegistryUnavailable):
        _registry(answer).writer_schema(3)


def test_a_registry_out_of_reach_is_an_outage_with_its_cause():
    """httpx's error is translated once, at the adapter: the intake sees a registry outage
    (what it waits out), and the log still has httpx's reason as the cause."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    registry = SchemaRegistry("http://127.0.0.1:1", transport=httpx.MockTransport(refuse))
    with pytest.raises(RegistryUnavailable) as info:
        registry.writer_schema(3)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_a_schema_is_fetched_once():
    fetched = []

    def answer(request: httpx.Request) -> httpx.Response:
        fetched.append(request.url.path)
        return httpx.Response(200, json={"schema": json.dumps(SCHEMA)})

    registry = SchemaRegistry("http://127.0.0.1:1", transport=httpx.MockTransport(answer))
    assert registry.writer_schema(3) is registry.writer_schema(3)
    assert fetched == ["/schemas/ids/3"]


def _counting(schemas: dict[int, Any], fetched: list[int]) -> SchemaRegistry:
    def answer(request: httpx.Request) -> httpx.Response:
        schema_id = int(request.url.path.rsplit("/", 1)[1])
        fetched.append(schema_id)
        return httpx.Response(200, json={"schema": json.dumps(schemas[schema_id])})

    return SchemaRegistry("http://127.0.0.1:1", transport=httpx.MockTransport(answer))


def test_a_recursive_writer_schema_is_refused_once_and_its_records_never_read():
    """The issue's schema (the reader schema plus ``junk: ["null", "Node"]``, ``Node`` holding
    an optional ``Node``): each of its records is dead-lettered as ``recursive_schema``, the
    schema fetched and checked once; records of a good schema still decode. (The value here
    nests 3 deep, so without the refusal fastavro reads it and the test fails, alive.)"""
    fetched: list[int] = []
    registry = _counting({5: RECURSIVE_WRITER_SCHEMA, 6: load_reader_schema()}, fetched)
    decoder = Decoder(load_reader_schema(), registry.writer_schema)
    for uid in ("u1", "u2", "u3"):
        with pytest.raises(InvalidRecord) as refused:
            decoder.decode(nested_nodes(event(uid), 3, schema_id=5))
        assert refused.value.code == "recursive_schema"
        assert "Node" in refused.value.message
    assert decoder.decode(encode(event("u4"), schema_id=6))["uid"] == "u4"
    assert fetched == [5, 6]


def test_a_schema_that_is_not_avro_is_refused_once_per_id():
    fetched: list[int] = []
    registry = _counting({8: {"type": "record"}}, fetched)
    for _ in range(3):
        with pytest.raises(InvalidRecord) as refused:
            registry.writer_schema(8)
        assert refused.value.code == "bad_writer_schema"
    assert fetched == [8]


def test_a_debezium_table_schema_with_a_recursive_column_type_is_refused():
    """Debezium's table schemas come through the same registry: a row with a column whose
    record type holds itself dead-letters as ``recursive_schema``, never read."""
    tree = {"type": "record", "name": "Tree", "fields": [{"name": "t", "type": ["null", "Tree"]}]}
    columns = [*COLUMNS, column("tree", tree)]
    schema = envelope_schema(columns)
    value = wire(schema, 11, change_event("c", after=user_row(tree={"t": {"t": None}})))
    registry = _counting({11: schema}, [])
    decoder = DebeziumDecoder(
        parse_mapping({"uid": "id"}, PropertyTypes.V2), registry.writer_schema
    )
    with pytest.raises(InvalidRecord) as refused:
        decoder.read(FakeMessage(SourceRecord("shop.public.users", 0, 7, b"k", value, ())))
    assert refused.value.code == "recursive_schema"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(401, json={"error_code": 401, "message": "Unauthorized"}),
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json={"subjects": ["users-value"]}),
    ],
    ids=["refused", "not-json", "not-a-list"],
)
def test_subjects_a_registry_does_not_list_is_an_outage_for_check(answer):
    """`check` lists the registry's subjects: anything but a JSON list of them (a refusal, a
    maintenance page, another shape) says the registry is not answering as one."""
    with pytest.raises(RegistryUnavailable):
        _registry(answer).subjects()


def test_subjects_are_the_registrys_list():
    """A registry answering ``GET /subjects`` with its list: those subjects, as text."""
    answer = httpx.Response(200, json=["users-value", "orders-value"])
    assert _registry(answer).subjects() == ["users-value", "orders-value"]
