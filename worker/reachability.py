"""Whether Kafka is reachable, from librdkafka's callbacks, for readiness; and the lag gauge.

Records alone prove nothing (they may come from the prefetch queue after the brokers went
away), and "all brokers down" is not always reported, so the broker states of the periodic
statistics decide; a successful commit proves it too. Runs on the poll loop's thread.
"""

from __future__ import annotations

import structlog
from confluent_kafka import KafkaError

from worker.health import Health
from worker.kafka_stats import KafkaStats
from worker.metrics import Metrics

log = structlog.get_logger("worker.reachability")


class KafkaReachability:
    def __init__(self, health: Health, metrics: Metrics) -> None:
        self._health = health
        self._metrics = metrics

    def on_error(self, code: int) -> None:
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
        if self._health.kafka_ok:
            log.warning("kafka_unreachable")
        self._health.kafka(False)

    def reachable(self) -> None:
        if not self._health.kafka_ok:
            log.info("kafka_reachable")
        self._health.kafka(True)
