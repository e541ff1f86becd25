"""The worker's decode path in a process of its own, for ``test_writer_schemas``: a process
killed by a signal can only be seen from outside it.

Reads ``{"schemas": {id: schema text}, "records": [{"id", "source", "value" (hex)}]}`` on
stdin; serves the schemas through the real registry client (an in-process transport answering
as the registry does) and decodes each record as the worker does, canonical
(``events.decode``, resolved against the reader schema) or Debezium (``events.debezium``, read
with the writer schema itself, mapped with ``{"uid": "id"}``). Prints one JSON line per record
once it is decoded: ``{"record": index, "outcome": "ok" | its dead-letter code}``. Any other
exception ends it with a traceback and exit code 1.
"""

from __future__ import annotations

import json
import sys

import httpx

from tests.fakes.kafka import FakeMessage
from worker.config.choices import PropertyTypes
from worker.errors import InvalidRecord
from worker.events.debezium import DebeziumDecoder
from worker.events.decode import Decoder, load_reader_schema
from worker.events.mapping import parse_mapping
from worker.events.registry import SchemaRegistry
from worker.records import SourceRecord


def main() -> None:
    cases = json.load(sys.stdin)
    schemas = {int(schema_id): text for schema_id, text in cases["schemas"].items()}

    def answer(request: httpx.Request) -> httpx.Response:
        schema_id = int(request.url.path.rsplit("/", 1)[1])
        return httpx.Response(200, json={"schema": schemas[schema_id]})

    registry = SchemaRegistry("http://127.0.0.1:1", transport=httpx.MockTransport(answer))
    canonical = Decoder(load_reader_schema(), registry.writer_schema)
    mapping = parse_mapping({"uid": "id"}, PropertyTypes.V2)
    debezium = DebeziumDecoder(mapping, registry.writer_schema)
    for index, record in enumerate(cases["records"]):
        value = bytes.fromhex(record["value"])
        try:
            if record["source"] == "canonical":
                canonical.decode(value)
            else:
                debezium.read(FakeMessage(SourceRecord("t", 0, index, b"k", value, ())))
            outcome = "ok"
        except InvalidRecord as exc:
            outcome = exc.code.value
        print(json.dumps({"record": index, "outcome": outcome}), flush=True)


if __name__ == "__main__":
    main()
