"""The schema registry as a hostile peer: its fetch runs on the poll loop, so whatever it
answers the fetch must end within its bound as a ``RegistryUnavailable`` (the record waits, never
dead-lettered on an answer the registry did not mean) and never read a runaway body whole."""

from __future__ import annotations

import json
import time

import pytest

from tests.fakes.avro import encode, event
from tests.fakes.clock import FakeClock
from tests.hostile.server import (
    DEADLINE_S,
    DRIP_S,
    Behaviour,
    HostileServer,
    answer,
    huge,
    raw,
    trickled_body,
    trickled_headers,
)
from worker.errors import InvalidRecord, RegistryUnavailable, WorkerError
from worker.events.decode import Decoder, load_reader_schema
from worker.events.registry import ANSWER_MAX_BYTES, UNKNOWN_ID_WINDOW_S, SchemaRegistry

SCHEMA_PATH = "/schemas/ids/7"
DEEP = ("[" * 100_000 + "]" * 100_000).encode()


@pytest.mark.parametrize(
    "behaviour",
    [
        raw(404, b"<html><body>Not Found</body></html>", "text/html"),
        raw(200, b"<html>Down for maintenance</html>", "text/html"),
        raw(200, b'{"schema": "{\\"type\\": \\"string\\"', "application/json"),
        raw(200, DEEP),
        answer(200, {"schema": {"type": "record"}} | {"x": "y" * (2 * 1024 * 1024)}),
        huge(),
        huge(declared=True),
        trickled_body(DRIP_S),
        trickled_headers(DRIP_S),
    ],
    ids=[
        "html-404",
        "200-not-json",
        "truncated-json",
        "deep-json",
        "over-the-cap",
        "huge-no-length",
        "huge-declared",
        "trickled-body",
        "trickled-headers",
    ],
)
def test_a_hostile_registry_is_an_outage_ended_in_time(server: HostileServer, behaviour: Behaviour):
    """Decoding a wire-format record through the real registry client: each hostile answer
    ends the fetch within three times its deadline as a ``RegistryUnavailable`` (the loop holds the
    record and asks again later), never an ``InvalidRecord`` nor any other exception."""
    server.answer_with("GET", SCHEMA_PATH, behaviour)
    registry = SchemaRegistry(server.url, timeout_s=DEADLINE_S)
    decoder = Decoder(load_reader_schema(), registry.writer_schema)
    started = time.monotonic()
    with pytest.raises(WorkerError) as raised:
        decoder.decode(encode(event("u1"), schema_id=7))
    assert type(raised.value) is RegistryUnavailable
    assert time.monotonic() - started < 3 * DEADLINE_S
    assert server.bytes_sent < 8 * ANSWER_MAX_BYTES  # of 100 MiB offered
    registry.close()


NOT_FOUND = answer(404, {"error_code": 40403, "message": "Schema not found"})


def _unknown(registry: SchemaRegistry, schema_id: int) -> None:
    """A record naming ``schema_id`` is dead-lettered as ``unknown_schema_id``, as before."""
    decoder = Decoder(load_reader_schema(), registry.writer_schema)
    with pytest.raises(InvalidRecord) as refused:
        decoder.decode(encode(event("u1"), schema_id=schema_id))
    assert refused.value.code == "unknown_schema_id"


def test_a_flood_of_one_unknown_schema_id_costs_one_fetch_a_window(server: HostileServer):
    """Each record of an id the registry does not have used to cost a fetch on the poll loop;
    its "no such schema" is now believed for a window: 1,000 records, one fetch. Once the
    window has passed the registry is asked again, and a schema registered meanwhile is read."""
    registered = json.dumps(load_reader_schema())
    server.answer_with("GET", "/schemas/ids/404", NOT_FOUND, answer(200, {"schema": registered}))
    clock = FakeClock()
    registry = SchemaRegistry(server.url, timeout_s=DEADLINE_S, monotonic=clock.monotonic)
    for _ in range(1_000):
        _unknown(registry, 404)
    assert server.served("GET", "/schemas/ids/404") == 1
    clock.advance(UNKNOWN_ID_WINDOW_S - 0.01)
    _unknown(registry, 404)
    assert server.served("GET", "/schemas/ids/404") == 1
    clock.advance(0.02)
    decoder = Decoder(load_reader_schema(), registry.writer_schema)
    for _ in range(10):
        assert decoder.decode(encode(event("u1"), schema_id=404))["uid"] == "u1"
    assert server.served("GET", "/schemas/ids/404") == 2
    registry.close()


def test_unknown_ids_that_are_all_different_are_remembered_up_to_a_bound(server: HostileServer):
    """A flood of ever different unknown ids costs a fetch each (each is a new question) and
    never grows what is remembered past its bound: the oldest id is forgotten first and asked
    about again, the newest are still believed."""
    for schema_id in range(1, 21):
        server.answer_with("GET", f"/schemas/ids/{schema_id}", NOT_FOUND)
    registry = SchemaRegistry(server.url, timeout_s=DEADLINE_S, unknown_ids_max=5)
    for schema_id in range(1, 21):
        _unknown(registry, schema_id)
    for schema_id in range(16, 21):
        _unknown(registry, schema_id)
    _unknown(registry, 1)
    assert [server.served("GET", f"/schemas/ids/{i}") for i in (1, 16, 20)] == [2, 1, 1]
    registry.close()
