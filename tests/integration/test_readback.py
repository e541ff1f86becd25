"""Reading rejected users' records back by offset (``worker.kafka.readback``) on the real
broker: one pass per partition returns exactly the records asked for, and an offset the
partition does not hold is missing, never waited for."""

from __future__ import annotations

import pytest

from worker.kafka import readback
from worker.kafka.readback import KafkaRecordReader

pytestmark = pytest.mark.integration

RECORDS = 30


@pytest.fixture(scope="module")
def partition(broker) -> tuple[str, int]:
    """A one-partition topic of ``RECORDS`` records, the n-th keyed ``k<n>`` with value
    ``v<n>`` (offset n)."""
    topic = broker.create_topic(1, prefix="readback")
    broker.produce(topic, [(f"k{n}".encode(), f"v{n}".encode()) for n in range(RECORDS)])
    assert broker.end_offsets(topic) == {0: RECORDS}
    return topic, 0


@pytest.fixture(params=["read-through", "every-offset-a-span"])
def reader(request, broker, monkeypatch) -> KafkaRecordReader:
    """The reader as the worker builds it; also with every wanted offset in a span of its
    own, so the consumer is moved between spans as it is across wide gaps."""
    if request.param == "every-offset-a-span":
        monkeypatch.setattr(readback, "_MAX_GAP", 0)
    return KafkaRecordReader({"bootstrap.servers": broker.bootstrap})


@pytest.mark.parametrize("first", [0, 3, 12])
def test_a_pass_returns_exactly_the_records_at_the_wanted_offsets(reader, partition, first):
    """Offsets {k, k+5, last}: each comes back with its own key and value, and nothing
    else does (a dead letter carries the rejected user's records, not a neighbour's)."""
    wanted = [first, first + 5, RECORDS - 1]
    found = reader.read(partition, wanted)
    assert sorted(found) == wanted
    for offset, record in found.items():
        assert (record.topic, record.partition, record.offset) == (*partition, offset)
        assert (record.key, record.value) == (f"k{offset}".encode(), f"v{offset}".encode())


def test_offsets_past_the_partitions_end_are_missing_and_the_rest_still_read(reader, partition):
    """An offset the partition never held (a truncated or recreated topic) is missing from
    the answer, as one retention removed: its letter goes without a value, and the read
    ends instead of waiting for it."""
    found = reader.read(partition, [2, RECORDS, RECORDS + 1_000])
    assert sorted(found) == [2]
    assert found[2].value == b"v2"
    assert reader.read(partition, [RECORDS + 5]) == {}


def test_an_empty_partition_answers_at_once_with_nothing(broker, reader):
    topic = broker.create_topic(1, prefix="readback-empty")
    assert reader.read((topic, 0), [0, 7]) == {}
