"""A careless producer on the real broker: good events mixed with each kind of bad one, on
the same users. The good fold reaches the sandbox, exactly the bad events reach the DLQ, each
with its reason, and the group commits to the end, in both ``PROPERTY_TYPES`` modes."""

from __future__ import annotations

import pytest

from tests.fakes.avro import RECURSIVE_WRITER_SCHEMA, SCHEMA, encode, event, nested_nodes
from tests.integration.oracle import fold_events, random_events
from tests.integration.registry import Registry
from tests.integration.test_end_to_end import _assert_sandbox_holds
from tests.integration.worker_process import wait_until
from worker.events.decode import load_reader_schema

pytestmark = pytest.mark.integration

SWAPPED = {**SCHEMA, "fields": [SCHEMA["fields"][i] for i in (0, 1, 3, 2, 4)]}

# key -> (value, the code it is dead-lettered with)
BAD = {
    b"long-email": (encode(event("user-00001", email="e" * 129)), "invalid_email"),
    b"nan": (encode(event("user-00002", properties={"spent": float("nan")})), "non_finite_number"),
    b"inf": (encode(event("user-00003", properties={"spent": float("-inf")})), "non_finite_number"),
    b"spaced-name": (encode(event("user-00001", properties={"a b": 1})), "invalid_property_name"),
    b"huge-value": (
        encode(event("user-00004", properties={"note": "x" * 9000})),
        "property_too_large",
    ),
    b"mismatch": (encode(event("user-00002", properties={"visits_int": "many"})), "type_mismatch"),
    b"long-uid": (encode(event("u" * 257)), "invalid_uid"),
    b"control-uid": (encode(event("user\x00-00001")), "invalid_uid"),
    b"look-alike-uid": (encode(event("user-0000\u200b1")), "invalid_uid"),  # shown as user-00001
    b"two-names": (
        encode(event("user-00004", properties={"plan": "gold", "plan_str": "free"})),
        "property_collision",
    ),
    b"long-name": (encode(event("user-00005", display_name="n" * 257)), "invalid_display_name"),
    b"crowded": (
        encode(event("user-00006", properties={f"p{i}": i for i in range(501)})),
        "too_many_properties",
    ),
    b"swapped": (
        encode(event("user-00003", display_name="x", email="y@z"), SWAPPED, schema_id=9),
        "undeclared_schema_id",
    ),
}


@pytest.mark.parametrize("mode", ["v2", "suffixed"])
def test_bad_events_reach_the_dlq_alone_and_every_good_change_is_imported(
    broker, sandbox, stream, start_worker, mode
):
    topic, dlq, group = stream(2)
    good = random_events(400, uids=8, seed=31)
    # suffixed names, as a producer still on FullStory's v1 naming writes them
    good += [
        event("user-00001", properties={"plan_str": "pro", "seats_int": 4, "spent_real": 3}),
        event("user-00002", properties={"beta_bool": True, "signup_date": "2024-05-01"}),
    ]
    records = [(e["uid"].encode(), encode(e)) for e in good]
    for i, (key, (value, _)) in enumerate(BAD.items()):  # spread among the good ones
        records.insert(i * 30 + 5, (key, value))
    broker.produce(topic, records)

    worker = start_worker(topic, dlq, group, PROPERTY_TYPES=mode, BATCH_MAX_USERS="3")
    end = broker.end_offsets(topic)
    wait_until(lambda: broker.committed(group, topic) == end, 90, "everything acknowledged")

    expected = fold_events(good)
    for user in expected.values():  # FullStory stores a suffixed name without its suffix
        user["properties"] = {
            name.rpartition("_")[0]
            if name.endswith(("_str", "_int", "_real", "_bool", "_date"))
            else name: value
            for name, value in user["properties"].items()
        }
    expected["user-00001"]["properties"]["spent"] = 3.0
    users = sandbox.users()
    assert set(users) == set(expected)
    for uid, want in expected.items():
        got = users[uid]
        assert (got.get("display_name"), got.get("email")) == (
            want["display_name"],
            want["email"],
        ), uid
        assert got.get("properties", {}) == want["properties"], uid
    assert users["user-00001"]["types"]["seats"] == "int"
    assert users["user-00001"]["types"]["visits"] == "int"
    assert users["user-00002"]["types"]["signup"] == "date"

    letters = broker.read_all(dlq, expected=len(BAD))
    codes = {m.key(): dict(m.headers())["dlq.error.code"].decode() for m in letters}
    assert codes == {key: code for key, (_, code) in BAD.items()}
    assert {m.key(): m.value() for m in letters} == {key: value for key, (value, _) in BAD.items()}
    assert worker.terminate() == 0


def test_a_recursive_writer_schema_is_dead_lettered_and_the_records_around_it_imported(
    broker, sandbox, stream, start_worker
):
    """Issue 18: the registry serves the reader schema plus ``junk: ["null", "Node"]``,
    ``Node`` holding an optional ``Node``, and one 20 KB value nests ``Node`` 20,000 deep.
    fastavro's compiled reader recursed in C and the worker died with SIGSEGV on every start,
    committing nothing, not even the good record before it. Now the schema is refused when
    fetched: that record is dead-lettered as ``recursive_schema``, the good records before and
    after it are imported, the group commits past all three and the worker exits 0 when
    asked."""
    topic, dlq, group = stream(1)
    bomb = nested_nodes(event("bomb"), 20_000, schema_id=2)
    assert len(bomb) > 20_000
    good = [event("good-1", display_name="One"), event("good-2", email="two@x.io")]
    with Registry() as registry:
        registry.register(1, load_reader_schema())
        registry.register(2, RECURSIVE_WRITER_SCHEMA)
        broker.produce(
            topic,
            [
                (b"good-1", encode(good[0], schema_id=1)),
                (b"bomb", bomb),
                (b"good-2", encode(good[1], schema_id=1)),
            ],
        )
        worker = start_worker(topic, dlq, group, SCHEMA_REGISTRY_URL=registry.url)
        end = broker.end_offsets(topic)

        def acknowledged() -> bool:
            assert worker.proc.poll() is None, f"the worker died: {worker.proc.returncode}"
            return broker.committed(group, topic) == end

        wait_until(acknowledged, 60, "all three acknowledged")
        assert worker.terminate() == 0
    _assert_sandbox_holds(sandbox, good)
    letters = broker.read_all(dlq, expected=1)
    assert [(m.key(), m.value()) for m in letters] == [(b"bomb", bomb)]
    assert dict(letters[0].headers())["dlq.error.code"] == b"recursive_schema"
