"""A topic the worker reads or writes that does not exist is named where an operator looks
(``worker.kafka.topic_watch``): ``/readyz``, ``fsus_topic_missing{topic}`` and a log line
that repeats at a bounded rate; an unreachable Kafka is never taken for a missing topic."""

from __future__ import annotations

import structlog.testing

from tests.fakes.clock import FakeClock
from worker.errors import WorkerError
from worker.kafka import topic_watch
from worker.kafka.topics import TopicsFound
from worker.runtime.health import Health
from worker.runtime.metrics import Metrics


class Kafka:
    """Answers with the topics in ``existing``, or does not answer while ``down``."""

    def __init__(self, *existing: str) -> None:
        self.existing = set(existing)
        self.down = False

    def find(self, topics):
        if self.down:
            raise WorkerError("Kafka did not answer within 5 s")
        missing = tuple(t for t in topics if t not in self.existing)
        return TopicsFound({t: 3 for t in topics if t in self.existing}, missing)


def _watch(kafka: Kafka):
    health, metrics, clock = Health(liveness_timeout_s=60), Metrics(), FakeClock(start=0.0)
    health.joined()
    watch = topic_watch.TopicWatch(["users", "usres", "dlq"], kafka.find, health, metrics, clock)
    return watch, health, metrics, clock


def _missing_gauge(metrics: Metrics, topic: str) -> float | None:
    return metrics.registry.get_sample_value("fsus_topic_missing", {"topic": topic})


def test_a_mistyped_topic_is_named_in_readyz_the_metric_and_the_log_until_it_exists():
    """/readyz answers not ready naming the topic; the gauge is 1 for it and 0 for the others;
    the log says so at once and again only after ``LOG_EVERY_S``; once the topic exists,
    ready again, the gauge 0, and one ``topic_found``."""
    kafka = Kafka("users", "dlq")
    watch, health, metrics, clock = _watch(kafka)
    with structlog.testing.capture_logs() as logs:
        watch.look()
        ready, detail = health.ready()
        assert not ready and detail["missing_topics"] == ["usres"]
        assert detail["topics_exist"] is False
        assert _missing_gauge(metrics, "usres") == 1 and _missing_gauge(metrics, "users") == 0
        for _ in range(5):  # every 10 s for most of a minute: not logged again
            clock.advance(topic_watch.CHECK_EVERY_S)
            watch.look()
        missing = [e for e in logs if e["event"] == "topic_missing"]
        assert [e["topic"] for e in missing] == ["usres"]
        clock.advance(topic_watch.LOG_EVERY_S - 5 * topic_watch.CHECK_EVERY_S)
        watch.look()
        assert len([e for e in logs if e["event"] == "topic_missing"]) == 2
        kafka.existing.add("usres")
        watch.look()
        watch.look()
    assert health.ready()[0] is True
    assert "missing_topics" not in health.ready()[1]
    assert _missing_gauge(metrics, "usres") == 0
    assert [e["topic"] for e in logs if e["event"] == "topic_found"] == ["usres"]


def test_kafka_not_answering_is_never_a_missing_topic():
    """While Kafka does not answer, what was known stands: no topic is called missing (an
    unreachable broker says nothing about topics; readiness says it is unreachable), and a
    topic known missing stays named."""
    kafka = Kafka("users", "usres", "dlq")
    kafka.down = True
    watch, health, metrics, _clock = _watch(kafka)
    with structlog.testing.capture_logs() as logs:
        watch.look()
    assert health.ready()[0] and _missing_gauge(metrics, "users") is None
    assert [e for e in logs if e["event"] == "topic_missing"] == []
    kafka.down = False
    kafka.existing.discard("dlq")
    watch.look()
    kafka.down = True
    watch.look()
    assert health.ready()[1]["missing_topics"] == ["dlq"]


def test_a_topic_that_appears_is_handed_on_once_to_be_read_at_once():
    """The consumer is told of a topic the moment the watch finds it created (once, and never
    of a topic that was always there), so it reads it within a look instead of at
    librdkafka's next metadata refresh, five minutes later."""
    kafka = Kafka("users")
    watch, _health, _metrics, clock = _watch(kafka)
    found: list[list[str]] = []
    watch.when_found(found.append)
    watch.look()
    assert found == []
    kafka.existing |= {"usres", "dlq"}
    for _ in range(3):
        clock.advance(topic_watch.CHECK_EVERY_S)
        watch.look()
    assert found == [["usres", "dlq"]]
