"""Reading back a rejected user's records for their dead letters (``loop/dispatch.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from tests.fakes.factories import record
from worker.loop.dispatch import GONE, records_at
from worker.records import SourceRecord, TopicPartition


class _Log:
    """A partition from which retention or compaction removed some records."""

    def __init__(self, *offsets: int) -> None:
        self.records = {o: record(o, partition=3) for o in offsets}
        self.asked: list[tuple[TopicPartition, list[int]]] = []

    def read(self, tp: TopicPartition, offsets: Sequence[int]) -> dict[int, SourceRecord]:
        self.asked.append((tp, list(offsets)))
        return {o: self.records[o] for o in offsets if o in self.records}


def test_every_offset_gets_its_record_and_a_gone_one_a_stand_in_naming_it():
    """A dead letter is never lost because its record left the topic: the stand-in keeps the
    record's coordinates (its letter's dlq.source.*) and says why it has no key or value."""
    log = _Log(10, 12)
    found = records_at(log, ("users", 3), [10, 11, 12])
    assert log.asked == [(("users", 3), [10, 11, 12])]
    assert [r.offset for r in found] == [10, 11, 12]
    assert found[0] is log.records[10] and found[2] is log.records[12]
    gone = found[1]
    assert (gone.topic, gone.partition, gone.offset) == ("users", 3, 11)
    assert (gone.key, gone.value) == (None, None)
    assert gone.omitted == GONE


def test_records_still_in_the_topic_are_passed_as_read():
    log = _Log(5, 6)
    assert records_at(log, ("users", 3), [5, 6]) == [log.records[5], log.records[6]]
