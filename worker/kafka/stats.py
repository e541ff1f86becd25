"""librdkafka's statistics (``stats_cb`` JSON), reduced to what the worker watches. Pure.

Broker connection states tell readiness whether Kafka is reachable without a blocking
round trip in the loop; per-partition ``consumer_lag`` feeds the lag gauge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from worker.records import TopicPartition


@dataclass(frozen=True, slots=True)
class KafkaStats:
    brokers_up: int
    lag: dict[TopicPartition, int] = field(default_factory=dict)


def parse_stats(text: str) -> KafkaStats:
    """Brokers whose connection is UP, and the known consumer lag of each partition."""
    stats = json.loads(text)
    brokers = stats.get("brokers") or {}
    up = sum(1 for broker in brokers.values() if broker.get("state") == "UP")
    lag: dict[TopicPartition, int] = {}
    for topic, topic_stats in (stats.get("topics") or {}).items():
        for partition, part in (topic_stats.get("partitions") or {}).items():
            value = part.get("consumer_lag", -1)
            if int(partition) >= 0 and isinstance(value, int) and value >= 0:
                lag[(topic, int(partition))] = value
    return KafkaStats(brokers_up=up, lag=lag)
