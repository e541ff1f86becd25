import logging

import pytest
import structlog
from confluent_kafka import KafkaError

from tests.fakes.clock import FakeClock
from worker.kafka.reachability import KafkaReachability, Outage, code_name
from worker.kafka.stats import KafkaStats
from worker.runtime.health import Health
from worker.runtime.logs import kafka_logger
from worker.runtime.metrics import Metrics

TRANSPORT = KafkaError._TRANSPORT
ALL_DOWN = KafkaError._ALL_BROKERS_DOWN


def test_an_outage_logs_its_first_error_its_start_and_its_end_only():
    """Many errors a second while Kafka is down make three log decisions, not hundreds."""
    clock = FakeClock()
    outage = Outage(clock)
    first = outage.error()
    clock.advance(0.1)
    assert outage.down()
    later = [outage.error() for _ in range(449)]
    clock.advance(9.9)
    assert first and not any(later)
    assert not outage.down()  # already down: said once
    assert outage.up() == pytest.approx((10.0, 450))
    assert outage.up() is None  # already up: nothing to say


def test_an_outage_without_errors_is_timed_from_when_it_started():
    """Statistics can report every broker down before any error callback fired."""
    clock = FakeClock()
    outage = Outage(clock)
    assert outage.down()
    clock.advance(3)
    assert outage.up() == (3, 0)


def test_errors_without_an_outage_are_forgotten_once_kafka_is_seen_well():
    """A blip that never took every broker down ends quietly; the next error is news."""
    outage = Outage(FakeClock())
    assert outage.error() and not outage.error()
    assert outage.up() is None
    assert outage.error()


@pytest.mark.parametrize(
    ("code", "label"),
    [(TRANSPORT, "transport"), (ALL_DOWN, "all_brokers_down"), (29, "topic_authorization_failed")],
)
def test_error_codes_become_stable_labels(code, label):
    """The metric's code label is librdkafka's name, without its underscore."""
    assert code_name(code) == label


def _kafka_events(logs):
    return [e["event"] for e in logs if e["event"].startswith("kafka_")]


def test_kafka_down_then_up_logs_three_lines_and_counts_every_error():
    """What an operator sees for a 30 s broker outage: kafka_error, kafka_unreachable,
    kafka_reachable with its length and error count; /metrics counts each error."""
    clock, health, metrics = FakeClock(), Health(60), Metrics()
    kafka = KafkaReachability(health, metrics, clock)
    with structlog.testing.capture_logs() as logs:
        for second in range(30):
            for _ in range(40):
                kafka.on_error(TRANSPORT, "Connect to 127.0.0.1:9092 failed", "consumer")
            kafka.on_error(TRANSPORT, "Connect failed", "dlq")
            if second == 0:
                kafka.on_error(ALL_DOWN, "1/1 brokers are down")
            clock.advance(1)
        assert not health.kafka_ok
        kafka.on_stats(KafkaStats(brokers_up=1, lag={}))
        kafka.on_stats(KafkaStats(brokers_up=1, lag={}))
    assert _kafka_events(logs) == ["kafka_error", "kafka_unreachable", "kafka_reachable"]
    back = logs[-1]
    assert back["down_s"] == 30 and back["errors"] == 30 * 41 + 1
    assert health.kafka_ok
    exposition = metrics.exposition().decode()
    assert 'fsus_kafka_errors_total{client="consumer",code="transport"} 1200.0' in exposition
    assert 'fsus_kafka_errors_total{client="dlq",code="transport"} 30.0' in exposition
    assert 'fsus_kafka_errors_total{client="consumer",code="all_brokers_down"} 1.0' in exposition


def test_a_second_outage_is_logged_again():
    """Once per state change, not once per process."""
    clock = FakeClock()
    kafka = KafkaReachability(Health(60), Metrics(), clock)
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            kafka.on_error(ALL_DOWN, "down")
            kafka.on_error(ALL_DOWN, "down")
            clock.advance(5)
            kafka.reachable()
    assert _kafka_events(logs) == ["kafka_error", "kafka_unreachable", "kafka_reachable"] * 2


def test_librdkafka_connection_failure_lines_are_demoted_to_debug():
    """librdkafka's own FAIL line duplicates each error callback: debug, not error."""
    with structlog.testing.capture_logs() as logs:
        logger = kafka_logger()
        logger.error("FAIL [consumer-1] [thrd:b/bootstrap]: Connect to b failed")
        logger.warning("GETPID [producer-1]: Coordinator load in progress")
    assert [(e["log_level"], e["message"][:4]) for e in logs] == [
        ("debug", "FAIL"),
        ("warning", "GETP"),
    ]
    assert logging.getLogger("worker.librdkafka") is logger
