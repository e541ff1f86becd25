"""Reading rejected users' records back by offset (``worker.kafka.readback``) without a broker.

A scripted consumer stands in for confluent-kafka's and answers as librdkafka does for one
assigned partition: watermarks asked of the broker, fetches that land a moment apart with a
few records each (compacted offsets skipped), a partition-EOF event from the empty fetch at
the end (which the broker holds ``fetch.wait.max.ms``), an out-of-range start reset by
``auto.offset.reset``, error events carrying their fetch position, and ``consume(n, t)``
returning once it holds ``n`` messages or ``t`` seconds passed. Time is a ``FakeClock``
that moves only where librdkafka would make the caller wait (and a microsecond a call),
so "without waiting" and "bounded in time" are checked without sleeping.
The same reads on a real broker: ``tests/integration/test_readback.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition

from tests.fakes.clock import FakeClock
from worker.errors import ReadBackFailed
from worker.kafka import readback
from worker.kafka.readback import KafkaRecordReader

TP = ("users", 3)
OFFSET_INVALID = -1001  # librdkafka's answer for a watermark it has not fetched
CALL_S = 1e-6  # what one call costs the caller, even when nothing is waited for
MAX_CALLS = 1_000  # far above what any pass here needs: past it, the reader is spinning


class Partition:
    """One partition as the broker holds it: offsets ``low``..``high - 1`` less those
    compaction removed (``gone``); record n is keyed ``k<n>``, valued ``v<n>``, with one
    header naming n. ``sizes`` gives some records a value of that many bytes instead."""

    def __init__(
        self,
        high: int,
        low: int = 0,
        gone: Iterable[int] = (),
        sizes: dict[int, bytes] | None = None,
    ) -> None:
        self.low, self.high = low, high
        self.gone = set(gone)
        self.values = sizes or {}

    def holds(self, offset: int) -> bool:
        return self.low <= offset < self.high and offset not in self.gone

    def message(self, offset: int) -> FakeMessage:
        value = self.values.get(offset, f"v{offset}".encode())
        return FakeMessage(offset, f"k{offset}".encode(), value, [("n", str(offset).encode())])


class FakeMessage:
    """A ``confluent_kafka.Message``: a record, or an event (``error`` set; EOF and fetch
    errors carry the fetch position as their offset)."""

    def __init__(
        self,
        offset: int,
        key: bytes | None = None,
        value: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        error: KafkaError | None = None,
    ) -> None:
        self._offset, self._key, self._value = offset, key, value
        self._headers, self._error = headers, error

    def error(self) -> KafkaError | None:
        return self._error

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def topic(self) -> str:
        return TP[0]

    def partition(self) -> int:
        return TP[1]


class ScriptedConsumer:
    """A confluent-kafka consumer of ``log`` as librdkafka answers.

    ``watermarks``: what the broker answers first (default: the log's own; a log that moved
    since, by retention or truncation, differs); None: the broker never answers; an
    exception: what the request raises.
    ``fetch_s``: between two fetches landing (inf: none ever lands); ``fetch_records``: the
    records one carries. ``errors``: an error event just before the record at an offset, once
    (a fetch that failed there, then read again). ``consume_raises``: what ``consume`` raises.
    """

    def __init__(
        self,
        config: dict[str, Any],
        log: Partition,
        clock: FakeClock,
        watermarks: tuple[int, int] | Exception | bool | None = True,
        watermarks_s: float = 0.002,
        fetch_s: float = 0.002,
        fetch_records: int = 4,
        errors: dict[int, KafkaError] | None = None,
        consume_raises: Exception | None = None,
    ) -> None:
        self.config = config
        self.log, self.clock = log, clock
        self.watermarks = (log.low, log.high) if watermarks is True else watermarks
        self.watermarks_s = watermarks_s
        self.fetch_s, self.fetch_records = fetch_s, fetch_records
        self.errors = dict(errors or {})
        self.consume_raises = consume_raises
        self.assigned: list[tuple[str, int, int]] = []
        self.handed: list[list[int]] = []  # the offsets each consume() returned
        self.closed = 0
        self.calls = 0
        self._queue: list[FakeMessage] = []
        self._position: int | None = None
        self._next_fetch = math.inf
        self._at_end_since: int | None = None  # the end an EOF was given for

    # -- the consumer's API -------------------------------------------------------------

    def get_watermark_offsets(
        self, partition: KafkaTopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        self._call()
        if not isinstance(cached, int):
            raise TypeError(f"{type(cached).__name__!r} object cannot be interpreted as an integer")
        if (partition.topic, partition.partition) != TP:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        if cached:
            return OFFSET_INVALID, OFFSET_INVALID  # this consumer has fetched nothing yet
        if self.watermarks is None:
            if timeout is None or timeout < 0:
                raise AssertionError("get_watermark_offsets() would wait for ever")
            self.clock.advance(timeout)
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        self.clock.advance(self.watermarks_s)
        if isinstance(self.watermarks, Exception):
            raise self.watermarks
        return self.watermarks  # type: ignore[return-value]

    def assign(self, partitions: list[KafkaTopicPartition]) -> None:
        self._call()
        [tp] = partitions
        assert (tp.topic, tp.partition) == TP, f"assigned {tp.topic}/{tp.partition}"
        self.assigned.append((tp.topic, tp.partition, tp.offset))
        self._queue.clear()
        self._position = tp.offset
        if not self.log.low <= tp.offset <= self.log.high:  # out of range: reset
            self._position = self._reset()
        self._at_end_since = None
        self._next_fetch = self.clock.monotonic() + self.fetch_s

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        self._call()
        if not isinstance(num_messages, int) or not isinstance(timeout, int | float):
            raise TypeError("consume(num_messages: int, timeout: float)")
        if not 0 <= num_messages <= 1_000_000:
            raise ValueError("num_messages must be between 0 and 1000000 (1M)")
        if self.consume_raises is not None:
            raise self.consume_raises
        end = math.inf if timeout < 0 else self.clock.monotonic() + timeout
        taken: list[FakeMessage] = []
        while True:
            self._land()
            want = num_messages - len(taken)
            taken += self._queue[:want]
            del self._queue[:want]
            if len(taken) >= num_messages or self._next_fetch > end:
                break
            if end == math.inf and (self._next_fetch == math.inf or self._drained()):
                raise AssertionError("consume() would wait for ever")
            self.clock.advance(self._next_fetch - self.clock.monotonic())
        if len(taken) < num_messages:
            if end == math.inf:
                raise AssertionError("consume() would wait for ever")
            self.clock.advance(max(0.0, end - self.clock.monotonic()))
        self.handed.append([m.offset() for m in taken if m.error() is None])
        return taken

    def close(self) -> None:
        self.closed += 1

    # -- librdkafka's fetcher -----------------------------------------------------------

    def _call(self) -> None:
        if self.closed:
            raise RuntimeError("Consumer closed")
        self.calls += 1
        assert self.calls <= MAX_CALLS, "the reader calls the consumer in a busy loop"
        self.clock.advance(CALL_S)

    def _drained(self) -> bool:
        """Every record was fetched and its end reported: nothing more will come."""
        return self._at_end_since is not None and not self._queue

    def _reset(self) -> int:
        how = self.config.get("auto.offset.reset", "largest").lower()
        if how in ("earliest", "smallest", "beginning"):
            return self.log.low
        if how in ("latest", "largest", "end"):
            return self.log.high
        raise AssertionError(f"auto.offset.reset={how!r}")

    def _land(self) -> None:
        """Every fetch due by now joins the queue."""
        while self._position is not None and self._next_fetch <= self.clock.monotonic():
            landed_at = self._next_fetch
            self._queue += self._fetch()
            at_end = self._position >= self.log.high
            # At the end the broker holds an empty fetch for fetch.wait.max.ms.
            wait_s = self.config.get("fetch.wait.max.ms", 500) / 1000 if at_end else 0.0
            self._next_fetch = landed_at + max(self.fetch_s, wait_s)

    def _fetch(self) -> list[FakeMessage]:
        assert self._position is not None
        fetched: list[FakeMessage] = []
        records = 0
        offset = self._position
        while offset < self.log.high and records < self.fetch_records:
            if offset in self.errors:
                fetched.append(FakeMessage(offset, error=self.errors.pop(offset)))
            if self.log.holds(offset):
                fetched.append(self.log.message(offset))
                records += 1
            offset += 1
        self._position = offset
        if records == 0 and offset >= self.log.high and self._at_end_since != offset:
            self._at_end_since = offset
            if self.config.get("enable.partition.eof", False):
                fetched.append(FakeMessage(offset, error=KafkaError(KafkaError._PARTITION_EOF)))
        return fetched


class Reader:
    """A ``KafkaRecordReader`` whose passes each get a ``ScriptedConsumer`` of ``log``."""

    def __init__(self, log: Partition, config: dict[str, Any] | None = None, **script: Any):
        self.clock = FakeClock(start=0.0)
        self.made: list[ScriptedConsumer] = []

        def consumer(settings: dict[str, Any]) -> ScriptedConsumer:
            made = ScriptedConsumer(settings, log, self.clock, **script)
            self.made.append(made)
            return made

        self.reader = KafkaRecordReader(
            config or {"bootstrap.servers": "127.0.0.1:9"}, consumer=consumer, clock=self.clock
        )

    def read(self, offsets: list[int]) -> dict[int, Any]:
        return self.reader.read(TP, offsets)

    @property
    def consumer(self) -> ScriptedConsumer:
        [made] = self.made
        return made


def assert_records(found: dict[int, Any], offsets: list[int]) -> None:
    """``found`` holds exactly ``offsets``, each the record that is there, whole."""
    assert sorted(found) == offsets
    for offset, record in found.items():
        assert (record.topic, record.partition, record.offset) == (*TP, offset)
        assert (record.key, record.value) == (f"k{offset}".encode(), f"v{offset}".encode())
        assert record.headers == (("n", str(offset).encode()),)
        assert record.omitted is None


# -- exactly the wanted records ----------------------------------------------------------


@pytest.mark.parametrize(
    "wanted",
    [[0, 5, 99], [3], [12, 13, 14, 15, 16], [7, 40, 41, 98]],
    ids=["first-and-last", "one", "consecutive", "scattered"],
)
def test_a_pass_returns_exactly_the_records_at_the_wanted_offsets(wanted):
    """Each wanted offset comes back with its own key, value and headers, and nothing else
    does (a dead letter carries the rejected user's records, not a neighbour's); the
    consumer starts at the lowest wanted offset, read once."""
    reader = Reader(Partition(high=100))
    assert_records(reader.read(list(reversed(wanted)) + wanted), wanted)
    assert reader.consumer.assigned == [(*TP, wanted[0])]


def test_offsets_the_partition_no_longer_holds_are_missing_and_the_rest_read():
    """Retention moved the log start past two wanted offsets, compaction removed two more,
    and two were never written (past the end): those six are missing from the answer
    (their letters go without a value), the others are read, and the pass neither starts
    below the log start nor waits for what is past the end."""
    reader = Reader(Partition(high=50, low=10, gone=[14, 30]))
    found = reader.read([2, 9, 10, 14, 15, 30, 31, 49, 50, 70])
    assert_records(found, [10, 15, 31, 49])
    assert reader.consumer.assigned == [(*TP, 10)]
    assert reader.clock.monotonic() < 0.5, "waited although the pass could end"


def test_a_log_start_that_moved_after_the_watermarks_loses_only_what_retention_removed():
    """Retention deletes a segment between the watermark answer and the fetch: the consumer
    starts again at the new log start (auto.offset.reset=earliest), so the records still
    there are read and only the deleted ones are missing (never the whole pass, as a reset
    to the end would make it)."""
    reader = Reader(Partition(high=60, low=20), watermarks=(0, 60))
    assert_records(reader.read([5, 19, 20, 33, 59]), [20, 33, 59])


def test_a_wanted_offset_compaction_removed_ends_its_span_at_the_next_record():
    """The last wanted offset of each span was compacted away: the next record past it
    ends the span (it is not kept), and the pass goes on to the next span."""
    reader = Reader(Partition(high=9_000, gone=[8, 5_002]))
    found = reader.read([3, 8, 5_000, 5_002])
    assert_records(found, [3, 5_000])
    assert [a[2] for a in reader.consumer.assigned] == [3, 5_000]


def test_error_events_are_not_records_and_the_records_after_them_are_read():
    """librdkafka hands a failed fetch to the application as an error event carrying the
    fetch position, then fetches again: an event at a wanted offset (even the last) is
    not that offset's record, and the records after it still come back whole."""
    reader = Reader(
        Partition(high=100),
        errors={
            10: KafkaError(KafkaError._TRANSPORT),
            12: KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION),
            20: KafkaError(KafkaError._TRANSPORT),
        },
    )
    assert_records(reader.read([10, 11, 12, 20]), [10, 11, 12, 20])


# -- one pass, at the speed of Kafka -----------------------------------------------------


def test_a_pass_stops_at_the_last_wanted_offset_without_consuming_further():
    """The partition goes on for thousands of records: the pass returns with the fetch that
    holds its last wanted offset, asks the consumer for nothing after it, and never waits
    out a timeout (each wait ends when a fetch lands, a few milliseconds)."""
    reader = Reader(Partition(high=5_000), fetch_records=4)
    found = reader.read([10, 13, 21])  # fetches from 10: 10-13, 14-17, 18-21
    assert_records(found, [10, 13, 21])
    consumer = reader.consumer
    assert 21 in consumer.handed[-1], "asked the consumer for more after the last wanted offset"
    assert max(o for batch in consumer.handed for o in batch) == 21
    assert reader.clock.monotonic() < 0.05, "waited out a timeout"


def test_a_pass_ends_at_the_partition_end_without_waiting_for_more():
    """The partition ends before the last wanted offset (the broker lost its tail to an
    unclean leader election after answering the watermarks): the partition-EOF event ends
    the pass at once with what was there; the rest is missing, not waited for until the
    deadline."""
    reader = Reader(Partition(high=20), watermarks=(0, 40))
    found = reader.read([5, 19, 25, 39])
    assert_records(found, [5, 19])
    assert reader.clock.monotonic() < 0.5, "waited at the partition end"


def test_an_empty_partition_answers_at_once_with_nothing():
    reader = Reader(Partition(high=0))
    assert reader.read([0, 7]) == {}
    assert reader.consumer.assigned == [], "a consumer was assigned to read nothing"
    assert reader.consumer.closed == 1


def test_a_wide_gap_between_wanted_offsets_is_jumped_not_read():
    """Wanted offsets thousands apart: the consumer is moved to each group of them instead of
    reading every record in between (which would cost the job seconds)."""
    reader = Reader(Partition(high=20_000))
    wanted = [5, 6, 6_000, 6_003, 19_999]
    assert_records(reader.read(wanted), wanted)
    consumer = reader.consumer
    assert [a[2] for a in consumer.assigned] == [5, 6_000, 19_999]
    assert sum(len(batch) for batch in consumer.handed) < 20


# -- bounded in time and bytes ------------------------------------------------------------


def test_a_pass_whose_consumer_never_answers_ends_at_its_deadline():
    """The broker answers the watermarks, then no fetch ever lands: the pass gives up at its
    deadline, not sooner and not later, waiting (not spinning) meanwhile, and the job thread
    tries again (ReadBackFailed, naming the partition)."""
    reader = Reader(Partition(high=100), fetch_s=math.inf)
    with pytest.raises(ReadBackFailed) as failed:
        reader.read([3, 4])
    assert str(failed.value) == "reading back ('users', 3): no answer in 60s"
    assert reader.clock.monotonic() == pytest.approx(readback._READ_TIMEOUT_S, abs=0.01)
    assert reader.consumer.closed == 1


def test_a_pass_that_trickles_still_ends_at_its_deadline():
    """Records keep coming, one every 0.9 s: a span of 200 would take three minutes, and the
    pass still ends at its deadline (the job thread tries again), never past it."""
    reader = Reader(Partition(high=1_000), fetch_s=0.9, fetch_records=1)
    with pytest.raises(ReadBackFailed) as failed:
        reader.read([0, 199])
    assert reader.clock.monotonic() == pytest.approx(readback._READ_TIMEOUT_S, abs=0.01)
    assert reader.consumer.closed == 1
    assert list(failed.value.found) == [0], "what the pass read goes back with its failure"


def test_a_broker_that_never_answers_the_watermarks_fails_the_pass_in_bounded_time():
    """The watermark request times out (librdkafka waits for ever without a timeout): the
    pass fails with Kafka's reason and the partition named, within the deadline."""
    reader = Reader(Partition(high=100), watermarks=None)
    with pytest.raises(ReadBackFailed) as failed:
        reader.read([3])
    assert str(failed.value).startswith("reading back ('users', 3): KafkaError{code=_TIMED_OUT")
    assert reader.clock.monotonic() <= readback._READ_TIMEOUT_S
    assert reader.consumer.assigned == []
    assert reader.consumer.closed == 1


def test_a_pass_keeps_a_bounded_number_of_bytes():
    """A record over the per-record bound (8 MiB), and a record past the pass's total
    (64 MiB), are kept without key, value and headers, saying why (their letters still
    name them); the records within the bounds are kept whole, a small one after the total
    was reached too."""
    big = b"x" * (readback.RECORD_MAX_BYTES - 100)  # one object, in each record
    fits = readback.PASS_MAX_BYTES // readback.RECORD_MAX_BYTES  # 8 of them
    sizes = dict.fromkeys(range(1, fits + 2), big)  # offsets 1..9
    sizes[0] = b"y" * readback.RECORD_MAX_BYTES
    reader = Reader(Partition(high=20, sizes=sizes), fetch_records=2)
    found = reader.read(list(range(fits + 3)))
    assert sorted(found) == list(range(fits + 3))
    over = found[0]
    assert (over.key, over.value, over.headers) == (None, None, ())
    size = readback.RECORD_MAX_BYTES + len("k0n0")
    bound = readback.RECORD_MAX_BYTES
    assert over.omitted == f"{size} bytes: over the read-back bound of {bound} a record"
    assert all(found[o].value == big and found[o].omitted is None for o in range(1, fits + 1))
    past = found[fits + 1]
    assert (past.key, past.value, past.headers) == (None, None, ())
    assert past.omitted == f"{len(big) + len('k9n9')} bytes: over what one read-back pass keeps"
    assert found[fits + 2].value == f"v{fits + 2}".encode()


# -- failures, and the consumer closed ---------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [KafkaError(KafkaError._ALL_BROKERS_DOWN), KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)],
    ids=["brokers_down", "not_authorized"],
)
def test_kafka_refusing_the_watermarks_fails_the_pass_naming_the_partition(error):
    """No watermarks, no pass: it fails with Kafka's reason and the partition named (the
    job thread logs it and tries again), and reads nothing."""
    reader = Reader(Partition(high=100), watermarks=KafkaException(error))
    with pytest.raises(ReadBackFailed) as failed:
        reader.read([3])
    assert str(failed.value) == f"reading back ('users', 3): {error}"
    assert reader.consumer.assigned == []
    assert reader.consumer.closed == 1


def test_a_consumer_failing_mid_pass_fails_it_and_is_closed():
    """consume() raising KafkaException (a fatal error) fails the pass: the job thread tries
    again with a new consumer; this one is closed, not left fetching."""
    error = KafkaError(KafkaError._FATAL)
    reader = Reader(Partition(high=100), consume_raises=KafkaException(error))
    with pytest.raises(ReadBackFailed) as failed:
        reader.read([3, 9])
    assert str(failed.value) == f"reading back ('users', 3): {error}"
    assert reader.consumer.closed == 1


def test_a_consumer_is_closed_even_when_the_pass_fails_unexpectedly():
    """Anything else (here: the consumer already closed under it) propagates as it is, a
    bug for the worker to stop on, and the consumer is still closed once."""
    reader = Reader(Partition(high=100), consume_raises=RuntimeError("Consumer closed"))
    with pytest.raises(RuntimeError):
        reader.read([3])
    assert reader.consumer.closed == 1


def test_every_pass_closes_its_own_consumer():
    """A consumer per pass, each closed when its pass returns: none is left holding a
    connection and a fetch queue (a job with rejected users in many partitions)."""
    reader = Reader(Partition(high=100))
    for offsets in ([1], [50, 60], [99]):
        reader.read(offsets)
    assert [c.closed for c in reader.made] == [1, 1, 1]


# -- what the consumer is given ----------------------------------------------------------

WORKER_CONFIG = {
    "bootstrap.servers": "127.0.0.1:9",
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "PLAIN",
    "group.id": "fullstory-user-sync",
    "group.instance.id": "worker-0",
    "enable.auto.commit": True,
    "enable.auto.offset.store": True,
    "auto.offset.reset": "latest",
    "fetch.wait.max.ms": 500,
    "queued.max.messages.kbytes": 65_536,
    "enable.partition.eof": False,
}


def test_a_pass_never_commits_in_the_workers_group_and_holds_little():
    """The read-back consumer is handed the worker's connection settings, never its group:
    it commits nothing (a commit in the worker's group would move the offsets the worker
    resumes from), reads from the log start when its offset is gone, learns the end from
    an empty fetch held 50 ms (not librdkafka's 500) and prefetches at most 4 MiB."""
    reader = Reader(Partition(high=10), config=WORKER_CONFIG)
    assert_records(reader.read([4]), [4])
    assert reader.consumer.config == {
        "bootstrap.servers": "127.0.0.1:9",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "group.id": "fullstory-user-sync-readback",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "queued.max.messages.kbytes": 4_096,
        "fetch.wait.max.ms": 50,
    }


def test_the_real_consumer_accepts_every_setting_a_pass_gives_it():
    """librdkafka refuses a property or value it does not know when the consumer is built:
    a pass's settings must all be ones it takes, or no rejected user's record is ever read
    back. (Built only: nothing is fetched, and the address is never answered.)"""
    reader = Reader(Partition(high=10))
    reader.read([4])
    real = Consumer({**reader.consumer.config, "log_level": 0})
    real.close()
