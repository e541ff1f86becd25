"""``preview``'s pure part: records folded as ``run`` folds them, and what is printed."""

from __future__ import annotations

import orjson
import pytest

from tests.fakes.avro import encode, event
from tests.fakes.kafka import FakeMessage
from worker.events.decode import Decoder, load_reader_schema
from worker.events.merge import UserUpdate
from worker.fullstory.importer import encode_body
from worker.ops.preview_fold import Preview, as_json, bodies, fold, lines, parse_moment
from worker.records import Fetched, SourceRecord

TOPIC = "users"


def _run(partition: int, *values: tuple[bytes | None, bytes | None]) -> Fetched:
    messages = [
        FakeMessage(SourceRecord(TOPIC, partition, offset, key, value))
        for offset, (key, value) in enumerate(values)
    ]
    return Fetched((TOPIC, partition), messages)  # type: ignore[arg-type]


def _change(uid: str, **fields: object) -> tuple[bytes, bytes]:
    return uid.encode(), encode(event(uid, **fields))


def _fold(*runs: Fetched, max_users: int = 100, deletes: bool = False) -> Preview:
    decoder = Decoder(load_reader_schema())
    return fold(runs, decoder.read, batch_max_users=max_users, deletes=deletes)


def test_a_users_changes_merge_into_one_user_with_its_types_and_a_bad_record_is_a_dead_letter():
    """Two changes of u1 are one request object that counts two records, each property with
    the type FullStory is told; the record that is not Avro is shown with its code and place."""
    preview = _fold(
        _run(
            0,
            _change("u1", display_name="Ann", properties={"plan": "pro", "age": 31}),
            (b"x", b"\x07not avro"),
            _change("u1", email="ann@example.com", properties={"plan": "team", "score": 2.5}),
        )
    )
    text = "\n".join(lines(preview))
    assert "would send 1 user(s) in 1 request(s)" in text
    assert "  u1  (2 records, users[0])" in text
    assert 'email: "ann@example.com"' in text
    assert 'plan = "team" (str)' in text
    assert "age = 31 (int)" in text
    assert "score = 2.5 (real)" in text
    assert "would dead-letter 1 record(s)\n  users[0]@1 undecodable: " in text
    [letter] = as_json(preview, declare_types=True)["dead_letters"]
    assert (letter["offset"], letter["code"]) == (1, "undecodable")


def test_the_bodies_are_the_importers_bytes_split_by_the_batch_size():
    """Three users with BATCH_MAX_USERS=2: two bodies, each exactly what the importer POSTs."""
    preview = _fold(
        _run(0, _change("a", properties={"n": 1}), _change("b"), _change("c", email="c@x.io")),
        max_users=2,
    )
    sent = bodies(preview, declare_types=True)
    assert [[r["uid"] for r in body["requests"]] for body in sent] == [["a", "b"], ["c"]]
    first = [UserUpdate("a", properties={"n": 1}), UserUpdate("b")]
    assert sent[0] == orjson.loads(encode_body(first))
    assert sent[0]["requests"][0]["schema"] == {"properties": {"n": "int"}}


def test_one_uid_on_two_partitions_goes_in_two_requests_as_run_sends_it():
    preview = _fold(_run(0, _change("u")), _run(1, _change("u", email="u@x.io")))
    assert [[u.tp for u in batch] for batch in preview.batches] == [[(TOPIC, 0)], [(TOPIC, 1)]]


@pytest.mark.parametrize(
    ("deletes", "expected"),
    [(True, "would delete 1 user(s)\n  u  (2 records, users[0])"), (False, "delete_ignored 1")],
    ids=["on-delete-delete", "on-delete-ignore"],
)
def test_a_tombstone_is_shown_as_a_delete_or_a_skip(deletes, expected):
    """With ON_DELETE=delete the user's earlier change is never sent (the delete stands for
    it); with ignore the change goes and the tombstone is counted as skipped."""
    preview = _fold(_run(0, _change("u", email="u@x.io"), (b"u", None)), deletes=deletes)
    assert expected in "\n".join(lines(preview))
    assert bool(preview.batches) is not deletes
    assert as_json(preview, True)["deletes"] == ([{"uid": "u", "records": 2}] if deletes else [])


def test_peer_text_is_escaped_on_one_line():
    """A name or a value with a terminal escape or a bidi control cannot rewrite the screen."""
    preview = _fold(_run(0, _change("u", display_name="\x1b[2J", properties={"n": "a\u202eb"})))
    text = "\n".join(lines(preview))
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\u001b[2J" in text and "a\\u202eb" in text


@pytest.mark.parametrize(
    ("text", "ms"),
    [("1700000000000", 1_700_000_000_000), ("2023-11-14T22:13:20+00:00", 1_700_000_000_000)],
    ids=["epoch-ms", "iso"],
)
def test_from_timestamp_takes_milliseconds_or_iso_with_an_offset(text, ms):
    assert parse_moment(text) == ms


@pytest.mark.parametrize("text", ["2023-11-14T22:13:20", "yesterday"], ids=["naive", "garbage"])
def test_from_timestamp_refuses_a_time_without_offset_or_a_non_time(text):
    with pytest.raises(ValueError, match="--from-timestamp"):
        parse_moment(text)
