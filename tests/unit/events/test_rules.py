"""FullStory's published rules, checked on each event before it is merged (``worker.events.rules``)
and when it is merged (``worker.events.merge``: the 500 properties of a user)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.avro import event
from worker.errors import InvalidRecord
from worker.events.merge import UserUpdate, declared_type
from worker.events.rules import Rules


def refused(change: dict[str, Any], mode: str = "v2") -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        Rules(mode).check(change)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("change", "code", "named"),
    [
        (event("u" * 257), "invalid_uid", "256"),
        (event("a\x00b"), "invalid_uid", "control"),
        (event("a\nb"), "invalid_uid", "control"),
        (event("a\x85b"), "invalid_uid", "uid holds a control character"),
        (event("u", display_name="n" * 257), "invalid_display_name", "display_name"),
        (event("u", email="e" * 120 + "@example.com"), "invalid_email", "email"),
        (event("u", properties={"has space": 1}), "invalid_property_name", "'has space'"),
        (event("u", properties={"9lives": 1}), "invalid_property_name", "'9lives'"),
        (event("u", properties={"_x": 1}), "invalid_property_name", "'_x'"),
        (event("u", properties={"p" * 513: 1}), "invalid_property_name", "512"),
        (event("u", properties={"note": "x" * 8191}), "property_too_large", "'note'"),
        (event("u", properties={"note": "\x01" * 1366}), "property_too_large", "'note'"),
        (event("u", properties={"note": "é" * 4096}), "property_too_large", "'note'"),
        (event("u", properties={"spent": float("nan")}), "non_finite_number", "'spent'"),
        (event("u", properties={"spent": float("inf")}), "non_finite_number", "'spent'"),
        (event("u", properties={"spent": float("-inf")}), "non_finite_number", "'spent'"),
        (event("u", properties={"spent_real": float("nan")}), "non_finite_number", "'spent_real'"),
        (
            event("u", properties={f"p{i}": i for i in range(501)}),
            "too_many_properties",
            "501",
        ),
    ],
)
def test_an_event_breaking_a_rule_is_refused_with_its_code_and_the_field_named(
    change: dict[str, Any], code: str, named: str
) -> None:
    error = refused(change)
    assert error.code == code
    assert named in error.message


def test_values_are_never_shown_in_the_reason() -> None:
    """A reason goes to logs and the DLQ's headers: it names the field, never the value."""
    secret = "s3cret-" * 20
    for change in (
        event("u", email=secret),
        event("u", properties={"note": secret * 100}),
        event("u", properties={"note_int": secret}),
    ):
        assert secret[:20] not in str(refused(change))


@pytest.mark.parametrize(
    "change",
    [
        event("u" * 256, display_name="n" * 256, email="e" * 128),
        event("ü-ÿ 用户 with spaces"),
        event("u", properties={"note": "x" * 8190}),  # 8,192 bytes with its quotes
        event("u", properties={"note": "é" * 4095}),
        event("u", properties={"p" * 512: 1, "A_b9": True, "spent": 1e308, "n": None}),
        event("u", properties={f"p{i}": i for i in range(500)}),
    ],
)
def test_an_event_within_every_limit_passes_unchanged(change: dict[str, Any]) -> None:
    expected = {**change, "properties": dict(change["properties"])}
    assert Rules().check(change) == expected  # type: ignore[arg-type, comparison-overlap]


@pytest.mark.parametrize(
    ("properties", "sent", "types"),
    [
        ({"plan_str": "pro"}, {"plan": "pro"}, {"plan": "str"}),
        ({"visits_int": 7}, {"visits": 7}, {"visits": "int"}),
        ({"visits_int": 7.0}, {"visits": 7}, {"visits": "int"}),
        ({"spent_real": 3}, {"spent": 3.0}, {"spent": "real"}),
        ({"beta_bool": False}, {"beta": False}, {"beta": "bool"}),
        ({"signup_date": "2024-05-01T10:00:00Z"}, {"signup": "2024-05-01T10:00:00Z"}, None),
        ({"plan": "pro", "seen_str": None}, {"plan": "pro", "seen": None}, {"plan": "str"}),
    ],
)
def test_v2_mode_sends_a_suffixed_name_without_its_suffix_and_declares_the_type(
    properties: dict[str, Any], sent: dict[str, Any], types: dict[str, str] | None
) -> None:
    change = Rules("v2").check(event("u", properties=properties))  # type: ignore[arg-type]
    assert change["properties"] == sent
    request = UserUpdate("u")
    request.apply(change)
    declared = request.to_request()["schema"]["properties"]
    assert declared == (types or {"signup": "date"})


def test_suffixed_mode_names_every_property_with_its_type_and_declares_nothing() -> None:
    change = Rules("suffixed").check(
        event(  # type: ignore[arg-type]
            "u",
            properties={
                "plan": "pro",
                "visits": 3,
                "spent": 2.5,
                "beta": True,
                "total_real": 4,
                "signup_date": "2024-05-01",
                "gone": None,  # a null leaves the value as it is: nothing to send
            },
        )
    )
    assert change["properties"] == {
        "plan_str": "pro",
        "visits_int": 3,
        "spent_real": 2.5,
        "beta_bool": True,
        "total_real": 4.0,
        "signup_date": "2024-05-01",
    }
    update = UserUpdate("u")
    update.apply(change)
    request = update.to_request(declare_types=False)
    assert "schema" not in request and request["properties"] == change["properties"]


@pytest.mark.parametrize("mode", ["v2", "suffixed"])
@pytest.mark.parametrize(
    "properties",
    [
        {"visits_int": "many"},
        {"visits_int": 2.5},
        {"visits_int": 2.0**64},  # integral, but no int64: orjson would refuse the body
        {"visits_int": True},
        {"spent_real": "1.5"},
        {"beta_bool": 1},
        {"plan_str": 3},
        {"signup_date": "next tuesday"},
        {"signup_date": 20240501},
        {"tags_strs": "a"},  # a single value never matches a plural
    ],
)
def test_a_value_that_contradicts_its_suffix_is_a_type_mismatch(
    mode: str, properties: dict[str, Any]
) -> None:
    error = refused(event("u", properties=properties), mode)
    assert error.code == "type_mismatch"
    assert repr(next(iter(properties))) in error.message


def test_the_same_property_merges_whether_or_not_the_producer_wrote_its_suffix() -> None:
    """``plan`` and ``plan_str`` are one property in both modes: the later event wins."""
    for mode, name in (("v2", "plan"), ("suffixed", "plan_str")):
        rules, update = Rules(mode), UserUpdate("u")
        update.apply(rules.check(event("u", properties={"plan": "free"})))  # type: ignore[arg-type]
        update.apply(rules.check(event("u", properties={"plan_str": "pro"})))  # type: ignore[arg-type]
        assert update.properties == {name: "pro"}


def test_a_change_taking_the_user_over_500_properties_is_refused_and_changes_nothing() -> None:
    update = UserUpdate("u")
    update.apply(event("u", properties={f"p{i}": i for i in range(499)}))  # type: ignore[arg-type]
    update.apply(event("u", properties={"p0": -1, "p1": None}))  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord) as caught:
        update.apply(
            event("u", email="new@example.com", properties={"p0": 7, "q1": 1, "q2": 2})  # type: ignore[arg-type]
        )
    assert caught.value.code == "too_many_properties"
    assert update.email is None and update.properties["p0"] == -1
    update.apply(event("u", properties={"q1": 1, "p0": 8}))  # type: ignore[arg-type]
    assert len(update.properties) == 500 and update.properties["p0"] == 8


def test_a_date_is_declared_as_a_date() -> None:
    change = Rules().check(event("u", properties={"signup_date": "2024-05-01"}))  # type: ignore[arg-type]
    assert declared_type(change["properties"]["signup"]) == "date"  # type: ignore[arg-type]


def test_a_name_seen_before_is_checked_as_carefully_the_next_time() -> None:
    """Names already checked take a quicker path: their values are still checked."""
    rules = Rules()
    rules.check(event("u", properties={"spent": 1.5, "note": "short"}))  # type: ignore[arg-type]
    for properties, code in (
        ({"spent": float("nan")}, "non_finite_number"),
        ({"spent": float("inf")}, "non_finite_number"),
        ({"note": "x" * 8191}, "property_too_large"),
    ):
        with pytest.raises(InvalidRecord) as caught:
            rules.check(event("u", properties=properties))  # type: ignore[arg-type]
        assert caught.value.code == code
    assert Rules().check(event("u", properties={"spent": 0.0}))["properties"] == {"spent": 0.0}  # type: ignore[arg-type]


def test_only_the_last_underscore_starts_a_suffix() -> None:
    change = Rules().check(event("u", properties={"total_spent_real": 2, "is_beta": True}))  # type: ignore[arg-type]
    assert change["properties"] == {"total_spent": 2.0, "is_beta": True}


def test_name_length_counts_the_name_as_it_is_sent() -> None:
    """In ``suffixed`` mode a suffix is added (up to 5 characters, ``_real``, ``_bool``); in
    ``v2`` the suffix is removed, so a suffixed name may be longer than what is sent."""
    suffixed = Rules("suffixed")
    sent = suffixed.check(event("u", properties={"p" * 507: 1.5}))["properties"]  # type: ignore[arg-type]
    assert list(sent) == ["p" * 507 + "_real"]
    assert refused(event("u", properties={"q" * 508: 1.5}), "suffixed").code == (
        "invalid_property_name"
    )
    v2 = Rules("v2").check(event("u", properties={"p" * 509 + "_str": "x"}))  # type: ignore[arg-type]
    assert list(v2["properties"]) == ["p" * 509]


def test_a_uid_may_hold_any_character_but_a_control_or_format_one() -> None:
    for uid in ("a\u00a0b", "a\u2028b", "用户 7"):
        assert Rules().check(event(uid))["uid"] == uid  # type: ignore[arg-type]


LOOK_ALIKES = {
    "zero-width-space": ("u\u200b1", "U+200B"),
    "zero-width-non-joiner": ("u\u200c1", "U+200C"),
    "zero-width-joiner": ("u\u200d1", "U+200D"),
    "right-to-left-override": ("admin\u202egnp.exe", "U+202E"),
    "left-to-right-embedding": ("\u202au1\u202c", "U+202A"),
    "isolate": ("u\u20661\u2069", "U+2066"),
    "right-to-left-mark": ("u1\u200f", "U+200F"),
    "bom": ("\ufeffu1", "U+FEFF"),
    "soft-hyphen": ("u\u00ad1", "U+00AD"),
    "word-joiner": ("u\u20601", "U+2060"),
    "tag-character": ("u1\U000e0041", "U+E0041"),
    # printable, yet shown as nothing
    "hangul-filler": ("\u3164u1", "U+3164"),
    "variation-selector": ("u1\ufe0f", "U+FE0F"),
    "combining-grapheme-joiner": ("u\u034f1", "U+034F"),
}


@pytest.mark.parametrize(("uid", "named"), LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_a_uid_with_a_format_character_is_refused_as_it_would_look_like_another_user(
    uid: str, named: str
) -> None:
    """``u\u200b1`` is shown as ``u1`` in FullStory's UI and ``admin\u202egnp.exe`` as
    ``adminexe.png``: each would be a second user looking like another. Refused with
    ``invalid_uid``, the character named (never the uid) and the opt-in said."""
    error = refused(event(uid))
    assert error.code == "invalid_uid"
    assert named in error.message and "UID_ALLOW_FORMAT_CHARACTERS" in error.message
    assert uid not in error.message


@pytest.mark.parametrize(("uid", "_named"), LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_an_operator_may_let_format_characters_through(uid: str, _named: str) -> None:
    """``UID_ALLOW_FORMAT_CHARACTERS=true`` (uids that are Persian or emoji text need ZWNJ and
    ZWJ): the uid is imported as it is; control characters are still refused."""
    rules = Rules(allow_format_characters=True)
    assert rules.check(event(uid))["uid"] == uid  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord) as caught:
        rules.check(event(uid + "\n"))  # type: ignore[arg-type]
    assert caught.value.code == "invalid_uid"


COLLISIONS = [
    pytest.param("v2", {"plan": "gold", "plan_str": "free"}, "'plan' and 'plan_str'", "'plan'",
                 id="v2-plan"),
    pytest.param("v2", {"visits_str": "many", "visits": 3}, "'visits_str' and 'visits'",
                 "'visits'", id="v2-type-change"),
    pytest.param("v2", {"spent": 2.5, "spent_real": 2.5}, "'spent' and 'spent_real'", "'spent'",
                 id="v2-same-value"),
    pytest.param("v2", {"a": 1, "visits": 3, "b": 2, "visits_int": 4}, "'visits' and 'visits_int'",
                 "'visits'", id="v2-apart"),
    pytest.param("suffixed", {"plan": "gold", "plan_str": "free"}, "'plan' and 'plan_str'",
                 "'plan_str'", id="suffixed-plan"),
    pytest.param("suffixed", {"visits_int": 4, "visits": 3}, "'visits_int' and 'visits'",
                 "'visits_int'", id="suffixed-derived"),
]  # fmt: skip


@pytest.mark.parametrize(("mode", "properties", "both", "sent"), COLLISIONS)
def test_two_names_of_one_property_in_one_event_are_refused_naming_both(
    mode: str, properties: dict[str, Any], both: str, sent: str
) -> None:
    """``{"plan": "gold", "plan_str": "free"}`` names one property twice: which value the
    producer meant cannot be told, and keeping the last would lose the other (or turn
    ``visits`` into a string) without a word. Dead-lettered, both names said."""
    error = refused(event("u", properties=properties), mode)
    assert error.code == "property_collision"
    assert error.message == f"properties {both} are both sent as {sent}"


def test_a_collision_of_long_names_is_told_in_bounded_words() -> None:
    long = "p" * 500
    error = refused(event("u", properties={long: "a", long + "_str": "b"}))
    assert error.code == "property_collision" and len(error.message) < 300


@pytest.mark.parametrize(
    ("mode", "properties", "sent"),
    [
        ("v2", {"plan_str": "gold", "plan": None}, {"plan": "gold"}),
        ("v2", {"plan": None, "plan_str": "gold"}, {"plan": "gold"}),
        ("v2", {"plan": None, "plan_str": None}, {"plan": None}),
        ("suffixed", {"plan_str": "gold", "plan": None}, {"plan_str": "gold"}),
        ("suffixed", {"visits": 3, "visits_str": "many"}, {"visits_int": 3, "visits_str": "many"}),
    ],
    ids=["v2-null-after", "v2-null-before", "v2-nulls", "suffixed-null", "suffixed-two-types"],
)
def test_a_null_beside_its_other_name_changes_nothing_and_collides_with_nothing(
    mode: str, properties: dict[str, Any], sent: dict[str, Any]
) -> None:
    """A null leaves the property as it is, so it takes nothing from the value beside it
    (before, ``plan_str: "gold", plan: null`` sent ``plan: null`` and lost "gold"); in
    ``suffixed`` mode ``visits_int`` and ``visits_str`` are two properties."""
    change = Rules(mode).check(event("u", properties=properties))  # type: ignore[arg-type]
    assert change["properties"] == sent


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"visits_int": "many"}, "property 'visits_int' holds a str, its suffix says int"),
        (
            {"signup_date": "soon"},
            "property 'signup_date' is not an ISO-8601 date, its suffix says date",
        ),
        (
            {"visits_int": 2.0**63},
            "property 'visits_int' is beyond a 64-bit integer, its suffix says int",
        ),
        (
            {"visits_int": -(2.0**64)},
            "property 'visits_int' is beyond a 64-bit integer, its suffix says int",
        ),
        ({"beta_int": True}, "property 'beta_int' holds a bool, its suffix says int"),
        ({"n" * 100 + " x": 1}, f"property '{'n' * 64}...' does not match"),
    ],
)
def test_a_reason_says_what_is_wrong_and_where(properties: dict[str, Any], message: str) -> None:
    assert refused(event("u", properties=properties)).message.startswith(message)


def test_an_int_suffix_takes_every_integral_double_of_64_bits() -> None:
    change = Rules().check(event("u", properties={"low_int": -(2.0**63), "high_int": 2.0**62}))  # type: ignore[arg-type]
    assert change["properties"] == {"low": -(2**63), "high": 2**62}
