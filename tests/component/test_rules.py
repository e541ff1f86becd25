"""One bad change never takes good ones down: an event that breaks FullStory's rules is
dead-lettered alone, with its code, and its user's other events still go."""

from __future__ import annotations

from tests.fakes.avro import encode, event


def test_bad_events_go_to_the_dlq_alone_and_the_users_good_changes_still_go(
    make_loop, kafka, fullstory
):
    stream = [
        event("u1", email="first@example.com", properties={"visits": 1}),
        event("u1", email="x" * 129),  # invalid_email
        event("u1", properties={"spent": float("nan")}),  # non_finite_number
        event("u2", properties={"visits_int": "many"}),  # type_mismatch
        event("u1", display_name="Ann", properties={"plan_str": "pro"}),
        event("u2", properties={"bad name": 1}),  # invalid_property_name
        event("u2", properties={"visits_int": 4}),
        event("u" * 300),  # invalid_uid
        event("u3", properties={f"a{i}": i for i in range(300)}),
        event("u3", properties={f"b{i}": i for i in range(300)}),  # too_many_properties
        event("u2", properties={"visits": 9, "visits_str": "many"}),  # property_collision
        event("u1\u200b"),  # invalid_uid: it would look like u1 in FullStory
    ]
    for change in stream:
        kafka.produce(0, encode(change), change["uid"][:10].encode())
    loop = make_loop()
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "a job for the good changes")
    (job,) = fullstory.jobs()
    assert len(job.users.pop("u3")["properties"]) == 300
    assert job.users == {
        "u1": {
            "uid": "u1",
            "email": "first@example.com",
            "display_name": "Ann",
            "properties": {"visits": 1, "plan": "pro"},
            "schema": {"properties": {"visits": "int", "plan": "str"}},
        },
        "u2": {
            "uid": "u2",
            "properties": {"visits": 4},
            "schema": {"properties": {"visits": "int"}},
        },
    }
    fullstory.finish(job.id)
    loop.dlq.confirm()
    loop.turn_until(kafka.committed_to_end, "everything committed")
    letters = {letter.record.offset: letter.code for letter in loop.dlq.letters}
    assert letters == {
        1: "invalid_email",
        2: "non_finite_number",
        3: "type_mismatch",
        5: "invalid_property_name",
        7: "invalid_uid",
        9: "too_many_properties",
        10: "property_collision",
        11: "invalid_uid",
    }
    assert all(letter.job_id is None for letter in loop.dlq.letters)
