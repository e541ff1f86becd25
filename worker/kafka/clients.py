"""Kafka clients for the operator commands (``status``, ``dlq inspect``), and the one place
their failures become the worker's errors.

A command says one line about a failure, so these clients are quiet: librdkafka's logs and
error callbacks (a connection refused, retried every second) go nowhere, and the failure
reaches the operator as the call's own timeout or error, translated by ``wait``.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException

from worker.config.settings import KafkaSettings
from worker.errors import WorkerError

T = TypeVar("T")


def kafka_client(kafka: KafkaSettings, make: Callable[[], T]) -> T:
    """Build a Kafka client; librdkafka refusing a KAFKA_CFG_* value is a ConfigError."""
    try:
        return make()
    except KafkaException as exc:
        raise kafka.refused(describe(exc)) from exc


def quiet_config(kafka: KafkaSettings) -> dict[str, Any]:
    """``kafka``'s client properties with librdkafka's logging and error callbacks muted."""
    quiet = logging.getLogger("worker.kafka.clients.quiet")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    return {**kafka.client_config(), "logger": quiet, "error_cb": lambda _err: None}


def describe(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else exc
    return error.str() if isinstance(error, KafkaError) else str(error)


def wait(future: concurrent.futures.Future[T], timeout_s: float, what: str) -> T:
    """The future's result within ``timeout_s``; a timeout or a Kafka error is a
    ``WorkerError`` naming ``what`` was asked."""
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise WorkerError(f"Kafka did not answer {what} within {timeout_s:g} s") from None
    except KafkaException as exc:
        raise WorkerError(f"Kafka refused {what}: {describe(exc)}") from exc
