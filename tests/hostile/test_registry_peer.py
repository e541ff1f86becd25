"""The schema registry as a hostile peer: its fetch runs on the poll loop, so whatever it
answers the fetch must end within its bound as a ``RegistryUnavailable`` (the record waits, never
dead-lettered on an answer the registry did not mean) and never read a runaway body whole."""

from __future__ import annotations

import time

import pytest

from tests.fakes.avro import encode, event
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
from worker.errors import RegistryUnavailable, WorkerError
from worker.events.decode import Decoder, load_reader_schema
from worker.events.registry import ANSWER_MAX_BYTES, SchemaRegistry

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
