"""Records on their way in: a registry outage holds them back in order, and loses none."""

from __future__ import annotations

from typing import Any

from tests.unit.avro import SCHEMA, encode, event
from worker.errors import RetriableError


class Registry:
    """Writer schemas by id; after ``answers`` more lookups it is down until told."""

    def __init__(self) -> None:
        self.answers: int | None = None

    def __call__(self, schema_id: int) -> Any:
        if self.answers is not None:
            if self.answers <= 0:
                raise RetriableError("schema registry unreachable")
            self.answers -= 1
        return SCHEMA


def test_a_registry_outage_in_the_middle_of_a_poll_loses_and_repeats_nothing(
    make_loop, kafka, fullstory
):
    """The registry fails on the third record of a poll: the two before it go out, the rest
    wait (none is dead-lettered, the commit stays below them) and, once it answers, follow in
    order, each merged once."""
    registry = Registry()
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        kafka.produce(0, encode(event("u1", email=email), schema_id=1), b"u1")
    kafka.produce(0, encode(event("u2"), schema_id=1), b"u2")
    registry.answers = 2
    loop = make_loop(registry=registry)
    loop.source.assign([0])
    loop.turn_until(lambda: fullstory.jobs(), "a job for the records decoded before it failed")
    (first,) = fullstory.jobs()
    assert first.users == {"u1": {"uid": "u1", "email": "b@example.com"}}
    fullstory.finish(first.id)
    loop.turn_until(lambda: kafka.committed_offset(0) == 2, "the decoded records committed")
    loop.turn(50)
    assert kafka.committed_offset(0) == 2 and len(fullstory.jobs()) == 1
    assert not loop.dlq.letters

    registry.answers = None
    loop.turn_until(lambda: len(fullstory.jobs()) == 2, "the held records sent")
    second = fullstory.jobs()[1]
    assert second.users["u1"] == {"uid": "u1", "email": "c@example.com"}
    assert set(second.users) == {"u1", "u2"}
    fullstory.finish(second.id)
    loop.turn_until(kafka.committed_to_end, "everything committed")
    assert not loop.dlq.letters
