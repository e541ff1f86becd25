"""Which topics exist, asked without creating any: ``run``'s start-up check of its DLQ topic,
its watch of the topics it reads and writes (``topic_watch``), and ``check``.

A metadata request naming a topic creates it on a broker with ``auto.create.topics.enable``;
``describe_topics`` asks with auto-creation off, so asking never makes the answer "yes".
Every call is bounded by its timeout; a Kafka that does not answer is a ``WorkerError``, never
"missing" (an unreachable broker says nothing about a topic).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, TopicCollection

# NewTopic is re-exported without __all__, which mypy --strict does not count.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from worker.errors import WorkerError
from worker.kafka.clients import describe

# The DLQ's retention when the worker (``check --create-dlq``) or an operator creates it.
DLQ_RETENTION_MS = 30 * 24 * 3600 * 1000

# How long a topic said to be missing is asked about again before it is believed missing: a
# topic created a moment ago (``check --create-dlq`` right before ``run``) may not yet be in
# the metadata of the broker that answered. Pauses between asks, in seconds (4.5 s in all).
RECHECK_PAUSES_S = (0.5, 1.0, 1.0, 2.0)


@dataclass(frozen=True)
class TopicsFound:
    """``partitions``: each existing topic's partition count; ``missing``: the rest, in the
    order asked; ``operations``: what this client may do on each existing topic (``READ``,
    ``WRITE``, ...), as the broker's authorizer says, None when the broker did not say."""

    partitions: dict[str, int]
    missing: tuple[str, ...]
    operations: dict[str, frozenset[str] | None] = field(default_factory=dict)


def find_topics(admin: AdminClient, topics: Iterable[str], timeout_s: float) -> TopicsFound:
    """Which of ``topics`` exist, within about ``timeout_s``. Raises ``WorkerError`` when
    Kafka did not answer, or refused to describe a topic (an authorization error is not
    "missing": the topic may well be there)."""
    try:
        return _find(admin, list(dict.fromkeys(topics)), timeout_s)
    finally:
        # The client's logs and errors wait on its queue until polled: a long-lived one that
        # is never polled (the topic watch's) would hold them all, growing while Kafka is away.
        admin.poll(0)


def confirm_missing(
    find: Callable[[list[str]], TopicsFound],
    topics: list[str],
    topic: str,
    pause: Callable[[float], bool | None],
) -> TopicsFound:
    """``find(topics)``, asked again after each of ``RECHECK_PAUSES_S`` while it says
    ``topic`` is missing: the last answer. Only a topic missing every time is missing.
    ``pause(seconds)`` returning True (asked to stop) ends the asking with the last answer."""
    found = find(topics)
    for seconds in RECHECK_PAUSES_S:
        if topic not in found.missing or pause(seconds):
            break
        found = find(topics)
    return found


def _find(admin: AdminClient, names: list[str], timeout_s: float) -> TopicsFound:
    try:
        futures = admin.describe_topics(
            TopicCollection(names), request_timeout=timeout_s, include_authorized_operations=True
        )
    except KafkaException as exc:
        raise WorkerError(f"Kafka refused to describe topics: {describe(exc)}") from exc
    partitions: dict[str, int] = {}
    operations: dict[str, frozenset[str] | None] = {}
    missing: list[str] = []
    for name in names:
        try:
            found = futures[name].result(timeout=timeout_s + 1)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                missing.append(name)
                continue
            raise WorkerError(f"Kafka did not describe topic {name}: {describe(exc)}") from exc
        except TimeoutError:
            raise WorkerError(f"Kafka did not answer within {timeout_s:g} s") from None
        partitions[name] = len(found.partitions)
        allowed = found.authorized_operations
        operations[name] = None if allowed is None else frozenset(op.name for op in allowed)
    return TopicsFound(partitions, tuple(missing), operations)


def create_dlq_command(topic: str, bootstrap: str, partitions: int | None = None) -> str:
    """The standard Kafka tool's command that creates ``topic`` as a DLQ (30 days' retention;
    replication from the cluster's default)."""
    count = f" --partitions {partitions}" if partitions else ""
    return (
        f"kafka-topics.sh --bootstrap-server {bootstrap} --create --topic {topic}{count}"
        f" --config retention.ms={DLQ_RETENTION_MS}"
    )


def missing_dlq_advice(topic: str, bootstrap: str, partitions: int | None = None) -> str:
    """One line: ``topic`` (the DLQ) does not exist, and the commands that create it."""
    return (
        f"topic {topic} does not exist on {bootstrap}: create it with"
        f" `fullstory-user-sync check --create-dlq` (same settings), or"
        f" `{create_dlq_command(topic, bootstrap, partitions)}`"
    )


def create_dlq(admin: AdminClient, topic: str, partitions: int, timeout_s: float) -> None:
    """Create ``topic`` as a DLQ: ``partitions``, 30 days' retention, the cluster's default
    replication factor. Raises ``WorkerError`` when Kafka refused or did not answer."""
    new = NewTopic(
        topic,
        num_partitions=partitions,
        replication_factor=-1,  # the broker's default.replication.factor
        config={"retention.ms": str(DLQ_RETENTION_MS)},
    )
    futures = admin.create_topics([new], request_timeout=timeout_s)
    try:
        futures[topic].result(timeout=timeout_s + 1)
    except KafkaException as exc:
        raise WorkerError(f"Kafka refused to create {topic}: {describe(exc)}") from exc
    except TimeoutError:
        raise WorkerError(f"Kafka did not answer within {timeout_s:g} s") from None
