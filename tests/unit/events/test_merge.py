import pytest

from tests.fakes.factories import change
from worker.events.change import CLEAR, PropertyValue, UserChange
from worker.events.merge import declared_type, fold


def test_later_non_null_fields_win_and_nulls_leave_values():
    """A null display_name/email/property in a later event does not erase the earlier value."""
    update = fold(
        [
            change("u1", display_name="Ada", email="a@x.io", plan="free", seats=1),
            change("u1", display_name=None, email="b@x.io", plan=None, seats=3),
        ]
    )
    assert update.to_request() == {
        "uid": "u1",
        "display_name": "Ada",
        "email": "b@x.io",
        "properties": {"plan": "free", "seats": 3},
        "schema": {"properties": {"plan": "str", "seats": "int"}},
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "bool"),
        (False, "bool"),
        (7, "int"),
        (0, "int"),
        (2.5, "real"),
        (3.0, "real"),
        ("x", "str"),
    ],
    ids=["true", "false", "long", "zero", "double", "integral-double", "string"],
)
def test_declared_type_follows_the_avro_type(value, expected):
    """Integers are declared int (FullStory would otherwise infer real); bools are not ints."""
    assert declared_type(value) == expected


def test_user_with_only_uid_sends_only_uid():
    """No empty properties/schema objects are sent for a change that sets nothing."""
    assert fold([change("u2")]).to_request() == {"uid": "u2"}


def test_fold_refuses_mixed_uids():
    """Folding two users into one request would corrupt both."""
    with pytest.raises(ValueError, match="one uid"):
        fold([change("a"), change("b")])


def test_property_type_follows_the_latest_value():
    """A property whose type changed is declared with its latest type."""
    request = fold([change("u", score=1), change("u", score=1.5)]).to_request()
    assert request["properties"] == {"score": 1.5}
    assert request["schema"] == {"properties": {"score": "real"}}


def cleared(uid: str, **properties: PropertyValue) -> UserChange:
    """A full row's change: NULL columns clear (``events.mapping``)."""
    return change(uid, display_name=CLEAR, email=CLEAR, **properties)  # type: ignore[arg-type]


def test_a_cleared_field_or_property_is_sent_as_null_and_declares_no_type():
    """FullStory empties a value sent as null; null fits every type, so none is declared
    (declaring one from the CLEAR marker would be a wrong type or a crash)."""
    request = fold([change("u1", plan="pro", seats=3), cleared("u1", plan=CLEAR)]).to_request()
    assert request == {
        "uid": "u1",
        "display_name": None,
        "email": None,
        "properties": {"plan": None, "seats": 3},
        "schema": {"properties": {"seats": "int"}},
    }


def test_only_cleared_properties_send_no_schema():
    request = fold([cleared("u1", plan=CLEAR)]).to_request()
    assert request["properties"] == {"plan": None} and "schema" not in request
    assert fold([cleared("u1", plan=CLEAR)]).to_request(declare_types=False)["properties"] == {
        "plan": None
    }


def test_a_later_value_replaces_a_clear_and_a_later_null_keeps_it():
    """Offset order decides: a row's NULL then a new value sets it; a partial event's null
    (leave as it is) after a NULL leaves it cleared."""
    set_again = fold([cleared("u1", plan=CLEAR), change("u1", email="a@x.io", plan="team")])
    assert set_again.to_request()["properties"] == {"plan": "team"}
    assert set_again.to_request()["email"] == "a@x.io"
    kept = fold([cleared("u1", plan=CLEAR), change("u1", plan=None)]).to_request()
    assert kept["properties"] == {"plan": None} and kept["email"] is None
