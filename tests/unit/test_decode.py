import json

import fastavro
import pytest

from tests.unit.avro import SCHEMA, encode, event
from worker.decode import Decoder
from worker.errors import InvalidRecord, RetriableError


def test_plain_avro_with_and_without_header_decodes():
    """Without a registry, local-schema Avro is read whether or not it has the 5-byte header."""
    decoder = Decoder(SCHEMA)
    datum = event("u1", display_name="Ada", properties={"seats": 3, "beta": True, "gone": None})
    for value in (encode(datum), encode(datum, schema_id=42)):
        change = decoder.decode(value)
        assert change.uid == "u1" and change.display_name == "Ada"
        assert change.properties == {"seats": 3, "beta": True, "gone": None}
        assert change.changed_at_ms == 1_700_000_000_000


@pytest.mark.parametrize(
    ("value", "code"),
    [(None, "tombstone"), (b"\xff\xff garbage", "undecodable"), (b"", "undecodable")],
    ids=["tombstone", "garbage", "empty-bytes"],
)
def test_undecodable_values_are_invalid_records(value, code):
    """Bytes that are not a user change become a DLQ reason, not a crash."""
    with pytest.raises(InvalidRecord) as info:
        Decoder(SCHEMA).decode(value)
    assert info.value.code == code


def test_empty_uid_is_invalid():
    """A user change without a uid cannot be imported and goes to the DLQ."""
    with pytest.raises(InvalidRecord) as info:
        Decoder(SCHEMA).decode(encode(event("")))
    assert info.value.code == "empty_uid"


EVOLVED = fastavro.parse_schema(
    json.loads(
        json.dumps(
            {
                "type": "record",
                "name": "UserChange",
                "namespace": "usersync.v1",
                "fields": [
                    {"name": "email", "type": ["null", "string"], "default": None},
                    {"name": "uid", "type": "string"},
                    {"name": "tier", "type": "string", "default": "free"},
                    {
                        "name": "changed_at",
                        "type": {"type": "long", "logicalType": "timestamp-millis"},
                    },
                    {
                        "name": "properties",
                        "type": {
                            "type": "map",
                            "values": ["null", "boolean", "long", "double", "string"],
                        },
                        "default": {},
                    },
                    {"name": "display_name", "type": ["null", "string"], "default": None},
                ],
            }
        )
    )
)


def test_registry_writer_schema_is_resolved_against_the_reader():
    """A later writer version (fields reordered, one added) decodes into the reader shape."""
    decoder = Decoder(SCHEMA, {7: EVOLVED}.__getitem__)
    datum = {**event("u9", email="e@x.io"), "tier": "pro"}
    change = decoder.decode(encode(datum, EVOLVED, schema_id=7))
    assert (change.uid, change.email) == ("u9", "e@x.io")


def test_registry_mode_requires_the_wire_format():
    """With a registry, a value without the magic byte is a DLQ case."""
    decoder = Decoder(SCHEMA, {7: SCHEMA}.__getitem__)
    with pytest.raises(InvalidRecord) as info:
        decoder.decode(b"\x01abc")
    assert info.value.code == "not_wire_format"


def test_registry_outage_is_retriable_not_a_dead_letter():
    """When the registry is down the record waits; it is not sent to the DLQ."""

    def down(_schema_id: int) -> object:
        raise RetriableError("registry unreachable")

    with pytest.raises(RetriableError):
        Decoder(SCHEMA, down).decode(encode(event("u"), schema_id=1))
