"""Whether Kafka is reachable, from librdkafka's callbacks, for readiness; and the lag gauge.

Records alone prove nothing (they may come from the prefetch queue after the brokers went
away), and "all brokers down" is not always reported, so the broker states of the periodic
statistics decide; a successful commit proves it too. Runs on the poll loop's thread (the
consumer's callbacks fire in ``consume``, the DLQ producer's in ``poll``).

While Kafka is down librdkafka reports a failed connection attempt several times a second
per client. Each error is counted (``fsus_kafka_errors_total{client,code}``), but only the
first of a run is logged (``kafka_error``), the loss of every broker once
(``kafka_unreachable``), and the end of the outage once, with how long it lasted and how
many errors it saw (``kafka_reachable``).
"""

from __future__ import annotations

import structlog
from confluent_kafka import KafkaError
from structlog.typing import FilteringBoundLogger

from worker.kafka.stats import KafkaStats
from worker.runtime.clock import Clock, SystemClock
from worker.runtime.health import Health
from worker.runtime.metrics import Metrics

log: FilteringBoundLogger = structlog.get_logger(__name__)


class Outage:
    """Pure: which of a run of Kafka errors and state changes deserve a log line.

    ``error()`` is true for the first error since Kafka was last seen well; ``down()`` is
    true when it starts an outage; ``up()`` ends one and returns (seconds since its first
    error or its start, errors counted), or None when there was no outage (a run of errors
    without one is forgotten, so the next error is logged again)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._first_error: float | None = None
        self._down_since: float | None = None
        self._errors = 0

    def error(self) -> bool:
        self._errors += 1
        if self._first_error is None:
            self._first_error = self._clock.monotonic()
            return True
        return False

    def down(self) -> bool:
        if self._down_since is not None:
            return False
        first = self._first_error
        self._down_since = first if first is not None else self._clock.monotonic()
        return True

    def up(self) -> tuple[float, int] | None:
        since, errors = self._down_since, self._errors
        self._first_error, self._down_since, self._errors = None, None, 0
        if since is None:
            return None
        return self._clock.monotonic() - since, errors


def code_name(code: int) -> str:
    """A stable, low-cardinality label: ``_TRANSPORT`` -> ``transport``."""
    return KafkaError(code).name().lstrip("_").lower()


class KafkaReachability:
    def __init__(self, health: Health, metrics: Metrics, clock: Clock | None = None) -> None:
        self._health = health
        self._metrics = metrics
        self._outage = Outage(clock or SystemClock())

    def on_error(self, code: int, reason: str = "", client: str = "consumer") -> None:
        name = code_name(code)
        self._metrics.kafka_errors.labels(client, name).inc()
        if self._outage.error():
            log.warning("kafka_error", client=client, code=name, error=reason)
        if code == KafkaError._ALL_BROKERS_DOWN:
            self.unreachable()

    def on_stats(self, stats: KafkaStats) -> None:
        if stats.brokers_up:
            self.reachable()
        else:
            self.unreachable()
        for (topic, partition), lag in stats.lag.items():
            self._metrics.consumer_lag.labels(topic, str(partition)).set(lag)

    def unreachable(self) -> None:
        if self._outage.down():
            log.warning("kafka_unreachable")
        self._health.kafka(False)

    def reachable(self) -> None:
        ended = self._outage.up()
        if ended is not None:
            down_s, errors = ended
            log.info("kafka_reachable", down_s=round(down_s, 1), errors=errors)
        self._health.kafka(True)
