import pytest

from tests.fakes.factories import change
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
