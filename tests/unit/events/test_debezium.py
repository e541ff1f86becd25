"""Debezium change events of a PostgreSQL ``users`` table -> events
(``worker/events/debezium.py``), from the bytes Debezium's Avro converter writes."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.debezium import (
    COLUMNS,
    COMMITTED_MS,
    KEY_SCHEMA,
    MESSAGE_SCHEMA,
    USER_ROW_PROPERTIES,
    USER_ROW_TYPES,
    change_event,
    column,
    envelope_schema,
    flattened,
    flattened_schema,
    registry,
    source,
    user_row,
    wire,
)
from tests.fakes.kafka import FakeMessage
from worker.config.choices import PropertyTypes
from worker.errors import InvalidRecord, RegistryUnavailable
from worker.events.change import CLEAR, Delete, Skip, Skipped
from worker.events.debezium import DebeziumDecoder
from worker.events.mapping import parse_mapping
from worker.events.merge import fold
from worker.events.readers import Reader, ReaderChoice, Why
from worker.events.rules import Rules
from worker.records import SourceRecord

ENVELOPE_ID, FLATTENED_ID, MESSAGE_ID, KEY_ID = 11, 12, 13, 10
ENVELOPE = envelope_schema()
FLATTENED = flattened_schema()
SCHEMAS = {ENVELOPE_ID: ENVELOPE, FLATTENED_ID: FLATTENED, MESSAGE_ID: MESSAGE_SCHEMA}
MAPPING = {
    "uid": "id",
    "display_name": "full_name",
    "email": "email",
    "properties": {
        "plan": "pricing_plan",
        "signed_up": "created_at",
        "signup_day": "signup_date",
        "ltv": "ltv",
        "visits": "visits",
    },
}
NEW_KEY = ("__debezium.newkey", wire(KEY_SCHEMA, KEY_ID, {"id": 43}))


def decoder(
    mapping: dict[str, Any] = MAPPING,
    schemas: dict[int, dict[str, Any]] = SCHEMAS,
    mode: PropertyTypes = PropertyTypes.V2,
    **callbacks: Callable[..., None],
) -> DebeziumDecoder:
    return DebeziumDecoder(
        parse_mapping(mapping, mode), registry(schemas), Rules(mode), **callbacks
    )


def message(value: bytes | None, headers: tuple[tuple[str, bytes | None], ...] = ()) -> FakeMessage:
    """A consumed record keyed as Debezium keys it (the primary key, wire format)."""
    key = wire(KEY_SCHEMA, KEY_ID, {"id": 42})
    return FakeMessage(SourceRecord("shop.public.users", 0, 7, key, value, headers))


def envelope(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> bytes:
    return wire(ENVELOPE, ENVELOPE_ID, change_event(op, before, after))


def read(value: bytes | None, **kwargs: Any) -> Any:
    return decoder().read(message(value, **kwargs))


def refused(decode: DebeziumDecoder, value: bytes) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        decode.read(message(value))
    return caught.value


# -- the raw envelope --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "before"),
    [("c", None), ("r", None), ("u", user_row(pricing_plan="free"))],
    ids=["create", "snapshot-read", "update"],
)
def test_an_inserted_read_or_updated_row_upserts_its_user(
    op: str, before: dict[str, Any] | None
) -> None:
    """The after image is the user FullStory gets, each column as the type a person expects,
    stamped with the database's commit time."""
    change = read(envelope(op, before, user_row()))
    assert change == {
        "uid": "42",
        "changed_at": COMMITTED_MS,
        "display_name": "Ada Lovelace",
        "email": "ada@example.com",
        "properties": USER_ROW_PROPERTIES,
    }
    assert fold([change]).to_request()["schema"] == {"properties": USER_ROW_TYPES}


def test_an_update_of_unmapped_columns_only_is_skipped() -> None:
    """A login (only last_login_at, which the mapping does not read, changed) sends nothing
    to FullStory; a change of a mapped column does."""
    before = user_row()
    assert read(envelope("u", before, user_row(last_login_at=1_709_371_800_000_000))) == Skipped(
        Skip.UNCHANGED
    )
    changed = read(envelope("u", before, user_row(visits=18)))
    assert changed["properties"]["visits"] == 18


def test_an_update_without_a_before_image_upserts() -> None:
    """Without REPLICA IDENTITY FULL, PostgreSQL gives no before image of an update: what
    changed cannot be told, so the row is sent."""
    assert read(envelope("u", None, user_row()))["uid"] == "42"


def test_a_null_column_clears_the_value_in_fullstory() -> None:
    """``UPDATE users SET email = NULL``: FullStory's email is emptied (JSON null), not left
    as it was."""
    change = read(envelope("u", user_row(), user_row(email=None, pricing_plan=None)))
    assert change["email"] is CLEAR and change["properties"]["plan"] is CLEAR
    request = fold([change]).to_request()
    assert request["email"] is None and request["properties"]["plan"] is None
    assert "plan" not in request["schema"]["properties"]


@pytest.mark.parametrize(
    ("ltv", "sent"),
    [("1234.50", 1234.5), ("-0.01", -0.01), ("9999999999.99", 9999999999.99), ("0", 0.0)],
    ids=["positive", "negative-cents", "largest", "zero"],
)
def test_numeric_12_2_is_sent_as_a_real(ltv: str, sent: float) -> None:
    """Written by Connect as unscaled two's-complement bytes with scale 2; read without the
    logical type, it is still the amount the table holds."""
    change = read(envelope("c", None, user_row(ltv=Decimal(ltv))))
    assert change["properties"]["ltv"] == sent


def test_dates_and_timestamps_are_sent_as_iso_dates() -> None:
    """timestamptz as written, date as YYYY-MM-DD, timestamp (µs, no zone) in UTC."""
    mapping = {
        "uid": "id",
        "properties": {"signed_up": "created_at", "day": "signup_date", "seen": "last_login_at"},
    }
    row = user_row(created_at="2024-03-01T10:30:00.5+01:00", signup_date=-1)
    change = decoder(mapping).read(message(envelope("c", None, row)))
    assert change["properties"] == {
        "signed_up": "2024-03-01T10:30:00.5+01:00",
        "day": "1969-12-31",
        "seen": "2024-03-01T09:30:00.123456Z",
    }
    assert set(fold([change]).to_request()["schema"]["properties"].values()) == {"date"}


def test_a_bigint_uid_is_its_exact_decimal_string() -> None:
    assert read(envelope("c", None, user_row(id=2**63 - 1)))["uid"] == "9223372036854775807"


def test_a_deleted_row_deletes_its_user() -> None:
    """With REPLICA IDENTITY DEFAULT the before image holds only the primary key: enough when
    the uid is the primary key."""
    key_only = {c["name"]: None for c in COLUMNS} | {"id": 42}
    assert read(envelope("d", key_only, None)) == Delete("42")


def test_a_delete_whose_before_image_lacks_the_uid_is_a_dead_letter() -> None:
    """uid mapped to email, REPLICA IDENTITY DEFAULT: the delete carries only the id, and the
    user cannot be named. Dead-lettered with its own code, never deleting a wrong user."""
    key_only = {c["name"]: None for c in COLUMNS} | {"id": 42}
    caught = refused(decoder({"uid": "email"}), envelope("d", key_only, None))
    assert caught.code == "delete_without_uid"
    assert "REPLICA IDENTITY FULL" in caught.message
    assert decoder({"uid": "email"}).read(message(envelope("d", user_row(), None))) == Delete(
        "ada@example.com"
    )


@pytest.mark.parametrize("op", ["c", "d"], ids=["upsert", "delete"])
def test_a_uid_with_a_format_character_is_never_upserted_but_may_be_deleted(op: str) -> None:
    """uid mapped to email, ``ada\u200b@example.com``: shown as ``ada@example.com`` in
    FullStory, so refused for an upsert unless the operator let such uids through; its
    delete goes through (deleting creates no look-alike, and a user imported before the rule
    can still be deleted)."""
    row = user_row(email="ada\u200b@example.com")
    value = envelope(op, row, None) if op == "d" else envelope(op, None, row)
    if op == "d":
        assert decoder({"uid": "email"}).read(message(value)) == Delete("ada\u200b@example.com")
    else:
        assert refused(decoder({"uid": "email"}), value).code == "invalid_uid"
    opted_in = DebeziumDecoder(
        parse_mapping({"uid": "email"}, PropertyTypes.V2),
        registry(SCHEMAS),
        Rules(allow_format_characters=True),
    )
    event = opted_in.read(message(value))
    assert (event.uid if op == "d" else event["uid"]) == "ada\u200b@example.com"


def test_the_delete_half_of_a_primary_key_change_is_skipped() -> None:
    """``UPDATE users SET id = 43``: Debezium deletes 42 (header ``__debezium.newkey``) and
    creates 43. The user is not deleted in between."""
    assert read(envelope("d", user_row(), None), headers=(NEW_KEY,)) == Skipped(Skip.KEY_CHANGE)


def test_a_tombstone_is_skipped() -> None:
    """The delete before it carried the delete; the tombstone is only for log compaction."""
    assert read(None) == Skipped(Skip.TOMBSTONE)


def test_a_truncate_is_skipped_not_a_delete_of_every_user() -> None:
    assert read(envelope("t", None, None)) == Skipped(Skip.TRUNCATE)


def test_a_logical_decoding_message_is_skipped_not_a_broken_mapping() -> None:
    """``pg_logical_emit_message`` events (op ``m``, no before or after) routed to the
    users topic are skipped, and do not report the mapping as not fitting."""
    problems: list[tuple[int, str]] = []
    datum = {
        "op": "m",
        "ts_ms": COMMITTED_MS,
        "source": source() | {"schema": "", "table": ""},
        "message": {"prefix": "audit", "content": b'{"who": "ops"}'},
    }
    decode = decoder(on_problem=lambda *problem: problems.append(problem))
    assert decode.read(message(wire(MESSAGE_SCHEMA, MESSAGE_ID, datum))) == Skipped(Skip.MESSAGE)
    assert problems == []


def test_an_unknown_op_is_a_dead_letter() -> None:
    assert refused(decoder(), envelope("x", None, user_row())).code == "unknown_op"


def test_a_create_without_an_after_image_is_a_dead_letter() -> None:
    assert refused(decoder(), envelope("c", None, None)).code == "not_a_change_event"


# -- the flattened row of ExtractNewRecordState ------------------------------------------------


def flat(op: str, deleted: bool = False, **columns: Any) -> bytes:
    return wire(FLATTENED, FLATTENED_ID, flattened(op, deleted, **columns))


def test_a_flattened_row_upserts_its_user() -> None:
    change = read(flat("u", email=None))
    assert change["uid"] == "42" and change["email"] is CLEAR
    assert change["changed_at"] == COMMITTED_MS  # __source_ts_ms
    assert change["properties"]["ltv"] == 1234.5


@pytest.mark.parametrize(
    ("op", "deleted"),
    [("d", True), ("u", True), ("d", False)],
    ids=["rewrite-mode-delete", "deleted-flag-only", "op-d-only"],
)
def test_a_flattened_delete_deletes_its_user(op: str, deleted: bool) -> None:
    """``delete.tombstone.handling.mode=rewrite``: the before row with ``__deleted: "true"``
    (a string); ``__op`` d says so too."""
    assert read(flat(op, deleted)) == Delete("42")


def test_a_flattened_row_marked_not_deleted_is_an_upsert() -> None:
    """``__deleted`` is the string "false" on every other record: not a delete."""
    assert read(flat("c", deleted=False))["uid"] == "42"


def test_the_flattened_delete_half_of_a_key_change_is_skipped() -> None:
    assert read(flat("d", deleted=True), headers=(NEW_KEY,)) == Skipped(Skip.KEY_CHANGE)


# -- a table schema the mapping does not fit ---------------------------------------------------


def test_a_missing_column_is_reported_once_and_every_record_of_its_schema_is_refused() -> None:
    """The operator hears about the mapping once per schema id (readiness, a log line); each
    record is dead-lettered with the reason. After ``ALTER TABLE ADD COLUMN``, Debezium
    registers a new schema id whose records are imported."""
    problems: list[tuple[int, str]] = []
    readers: list[ReaderChoice] = []
    with_company = envelope_schema([*COLUMNS, column("company", "string")])
    mapping = {"uid": "id", "properties": {"company": "company"}}
    decode = decoder(
        mapping,
        {ENVELOPE_ID: ENVELOPE, 21: with_company},
        on_problem=lambda *problem: problems.append(problem),
        on_reader=readers.append,
    )
    for op in ("c", "u", "d"):
        caught = refused(decode, envelope(op, user_row(), user_row()))
        assert caught.code == "mapped_column_missing"
        assert "'company'" in caught.message
    assert len(problems) == 1
    assert problems[0][0] == ENVELOPE_ID and "'company'" in problems[0][1]

    evolved = wire(with_company, 21, change_event("c", None, user_row(company="Analytical")))
    assert decode.read(message(evolved))["properties"] == {"company": "Analytical"}
    assert len(problems) == 1
    assert readers == [
        ReaderChoice(Reader.FASTAVRO, Why.TABLE_SCHEMA, ENVELOPE_ID),
        ReaderChoice(Reader.FASTAVRO, Why.TABLE_SCHEMA, 21),
    ]


def test_refusing_a_schemas_records_holds_no_more_memory_with_each_record() -> None:
    """Every record of a schema the mapping cannot read is refused with its own exception: a
    stored one raised again would keep each raise's frames, growing without end."""
    with_avatar = envelope_schema([*COLUMNS, column("avatar", "bytes")])
    decode = decoder({"uid": "id", "properties": {"avatar": "avatar"}}, {5: with_avatar})
    value = wire(with_avatar, 5, change_event("c", None, user_row(avatar=b"\x89PNG")))
    first = refused(decode, value)
    for _ in range(50):
        last = refused(decode, value)
    assert last is not first
    assert len(traceback.extract_tb(last.__traceback__)) == len(
        traceback.extract_tb(first.__traceback__)
    )


def test_a_column_of_a_type_fullstory_cannot_take_is_refused() -> None:
    with_avatar = envelope_schema([*COLUMNS, column("avatar", "bytes")])
    decode = decoder({"uid": "id", "properties": {"avatar": "avatar"}}, {5: with_avatar})
    value = wire(with_avatar, 5, change_event("c", None, user_row(avatar=b"\x89PNG")))
    assert refused(decode, value).code == "unsupported_column"


def test_a_value_that_is_not_a_record_is_refused() -> None:
    decode = decoder(schemas={3: {"type": "string"}})
    assert refused(decode, b"\x00\x00\x00\x00\x03\x02a").code == "not_a_change_event"


# -- suffixed property names (PROPERTY_TYPES=suffixed) -----------------------------------------


def test_suffixed_mode_names_properties_by_their_columns_type_and_nulls_clear_them() -> None:
    mapping = {"uid": "id", "properties": {"plan": "pricing_plan", "signed_up": "created_at"}}
    decode = decoder(mapping, mode=PropertyTypes.SUFFIXED)
    change = decode.read(message(envelope("c", None, user_row())))
    assert change["properties"] == {"plan_str": "pro", "signed_up_date": "2024-03-01T09:30:00Z"}
    cleared = decode.read(message(envelope("u", user_row(), user_row(pricing_plan=None))))
    assert cleared["properties"]["plan_str"] is CLEAR
    request = fold([change, cleared]).to_request(declare_types=False)
    assert request["properties"] == {
        "plan_str": None,
        "signed_up_date": "2024-03-01T09:30:00Z",
    }
    assert "schema" not in request


# -- FullStory's rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "after", "code"),
    [
        ({"uid": "full_name"}, user_row(full_name="u" * 257), "invalid_uid"),
        ({"uid": "id", "properties": {"plan": "pricing_plan"}}, user_row(pricing_plan="x" * 9216),
         "property_too_large"),
        ({"uid": "id", "properties": {"churn": "churn_risk"}}, user_row(churn_risk=float("nan")),
         "non_finite_number"),
        ({"uid": "email"}, user_row(email=None), "empty_uid"),
    ],
    ids=["uid-over-256", "9-kb-string", "nan", "null-uid"],
)  # fmt: skip
def test_fullstory_rules_apply_to_mapped_rows(
    mapping: dict[str, Any], after: dict[str, Any], code: str
) -> None:
    """Each is a dead letter of its own; the other users of the batch still go."""
    assert refused(decoder(mapping), envelope("c", None, after)).code == code


def test_a_deleted_uid_breaking_a_rule_is_a_dead_letter() -> None:
    """A uid FullStory could never hold is not sent to its delete endpoint."""
    decode = decoder({"uid": "full_name"})
    assert refused(decode, envelope("d", user_row(full_name="u" * 257), None)).code == (
        "invalid_uid"
    )


# -- bytes that are no change event -------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [b"", b"\x00\x00\x00", b"\x01\x00\x00\x00\x0b\x00", b'{"op": "c"}'],
    ids=["empty", "short", "magic-byte-1", "json"],
)  # fmt: skip
def test_a_value_not_in_wire_format_is_a_dead_letter(value: bytes) -> None:
    assert refused(decoder(), value).code == "not_wire_format"


@pytest.mark.parametrize(
    "value",
    [
        b"\x00\x00\x00\x00\x0b",
        b"\x00\x00\x00\x00\x0b\xff\xff\xff\xff",
        envelope("c", None, user_row())[:-3],
        envelope("c", None, user_row()) + b"\x00",
    ],
    ids=["no-body", "garbage", "truncated", "trailing-byte"],
)
def test_undecodable_bytes_are_a_dead_letter(value: bytes) -> None:
    assert refused(decoder(), value).code == "undecodable"


def test_a_registry_outage_waits_instead_of_dead_lettering() -> None:
    def down(_schema_id: int) -> Any:
        raise RegistryUnavailable("registry unreachable")

    decode = DebeziumDecoder(parse_mapping(MAPPING, PropertyTypes.V2), down)
    with pytest.raises(RegistryUnavailable):
        decode.read(message(envelope("c", None, user_row())))


def test_a_long_text_debezium_could_not_read_is_left_as_it_is() -> None:
    """An update that left a TOASTed text unchanged, without REPLICA IDENTITY FULL, carries
    Debezium's placeholder: FullStory keeps the value it has, never gets that text."""
    mapping = {"uid": "id", "display_name": "full_name", "properties": {"plan": "pricing_plan"}}
    placeholder = "__debezium_unavailable_value"
    after = user_row(full_name=placeholder, pricing_plan=placeholder)
    change = decoder(mapping).read(message(envelope("u", None, after)))
    assert change["display_name"] is None and change["properties"] == {}
    assert fold([change]).to_request() == {"uid": "42"}
