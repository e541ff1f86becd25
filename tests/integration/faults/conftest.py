"""Fault-suite fixtures: the integration ones, with a DLQ that stamps broker time."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.integration.faults.topics import create_dlq_topic
from tests.integration.kafka_tools import Broker


@pytest.fixture
def stream(broker: Broker) -> Callable[[int], tuple[str, str, str]]:
    """A fresh source topic with ``n`` partitions, its DLQ topic and a fresh group id.

    Unlike the integration fixture of the same name, the DLQ stamps each letter with its
    LogAppendTime: the oracle counts a dead-lettered record as acknowledged only from the
    moment Kafka accepted its letter, not from when the worker produced it.
    """

    def make(partitions: int) -> tuple[str, str, str]:
        topic = broker.create_topic(partitions)
        return topic, create_dlq_topic(broker.admin()), f"group-{uuid.uuid4().hex[:8]}"

    return make
