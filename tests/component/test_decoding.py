"""Records on their way in: a registry outage holds them back in order, and loses none."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.avro import SCHEMA, encode, event
from worker.errors import RegistryUnavailable, RetriableError, Unreachable


class Registry:
    """Writer schemas by id; fails for the ids in ``unreachable``."""

    def __init__(self) -> None:
        self.unreachable: set[int] = set()

    def __call__(self, schema_id: int) -> Any:
        if schema_id in self.unreachable:
            raise RegistryUnavailable("schema registry unreachable")
        return SCHEMA


def test_a_registry_outage_in_the_middle_of_a_poll_loses_and_repeats_nothing(
    make_loop, kafka, fullstory
):
    """The registry is down when the third record of a poll needs a schema the worker has not
    seen (a producer moved to a new version): the two before it go out, the rest wait (none is
    dead-lettered, the commit stays below them) and, once it answers, follow in order, each
    merged once."""
    registry = Registry()
    for schema_id, email in ((1, "a@example.com"), (1, "b@example.com"), (2, "c@example.com")):
        kafka.produce(0, encode(event("u1", email=email), schema_id=schema_id), b"u1")
    kafka.produce(0, encode(event("u2"), schema_id=1), b"u2")
    registry.unreachable = {2}  # id 1 answers: it was looked up before the outage
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

    registry.unreachable.clear()
    loop.turn_until(lambda: len(fullstory.jobs()) == 2, "the held records sent")
    second = fullstory.jobs()[1]
    assert second.users["u1"] == {"uid": "u1", "email": "c@example.com"}
    assert set(second.users) == {"u1", "u2"}
    fullstory.finish(second.id)
    loop.turn_until(kafka.committed_to_end, "everything committed")
    assert not loop.dlq.letters


def test_a_partition_revoked_while_its_records_wait_for_the_registry_is_left_to_its_new_owner(
    make_loop, kafka, fullstory
):
    """Records held back by a registry outage belong to the partition's owner: a revoke drops
    the revoked partition's and keeps the others', which go once the registry answers."""
    registry = Registry()
    registry.unreachable = {2}
    kafka.produce(0, encode(event("gone"), schema_id=2), b"gone")
    kafka.produce(1, encode(event("kept"), schema_id=2), b"kept")
    loop = make_loop(registry=registry)
    loop.source.assign([0, 1])
    loop.turn(5)
    loop.source.revoke([0])
    loop.turn_until(lambda: ("users", 0) not in loop.source.assigned, "partition 0 revoked")
    registry.unreachable.clear()
    loop.turn_until(lambda: fullstory.jobs(), "the kept partition's user sent")
    assert [job.uids for job in fullstory.jobs()] == [["kept"]]
    fullstory.finish()
    loop.turn_until(lambda: kafka.committed_offset(1) == 1, "partition 1 committed")
    assert kafka.committed_offset(0) is None
    assert not loop.dlq.letters


@pytest.mark.parametrize("error", [RetriableError, Unreachable], ids=["retriable", "unreachable"])
def test_a_retriable_error_of_another_origin_while_decoding_is_not_a_registry_outage(
    make_loop, kafka, fullstory, error
):
    """Only the registry adapter's `RegistryUnavailable` holds records back to be decoded
    again. Any other error out of decoding, a `RetriableError` of another origin included (here
    FullStory's `Unreachable`), is a bug: it stops the loop (the worker logs `worker_crashed` and
    exits) instead of being waited out for ever as a registry that never comes back, and the
    record is neither dead-lettered nor committed, so a restart reads it again."""

    def lookup(_schema_id: int) -> Any:
        raise error("not the registry")

    kafka.produce(0, encode(event("u1"), schema_id=1), b"u1")
    loop = make_loop(registry=lookup)
    loop.source.assign([0])
    with pytest.raises(error):
        loop.turn(5)
    assert not loop.dlq.letters and not fullstory.jobs()
    assert kafka.committed_offset(0) is None
