"""The consumer's defaults under Kafka's two group protocols (``worker.kafka.source``)."""

from __future__ import annotations

from confluent_kafka import Consumer

from worker.kafka.source import CLASSIC_DEFAULTS, consumer_defaults


def test_the_classic_protocol_gets_cooperative_sticky_and_a_15_s_session():
    defaults = consumer_defaults({})
    assert defaults["partition.assignment.strategy"] == "cooperative-sticky"
    assert defaults["session.timeout.ms"] == 15_000
    assert consumer_defaults({"group.protocol": "classic"}) == defaults


def test_the_consumer_protocol_sets_nothing_librdkafka_refuses_there():
    """With group.protocol=consumer (KIP-848) the broker assigns and keeps the session: the
    worker's classic-only defaults would make librdkafka refuse the consumer (exit 2)."""
    config = {"group.protocol": "Consumer ", "group.id": "g", "bootstrap.servers": "127.0.0.1:1"}
    defaults = consumer_defaults(config)
    assert not set(CLASSIC_DEFAULTS) & set(defaults)
    Consumer({**defaults, **config, "group.protocol": "consumer"}).close()
