"""A dead letter is acknowledged only once Kafka confirmed it (``worker.kafka.dlq``).

``produce()`` accepting a letter only queues it: Kafka may still fail its delivery (a timeout,
a broker refusing it), and ``produce()`` itself may refuse it (a full queue, a letter too
large). These tests put a scripted producer in place of confluent-kafka's, so each answer is
the test's to choose, and time is a ``FakeClock``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import structlog.testing
from confluent_kafka import KafkaError, KafkaException, Producer

import worker.kafka.dlq as dlq
from tests.fakes.clock import FakeClock
from worker.errors import DeadLetterCode
from worker.records import SourceRecord

RECORD = SourceRecord("users", 2, 40, b"u1", b"v" * 300, headers=(("trace", b"t"),))


class ScriptedProducer:
    """Each ``produce`` raises the next of ``refusals`` (None: takes the letter) once they
    run out it takes every letter; each ``poll`` reports the deliveries produced so far, each
    with the next error of ``reports`` (None: delivered)."""

    refusals: ClassVar[list[Exception | None]] = []
    reports: ClassVar[list[KafkaError | None]] = []
    made: ClassVar[list[ScriptedProducer]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.produced: list[dict[str, Any]] = []
        self.polls: list[float | None] = []
        self._waiting: list[Any] = []
        ScriptedProducer.made.append(self)

    def produce(self, topic: str, **message: Any) -> None:
        self.produced.append({"topic": topic, **message})
        refusal = self.refusals.pop(0) if self.refusals else None
        if refusal is not None:
            raise refusal
        self._waiting.append(message["on_delivery"])

    def poll(self, timeout: float | None) -> int:
        self.polls.append(timeout)
        waiting, self._waiting = self._waiting, []
        for on_delivery in waiting:
            # like librdkafka, the message comes with either outcome
            on_delivery(self.reports.pop(0) if self.reports else None, object())
        return len(waiting)

    def flush(self, timeout: float | None) -> int:
        self.polls.append(timeout)
        return len(self._waiting)


@pytest.fixture(autouse=True)
def producer(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedProducer]:
    ScriptedProducer.made, ScriptedProducer.refusals, ScriptedProducer.reports = [], [], []
    monkeypatch.setattr(dlq, "Producer", ScriptedProducer)
    return ScriptedProducer


class Sink:
    """A ``KafkaDeadLetters`` on the scripted producer; counts each letter's acknowledgements."""

    def __init__(self, **config: Any) -> None:
        self.clock = FakeClock(start=0.0)
        self.errors: list[KafkaError] = []
        self.dlq = dlq.KafkaDeadLetters(
            {"bootstrap.servers": "127.0.0.1:9", **config},
            "users.dlq",
            on_error=self.errors.append,
            clock=self.clock,
        )
        self.producer = ScriptedProducer.made[-1]
        self.acknowledged: list[int] = []

    def send(self, letter: int = 0, record: SourceRecord = RECORD, **fields: Any) -> None:
        self.dlq.send(
            record,
            DeadLetterCode.FULLSTORY_REJECTED,
            "refused",
            lambda: self.acknowledged.append(letter),
            **fields,
        )

    def poll(self, after_s: float = 0.0) -> None:
        self.clock.advance(after_s)
        self.dlq.poll(0)


@pytest.mark.parametrize(
    "error",
    [KafkaError(KafkaError._MSG_TIMED_OUT), KafkaError(KafkaError.NOT_ENOUGH_REPLICAS)],
    ids=["timed_out", "not_enough_replicas"],
)
def test_a_letter_whose_delivery_failed_is_not_acknowledged_but_written_again(producer, error):
    """Kafka reports a failed delivery of a letter produce() had accepted: the source record is
    not acknowledged (its offset cannot be committed), the same letter (key, value, headers)
    is written again after a pause, and only Kafka's confirmation of that write acknowledges
    it, once."""
    producer.reports.append(error)
    sink = Sink()
    sink.send()
    sink.poll()
    assert sink.acknowledged == [], "acknowledged although Kafka reported the write failed"
    assert sink.dlq.pending() == 1
    sink.poll(dlq._RESEND_AFTER_S - 0.01)
    assert len(sink.producer.produced) == 1, "written again before the pause"
    sink.poll(0.01)
    assert len(sink.producer.produced) == 2
    sink.poll()
    assert sink.acknowledged == [0] and sink.dlq.pending() == 0
    first, again = sink.producer.produced
    assert again == first
    assert first["topic"] == "users.dlq" and first["value"] == RECORD.value
    assert first["key"] == RECORD.key
    assert ("dlq.error.code", b"fullstory_rejected") in first["headers"]


def test_a_letter_failing_every_delivery_stays_pending_and_unacknowledged(producer):
    """However often Kafka fails it, a letter is never dropped nor acknowledged: it stays
    pending (so shutdown does not commit past it) and is written again each time."""
    producer.reports.extend([KafkaError(KafkaError._MSG_TIMED_OUT)] * 50)
    sink = Sink()
    sink.send()
    for _ in range(10):
        sink.poll()  # the delivery fails
        assert sink.dlq.pending() == 1
        sink.poll(dlq._RESEND_AFTER_S)  # written again
    assert sink.acknowledged == []
    assert len(sink.producer.produced) == 11  # the first write, then one after each failure


def test_a_letter_kafka_refuses_as_too_large_goes_again_without_its_value(producer):
    """A delivery refused as too large is written again at once without the value, which
    `dlq.value.omitted` sizes; key, headers and the source coordinates still name the
    record, and the letter is acknowledged when that write is confirmed."""
    producer.reports.append(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    sink = Sink()
    sink.send()
    sink.poll()
    sink.poll()
    assert sink.acknowledged == [0] and sink.dlq.pending() == 0
    again = sink.producer.produced[1]
    assert again["value"] is None and again["key"] == RECORD.key
    assert ("dlq.value.omitted", b"300 bytes: too large") in again["headers"]
    assert ("dlq.source.offset", b"40") in again["headers"]
    assert ("trace", b"t") in again["headers"]


def test_a_letter_produce_refuses_as_too_large_goes_at_once_without_its_value(producer):
    """librdkafka refuses a message over its size limit in produce() itself: the letter is
    written again without its value (never dropped), and a second refusal of the resend
    (here: the broker briefly unknown) is tried again after the pause."""
    producer.refusals.extend(
        [
            KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)),
            KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION)),
        ]
    )
    sink = Sink()
    sink.send()
    assert sink.dlq.pending() == 1
    sink.poll()
    assert [m["value"] for m in sink.producer.produced] == [RECORD.value, None]
    assert sink.dlq.pending() == 1 and sink.acknowledged == []
    sink.poll(dlq._RESEND_AFTER_S)
    sink.poll()
    assert len(sink.producer.produced) == 3
    assert sink.acknowledged == [0] and sink.dlq.pending() == 0


def test_a_full_producer_queue_holds_the_letter_and_writes_it_shortly(producer):
    """produce() raising BufferError (librdkafka's queue is full) is no failure of the letter:
    it stays pending, goes again a moment later, and is acknowledged once delivered."""
    producer.refusals.extend([BufferError("queue full"), BufferError("queue full")])
    sink = Sink()
    sink.send()
    assert sink.dlq.pending() == 1
    sink.poll(0.05)
    assert len(sink.producer.produced) == 1, "the queue was given no moment to drain"
    sink.poll(0.05)
    assert len(sink.producer.produced) == 2 and sink.dlq.pending() == 1
    sink.poll(0.1)
    sink.poll()
    assert len(sink.producer.produced) == 3
    assert sink.acknowledged == [0] and sink.dlq.pending() == 0


def test_letters_in_flight_each_count_until_kafka_confirmed_them(producer):
    """Two letters sent are two pending until their deliveries come back (shutdown waits on
    this count); each is acknowledged once."""
    sink = Sink()
    sink.send(1)
    sink.send(2, SourceRecord("users", 2, 41, b"u2", b"w"))
    assert sink.dlq.pending() == 2
    sink.poll()
    assert sorted(sink.acknowledged) == [1, 2] and sink.dlq.pending() == 0


def test_a_letter_names_its_job_and_fullstorys_code(producer):
    """A user FullStory refused: its letter names the job, FullStory's own code and its
    message, so `dlq inspect` shows why and where; so does the worker's log line."""
    sink = Sink()
    with structlog.testing.capture_logs() as logs:
        sink.send(job_id="j7", fullstory_code="invalid_uid")
        sink.poll()
    headers = sink.producer.produced[0]["headers"]
    [logged] = [e for e in logs if e["event"] == "dead_lettered"]
    assert logged["fullstory_code"] == "invalid_uid" and logged["job_id"] == "j7"
    assert ("dlq.job.id", b"j7") in headers
    assert ("dlq.fullstory.code", b"invalid_uid") in headers
    assert ("dlq.error.message", b"refused") in headers


def test_dead_lettered_is_logged_only_once_kafka_confirmed_the_letter(producer):
    """``dead_lettered`` reads as "the letter is in the DLQ": it is not logged when the letter
    is handed to the producer, nor when Kafka reports its delivery failed (the DLQ topic
    missing, a timeout), only when Kafka confirmed it, and once."""
    producer.reports.append(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    sink = Sink()
    with structlog.testing.capture_logs() as logs:
        sink.send()
        assert [e for e in logs if e["event"] == "dead_lettered"] == [], "logged at send"
        sink.poll()  # Kafka: the delivery failed
        assert [e for e in logs if e["event"] == "dead_lettered"] == [], "logged on a failure"
        sink.poll(dlq._RESEND_AFTER_S)  # written again
        sink.poll()  # confirmed
    [logged] = [e for e in logs if e["event"] == "dead_lettered"]
    assert logged["offset"] == RECORD.offset and sink.acknowledged == [0]


def test_the_loop_polls_and_flushes_the_producer_within_the_time_it_gives(producer):
    """The poll loop never blocks on the DLQ longer than it asked, and shutdown learns how
    many letters were left unconfirmed."""
    sink = Sink()
    sink.send()
    sink.dlq.poll(0)
    sink.send()
    assert sink.dlq.flush(2.5) == 1
    assert sink.producer.polls == [0, 2.5]


def test_the_producer_waits_for_every_replica_and_never_writes_a_letter_twice(producer):
    """A letter counts as written only once every in-sync replica has it (acks=all), and a
    resend after a lost answer cannot leave it in the topic twice (idempotence); settings
    only a consumer knows are not handed to the producer."""
    sink = Sink(**{"group.id": "g", "session.timeout.ms": 9000, "security.protocol": "SSL"})
    config = sink.producer.config
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    assert config["security.protocol"] == "SSL" and config["bootstrap.servers"] == "127.0.0.1:9"
    assert "group.id" not in config and "session.timeout.ms" not in config


def test_the_producers_own_errors_reach_the_reachability_counter(producer):
    """A broker outage the producer reports goes to ``on_error`` (readiness, a counter and
    one log line per outage), not just to a log line."""
    sink = Sink()
    outage = KafkaError(KafkaError._ALL_BROKERS_DOWN)
    sink.producer.config["error_cb"](outage)
    assert sink.errors == [outage]


def test_the_real_producer_accepts_every_setting_the_sink_gives_it(monkeypatch):
    """librdkafka refuses a property it does not know when the producer is built: the
    worker's own producer settings must all be ones it knows, or the worker cannot start.
    (Built only: nothing is produced, and the address is never answered.)"""
    monkeypatch.setattr(dlq, "Producer", Producer)
    sink = dlq.KafkaDeadLetters({"bootstrap.servers": "127.0.0.1:9"}, "users.dlq")
    assert sink.pending() == 0
    assert sink.flush(0) == 0
