"""A dead letter is acknowledged only once Kafka confirmed it (``worker.kafka.dlq``).

``produce()`` accepting a letter only queues it: Kafka may still fail its delivery (a timeout,
a broker refusing it). These tests put a scripted producer in place of confluent-kafka's, so
each delivery report is the test's to choose.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError

import worker.kafka.dlq as dlq
from worker.errors import DeadLetterCode
from worker.records import SourceRecord

RECORD = SourceRecord("users", 2, 40, b"u1", b"v" * 300, headers=(("trace", b"t"),))


class ScriptedProducer:
    """Takes every ``produce``; each ``poll`` reports the deliveries produced so far, each
    with the next error of ``reports`` (None: delivered) once they run out."""

    reports: ClassVar[list[KafkaError | None]] = []
    made: ClassVar[list[ScriptedProducer]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.produced: list[dict[str, Any]] = []
        self._waiting: list[Any] = []
        ScriptedProducer.made.append(self)

    def produce(self, topic: str, **message: Any) -> None:
        self.produced.append({"topic": topic, **message})
        self._waiting.append(message["on_delivery"])

    def poll(self, _timeout: float) -> int:
        waiting, self._waiting = self._waiting, []
        for on_delivery in waiting:
            # like librdkafka, the message comes with either outcome
            on_delivery(self.reports.pop(0) if self.reports else None, object())
        return len(waiting)


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch):
    """The producer a ``KafkaDeadLetters`` builds, scripted; resends go without the pause."""
    ScriptedProducer.made = []
    monkeypatch.setattr(dlq, "Producer", ScriptedProducer)
    monkeypatch.setattr(dlq, "_RESEND_AFTER_S", 0.0)
    return ScriptedProducer


def _send_and_poll(reports: list[KafkaError | None], polls: int):
    """One letter sent; Kafka reports ``reports`` in turn; returns how often it was
    acknowledged after each poll, the sink and its producer."""
    ScriptedProducer.reports = list(reports)
    sink = dlq.KafkaDeadLetters({"bootstrap.servers": "127.0.0.1:9"}, "users.dlq")
    acknowledged: list[int] = []
    sink.send(RECORD, DeadLetterCode.FULLSTORY_REJECTED, "refused", lambda: acknowledged.append(1))
    after_poll = []
    for _ in range(polls):
        sink.poll(0)
        after_poll.append(len(acknowledged))
    return after_poll, sink, ScriptedProducer.made[-1]


@pytest.mark.parametrize(
    "error",
    [KafkaError(KafkaError._MSG_TIMED_OUT), KafkaError(KafkaError.NOT_ENOUGH_REPLICAS)],
    ids=["timed_out", "not_enough_replicas"],
)
def test_a_letter_whose_delivery_failed_is_not_acknowledged_but_written_again(producer, error):
    """Kafka reports a failed delivery of a letter produce() had accepted: the source record is
    not acknowledged (its offset cannot be committed), the same letter (key, value, headers)
    is written again, and only Kafka's confirmation of that write acknowledges it, once."""
    after_poll, sink, made = _send_and_poll([error], polls=4)
    assert after_poll[0] == 0, "acknowledged although Kafka reported the write failed"
    assert after_poll[-1] == 1
    assert sink.pending() == 0
    first, again = made.produced[:2]
    assert len(made.produced) == 2
    assert again["value"] == first["value"] == RECORD.value
    assert again["key"] == first["key"] == RECORD.key
    assert again["headers"] == first["headers"]
    assert ("dlq.error.code", b"fullstory_rejected") in again["headers"]


def test_a_letter_failing_every_delivery_stays_pending_and_unacknowledged(producer):
    """However often Kafka fails it, a letter is never dropped nor acknowledged: it stays
    pending (so shutdown does not commit past it) and is written again each time."""
    after_poll, sink, made = _send_and_poll([KafkaError(KafkaError._MSG_TIMED_OUT)] * 50, 10)
    assert after_poll == [0] * 10
    assert sink.pending() == 1
    assert len(made.produced) == 11  # the first write, then one after each failure


def test_a_letter_kafka_refuses_as_too_large_goes_again_without_its_value(producer):
    """A delivery refused as too large is written again at once without the value, which
    `dlq.value.omitted` sizes; key, headers and the source coordinates still name the
    record, and the letter is acknowledged when that write is confirmed."""
    after_poll, sink, made = _send_and_poll([KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)], 2)
    assert after_poll == [0, 1] and sink.pending() == 0
    again = made.produced[1]
    assert again["value"] is None and again["key"] == RECORD.key
    assert ("dlq.value.omitted", b"300 bytes: too large") in again["headers"]
    assert ("dlq.source.offset", b"40") in again["headers"]
    assert ("trace", b"t") in again["headers"]


def test_the_producer_waits_for_every_replica_and_never_writes_a_letter_twice(producer):
    """A letter counts as written only once every in-sync replica has it (acks=all), and a
    resend after a lost answer cannot leave it in the topic twice (idempotence)."""
    _send_and_poll([], 1)
    config = producer.made[-1].config
    assert config["acks"] == "all" and config["enable.idempotence"] is True
