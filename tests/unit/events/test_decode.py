import json

import fastavro
import httpx
import pytest

from tests.fakes.avro import SCHEMA, encode, event
from tests.fakes.kafka import FakeMessage
from worker.errors import InvalidRecord, RegistryUnavailable
from worker.events.change import Delete
from worker.events.decode import Decoder
from worker.events.registry import SchemaRegistry
from worker.events.rules import Rules
from worker.records import SourceRecord


def test_plain_avro_with_and_without_a_declared_header_decodes():
    """Without a registry, local-schema Avro is read without the 5-byte header, or with one
    whose schema id the operator declared for the local schema."""
    decoder = Decoder(SCHEMA, local_schema_ids={42})
    datum = event("u1", display_name="Ada", properties={"seats": 3, "beta": True, "gone": None})
    for value in (encode(datum), encode(datum, schema_id=42)):
        change = decoder.decode(value)
        assert change["uid"] == "u1" and change["display_name"] == "Ada"
        assert change["properties"] == {"seats": 3, "beta": True, "gone": None}
        assert change["changed_at"] == 1_700_000_000_000


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


def test_without_a_registry_an_undeclared_schema_id_is_never_read_with_the_local_schema():
    """A writer that swapped two string fields would get display_name and email swapped,
    silently: a header whose id is not declared for the local schema is a dead letter."""
    swapped = {
        **SCHEMA,
        "fields": [
            SCHEMA["fields"][0],
            SCHEMA["fields"][1],
            SCHEMA["fields"][3],
            SCHEMA["fields"][2],
            SCHEMA["fields"][4],
        ],
    }
    value = encode(event("u1", display_name="Ada", email="ada@example.com"), swapped, schema_id=8)
    for decoder in (Decoder(SCHEMA), Decoder(SCHEMA, local_schema_ids={7})):
        with pytest.raises(InvalidRecord) as info:
            decoder.decode(value)
        assert info.value.code == "undeclared_schema_id" and "8" in info.value.message
    assert Decoder(SCHEMA, local_schema_ids={8}).decode(value)["email"] == "Ada"  # as declared


def test_a_value_that_reads_both_as_plain_avro_and_as_a_declared_header_is_not_imported():
    """A plain body with an empty uid, changed_at 0, no name, no email and two properties
    starts with the bytes of schema id 4's header, and the rest reads as another user ("abc").
    Either reading could be the producer's: it is dead-lettered, never imported as "abc"."""
    value = bytes([0, 0, 0, 0, 4, 6]) + b"abc" + bytes(4)
    plain = Decoder(SCHEMA)
    with pytest.raises(InvalidRecord) as info:
        plain.decode(value)
    assert info.value.code == "empty_uid"  # what it is as plain Avro
    with pytest.raises(InvalidRecord) as info:
        Decoder(SCHEMA, local_schema_ids={4}).decode(value)
    assert info.value.code == "ambiguous_schema_id" and "4" in info.value.message
    # A header that does not read as a plain body is read as declared, as before.
    declared = encode(event("u1", email="e@x.io"), schema_id=4)
    assert Decoder(SCHEMA, local_schema_ids={4}).decode(declared)["uid"] == "u1"


@pytest.mark.parametrize("uid", ["", " ", "\t\n"], ids=["empty", "space", "white-space"])
def test_empty_uid_is_invalid(uid):
    """A user change without a uid cannot be imported and goes to the DLQ."""
    with pytest.raises(InvalidRecord) as info:
        Decoder(SCHEMA).decode(encode(event(uid)))
    assert info.value.code == "empty_uid"


@pytest.mark.parametrize(
    "changed_at_type",
    [{"type": "long", "logicalType": "timestamp-millis"}, "long"],
    ids=["timestamp-millis", "plain-long"],
)
def test_changed_at_is_epoch_millis_whatever_the_registered_writer_schema(changed_at_type):
    """A producer whose schema declares changed_at as a plain long is read like one using
    timestamp-millis (integer millis either way), not dead-lettered."""
    writer = {
        "type": "record",
        "name": "UserChange",
        "namespace": "usersync.v1",
        "fields": [
            {"name": "uid", "type": "string"},
            {"name": "changed_at", "type": changed_at_type},
        ],
    }

    def registry_answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/schemas/ids/3"
        return httpx.Response(200, json={"schema": json.dumps(writer)})

    registry = SchemaRegistry("http://127.0.0.1:1", transport=httpx.MockTransport(registry_answer))
    value = b"\x00\x00\x00\x00\x03" + encode(
        {"uid": "u", "changed_at": 1_700_000_000_123}, fastavro.parse_schema(writer)
    )
    change = Decoder(SCHEMA, registry.writer_schema).decode(value)
    assert change["changed_at"] == 1_700_000_000_123
    assert change["properties"] == {} and change["email"] is None


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
    assert (change["uid"], change["email"]) == ("u9", "e@x.io")


def test_registry_mode_requires_the_wire_format():
    """With a registry, a value without the magic byte is a DLQ case."""
    decoder = Decoder(SCHEMA, {7: SCHEMA}.__getitem__)
    with pytest.raises(InvalidRecord) as info:
        decoder.decode(b"\x01abc")
    assert info.value.code == "not_wire_format"


def test_registry_outage_is_retriable_not_a_dead_letter():
    """When the registry is down the record waits; it is not sent to the DLQ."""

    def down(_schema_id: int) -> object:
        raise RegistryUnavailable("registry unreachable")

    with pytest.raises(RegistryUnavailable):
        Decoder(SCHEMA, down).decode(encode(event("u"), schema_id=1))


def test_a_string_that_is_not_utf8_is_an_undecodable_record():
    """Invalid UTF-8 is refused (a dead letter), never decoded with replacement characters."""
    value = bytearray(encode(event("uü")))
    value[value.index("ü".encode())] = 0xFF
    with pytest.raises(InvalidRecord) as info:
        Decoder(SCHEMA).decode(bytes(value))
    assert info.value.code == "undecodable"


def tombstone(key: bytes | None) -> FakeMessage:
    return FakeMessage(SourceRecord("users", 0, 3, key, None))


@pytest.mark.parametrize("uid", ["u1", "ädä-42", "x" * 256], ids=["ascii", "unicode", "256-chars"])
def test_a_tombstone_keyed_by_a_uid_deletes_that_user(uid):
    """The worker's own producers key records by uid: a null value under a uid is a delete."""
    assert Decoder(SCHEMA).read(tombstone(uid.encode())) == Delete(uid)


@pytest.mark.parametrize(
    "key",
    [
        None,
        b"",
        b"  \t",
        b"\xff\xfeu1",
        b"\x00\x00\x00\x00\x0a\x54",  # an Avro key in wire format ({"id": 42})
        b"u" * 257,
    ],
    ids=["no-key", "empty-key", "blank-key", "not-utf8", "wire-format-key", "uid-over-256"],
)
def test_a_tombstone_whose_key_is_no_uid_is_a_dead_letter_not_a_delete(key):
    """Nobody can be deleted by a key that is no uid: the record is dead-lettered (code
    tombstone), never sent as a delete of a garbled uid."""
    with pytest.raises(InvalidRecord) as info:
        Decoder(SCHEMA).read(tombstone(key))
    assert info.value.code == "tombstone"


@pytest.mark.parametrize("uid", ["u\u200b1", "admin\u202egnp.exe"], ids=["zero-width", "bidi"])
def test_a_look_alike_uid_is_never_created_but_may_be_deleted(uid):
    """A uid with a format character is never created (``invalid_uid``); a tombstone keyed by
    one is that user's delete (a user imported before the rule, or while the operator let
    such uids through, can still be deleted; deleting creates no look-alike)."""
    with pytest.raises(InvalidRecord) as info:
        Decoder(SCHEMA).decode(encode(event(uid)))
    assert info.value.code == "invalid_uid"
    assert Decoder(SCHEMA).read(tombstone(uid.encode())) == Delete(uid)
    with pytest.raises(InvalidRecord) as info:
        Decoder(SCHEMA).read(tombstone(uid.encode() + b"\n"))  # control characters: never
    assert info.value.code == "tombstone"
    opted_in = Decoder(SCHEMA, rules=Rules(allow_format_characters=True))
    assert opted_in.read(tombstone(uid.encode())) == Delete(uid)
    assert opted_in.decode(encode(event(uid)))["uid"] == uid


def test_read_decodes_a_value_as_decode_does():
    """A record with a value is a change whatever its key."""
    value = FakeMessage(SourceRecord("users", 0, 3, b"other", encode(event("u1"))))
    assert Decoder(SCHEMA).read(value)["uid"] == "u1"
