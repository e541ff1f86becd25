"""The field mapping (``worker/events/mapping.py``): the ``FIELD_MAPPING`` file, checked at
start-up, and a table row of Debezium's ``users`` table mapped to the user FullStory gets."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest

from tests.fakes.debezium import (
    COLUMNS,
    MICRO_TIME,
    USER_ROW_PROPERTIES,
    USER_ROW_TYPES,
    column,
    user_row,
    value_schema,
)
from worker.config.choices import PropertyTypes
from worker.errors import ConfigError, InvalidRecord
from worker.events.change import CLEAR
from worker.events.decode import without_logical_types
from worker.events.mapping import (
    FieldMapping,
    MappingMismatch,
    RowMapper,
    load_mapping,
    parse_mapping,
)
from worker.events.merge import fold
from worker.events.rules import Rules

V2 = PropertyTypes.V2
SUFFIXED = PropertyTypes.SUFFIXED
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


def mapper(
    mapping: dict[str, Any] = MAPPING,
    mode: PropertyTypes = V2,
    columns: list[dict[str, Any]] = COLUMNS,
) -> RowMapper:
    """The mapping applied to the table's row schema, as the registry hands it out."""
    row_schema = fastavro.parse_schema(without_logical_types(value_schema(columns)))
    return RowMapper(parse_mapping(mapping, mode), row_schema, Rules(mode))


def row(**columns: Any) -> dict[str, Any]:
    """A row as fastavro reads it without logical types: NUMERIC as its unscaled bytes."""
    decoded = user_row(**columns)
    if isinstance(decoded["ltv"], Decimal):
        unscaled = int(decoded["ltv"].scaleb(2))
        decoded["ltv"] = unscaled.to_bytes(8, "big", signed=True)
    return decoded


def refused(mapped: RowMapper, data: dict[str, Any]) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        mapped.change(data)
    return caught.value


# -- the FIELD_MAPPING file ---------------------------------------------------------------


def test_a_mapping_file_loads_with_its_properties_in_the_files_order(tmp_path: Path) -> None:
    """What the operator wrote is what is read: fields, and properties in their order."""
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(MAPPING))
    mapping = load_mapping(path, V2)
    assert mapping == FieldMapping(
        uid="id",
        display_name="full_name",
        email="email",
        properties=(
            ("plan", "pricing_plan"),
            ("signed_up", "created_at"),
            ("signup_day", "signup_date"),
            ("ltv", "ltv"),
            ("visits", "visits"),
        ),
    )


def test_only_uid_is_required_and_a_column_read_twice_is_listed_once() -> None:
    mapping = parse_mapping({"uid": "email", "properties": {"contact": "email"}}, V2)
    assert (mapping.display_name, mapping.email) == (None, None)
    assert mapping.columns() == ["email"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"uid": "id",', "is not JSON"),
        ('["id"]', "JSON object"),
        ('{"uid": "id", "phone": "phone"}', "unknown key 'phone'"),
        ('{"display_name": "full_name"}', "'uid'"),
        ('{"uid": 7}', "'uid' must name a column"),
        ('{"uid": ""}', "'uid' must name a column"),
        ('{"uid": "id", "email": null}', "'email' must name a column"),
        ('{"uid": "id", "properties": ["plan"]}', "'properties' must be an object"),
        ('{"uid": "id", "properties": {"plan": 1}}', "'properties.plan' must name a column"),
        ('{"uid": "id", "properties": {"pricing-plan": "pricing_plan"}}', "'pricing-plan'"),
        ('{"uid": "id", "properties": {"1st_plan": "pricing_plan"}}', "'1st_plan'"),
        (
            '{"uid": "id", "properties": {"plan": "pricing_plan", "plan_str": "pricing_plan"}}',
            "'plan' and 'plan_str' would both be sent as 'plan'",
        ),
    ],
    ids=[
        "malformed-json", "not-an-object", "unknown-key", "missing-uid", "non-string-column",
        "empty-column", "null-column", "properties-not-an-object", "non-string-property-column",
        "dash-in-property-name", "property-name-starts-with-digit", "names-collide-in-v2",
    ],
)  # fmt: skip
def test_a_bad_mapping_file_stops_the_worker_naming_field_mapping(
    tmp_path: Path, text: str, named: str
) -> None:
    """The worker exits with one line naming FIELD_MAPPING and what is wrong, at start-up,
    rather than dead-lettering every record later."""
    path = tmp_path / "mapping.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_mapping(path, V2)
    assert caught.value.variable == "FIELD_MAPPING"
    assert named in caught.value.problem


def test_a_mapping_file_that_cannot_be_read_names_field_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^FIELD_MAPPING: cannot read .*missing\.json"):
        load_mapping(tmp_path / "missing.json", V2)


def test_names_that_differ_only_by_a_suffix_are_two_properties_in_suffixed_mode() -> None:
    """In suffixed mode ``plan_str`` keeps its suffix, so it does not collide with
    ``plan_int`` (``plan`` would collide with one of them only once its column is known)."""
    mapping = {"uid": "id", "properties": {"plan_str": "pricing_plan", "plan_int": "visits"}}
    assert len(parse_mapping(mapping, SUFFIXED).properties) == 2


# -- a row mapped to a user ----------------------------------------------------------------


def test_a_row_becomes_the_user_with_each_column_as_the_type_a_person_expects() -> None:
    """The bigint uid is sent as its decimal string, NUMERIC(12,2) as a real, timestamptz
    as written and a date as YYYY-MM-DD (both declared dates), int as int."""
    change = mapper().change(row(), changed_at=1_709_285_400_000)
    assert change == {
        "uid": "42",
        "changed_at": 1_709_285_400_000,
        "display_name": "Ada Lovelace",
        "email": "ada@example.com",
        "properties": USER_ROW_PROPERTIES,
    }
    assert fold([change]).to_request()["schema"] == {"properties": USER_ROW_TYPES}


def test_a_uid_beyond_a_doubles_precision_is_sent_digit_for_digit() -> None:
    """2**53 + 1 as a float would be another user's id."""
    assert mapper().uid(row(id=2**53 + 1)) == "9007199254740993"


def test_a_null_column_clears_its_field_or_property() -> None:
    """The row is the whole row: a NULL column is an empty value in FullStory, sent as JSON
    null, and declares no type (null conforms to any)."""
    change = mapper().change(row(email=None, full_name=None, pricing_plan=None, ltv=None))
    assert change["email"] is CLEAR and change["display_name"] is CLEAR
    assert change["properties"]["plan"] is CLEAR and change["properties"]["ltv"] is CLEAR
    request = fold([change]).to_request()
    assert request["email"] is None and request["display_name"] is None
    assert request["properties"]["plan"] is None and request["properties"]["ltv"] is None
    assert set(request["schema"]["properties"]) == {"signed_up", "signup_day", "visits"}


def test_an_unmapped_field_is_left_as_it_is() -> None:
    """No display_name in the mapping: the user's name in FullStory is never cleared."""
    change = mapper({"uid": "id"}).change(row(full_name=None))
    assert change["display_name"] is None and change["email"] is None
    assert fold([change]).to_request() == {"uid": "42"}


@pytest.mark.parametrize("uid", [None, "", "   "], ids=["null", "empty", "blank"])
def test_a_row_without_a_uid_is_refused(uid: str | None) -> None:
    assert refused(mapper({"uid": "email"}), row(email=uid)).code == "empty_uid"


def test_a_v2_mapping_may_write_v1_suffixes_and_they_are_removed() -> None:
    """``ltv_real`` on an int column is sent as ``ltv`` 17.0, declared real."""
    change = mapper({"uid": "id", "properties": {"ltv_real": "visits"}}).change(row())
    request = fold([change]).to_request()
    assert request["properties"] == {"ltv": 17.0}
    assert request["schema"] == {"properties": {"ltv": "real"}}


def test_suffixed_mode_sends_each_property_under_its_columns_type_suffix() -> None:
    """v1 naming: the suffix comes from the column's type, nothing is declared."""
    mapping = {
        "uid": "id",
        "properties": {
            "plan": "pricing_plan",
            "signed_up": "created_at",
            "ltv": "ltv",
            "visits_int": "visits",
        },
    }
    change = mapper(mapping, SUFFIXED).change(row())
    assert change["properties"] == {
        "plan_str": "pro",
        "signed_up_date": "2024-03-01T09:30:00Z",
        "ltv_real": 1234.5,
        "visits_int": 17,
    }
    assert "schema" not in fold([change]).to_request(declare_types=False)


def test_a_null_in_suffixed_mode_clears_the_suffixed_property() -> None:
    """A NULL has no type of its own: the column's type names the property it clears
    (``plan`` would clear nothing, FullStory has ``plan_str``)."""
    change = mapper({"uid": "id", "properties": {"plan": "pricing_plan"}}, SUFFIXED).change(
        row(pricing_plan=None)
    )
    assert change["properties"] == {"plan_str": CLEAR}
    assert fold([change]).to_request(declare_types=False)["properties"] == {"plan_str": None}


# -- a row schema the mapping cannot read ----------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "columns", "code", "named"),
    [
        ({"uid": "user_id"}, COLUMNS, "mapped_column_missing", "'user_id'"),
        (
            {"uid": "id", "properties": {"company": "company_name"}},
            COLUMNS,
            "mapped_column_missing",
            "'company_name'",
        ),
        ({"uid": "ltv"}, COLUMNS, "unsupported_column", "'ltv'"),
        ({"uid": "id", "email": "visits"}, COLUMNS, "unsupported_column", "'visits'"),
        (
            {"uid": "id", "properties": {"avatar": "avatar"}},
            [*COLUMNS, column("avatar", "bytes")],
            "unsupported_column",
            "'avatar'",
        ),
        (
            {"uid": "id", "properties": {"opens_at": "opens_at"}},
            [*COLUMNS, column("opens_at", MICRO_TIME)],
            "unsupported_column",
            "'opens_at'",
        ),
        (
            {"uid": "id", "properties": {"plan_int": "pricing_plan"}},
            COLUMNS,
            "unsupported_column",
            "'plan_int'",
        ),
    ],
    ids=[
        "uid-column-missing", "property-column-missing", "uid-from-numeric",
        "email-from-int", "bytea-property", "time-of-day-property", "suffix-against-column",
    ],
)  # fmt: skip
def test_a_row_schema_the_mapping_cannot_read_is_refused_once_with_its_code(
    mapping: dict[str, Any], columns: list[dict[str, Any]], code: str, named: str
) -> None:
    """Found when the schema is first read, naming the column, so every record of it is
    dead-lettered with the same code instead of failing one by one."""
    with pytest.raises(MappingMismatch) as caught:
        mapper(mapping, columns=columns)
    assert caught.value.code == code
    assert named in caught.value.message


def test_two_properties_sent_under_one_name_in_suffixed_mode_are_refused() -> None:
    """``plan`` on a text column is sent as ``plan_str``, as is ``plan_str`` itself: one
    would silently overwrite the other in every request."""
    mapping = {"uid": "id", "properties": {"plan": "pricing_plan", "plan_str": "full_name"}}
    with pytest.raises(MappingMismatch) as caught:
        mapper(mapping, SUFFIXED)
    assert caught.value.code == "unsupported_column"
    assert "'plan_str'" in caught.value.message


# -- FullStory's rules apply to the mapped user ------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "data", "code"),
    [
        ({"uid": "full_name"}, row(full_name="u" * 257), "invalid_uid"),
        ({"uid": "full_name"}, row(full_name="ada\nlovelace"), "invalid_uid"),
        ({"uid": "id", "display_name": "full_name"}, row(full_name="n" * 257),
         "invalid_display_name"),
        ({"uid": "id", "email": "email"}, row(email="e" * 129), "invalid_email"),
        ({"uid": "id", "properties": {"plan": "pricing_plan"}}, row(pricing_plan="x" * 9216),
         "property_too_large"),
        ({"uid": "id", "properties": {"churn": "churn_risk"}}, row(churn_risk=float("nan")),
         "non_finite_number"),
        ({"uid": "id", "properties": {"churn": "churn_risk"}}, row(churn_risk=float("-inf")),
         "non_finite_number"),
        ({"uid": "id", "properties": {"signed_up": "created_at"}}, row(created_at="today"),
         "undecodable"),
    ],
    ids=[
        "uid-over-256", "uid-control-character", "display-name-over-256", "email-over-128",
        "9-kb-string", "nan", "minus-infinity", "zoned-timestamp-not-iso",
    ],
)  # fmt: skip
def test_a_row_that_breaks_a_fullstory_rule_is_refused_with_its_code(
    mapping: dict[str, Any], data: dict[str, Any], code: str
) -> None:
    """Refused (a dead letter) before it reaches FullStory, which would reject the batch or
    the user."""
    assert refused(mapper(mapping), data).code == code
