"""The schema registry adapter: only the registry itself saying "no such schema" dead-letters a
record; a wrong URL, a maintenance page or an absurd answer is an outage to wait out."""

from __future__ import annotations

import json

import httpx
import pytest

from worker.errors import InvalidRecord, RegistryUnavailable
from worker.events.registry import SchemaRegistry

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
