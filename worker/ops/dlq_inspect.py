"""``fullstory-user-sync dlq inspect``: the dead letters, counted by error code and source,
and the first of them shown.

Reads DLQ_TOPIC from each partition's start up to the end offsets read when it starts, then
stops: letters written meanwhile are left for the next look. It never joins a group and
never commits (partitions are assigned, under a throwaway group id with auto-commit off), so
it cannot move anyone's offsets. Kafka calls are bounded by ``TIMEOUT_S``, and so is a read
that stops making progress.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from worker.config.settings import KafkaSettings, load_dlq_topic, load_kafka_settings
from worker.errors import ConfigError, WorkerError
from worker.kafka.clients import describe, kafka_client, quiet_config
from worker.ops.letters import DeadLetter, Tally, parse, render, summary_json

TIMEOUT_S = 10.0


def read_letters(
    kafka: KafkaSettings, topic: str, timeout_s: float = TIMEOUT_S
) -> Iterator[DeadLetter]:
    """Every dead letter up to the end offsets at the start, in partition order per
    partition; raises ``WorkerError`` when Kafka does not answer or stops sending."""
    consumer = kafka_client(
        kafka,
        lambda: Consumer(
            {
                **quiet_config(kafka),
                "group.id": f"fullstory-user-sync-dlq-inspect-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,  # the end of a read_committed log is its LSO
                "auto.offset.reset": "earliest",
            }
        ),
    )
    try:
        ends = _ends(consumer, kafka, topic, timeout_s)
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in ends.items()])
        pending = {p: high for p, (_, high) in ends.items()}
        deadline = time.monotonic() + timeout_s
        while pending:
            message = consumer.poll(0.2)
            if message is None:
                if time.monotonic() > deadline:
                    raise WorkerError(
                        f"Kafka sent nothing for {timeout_s:g} s with partitions "
                        f"{sorted(pending)} of {topic} unfinished"
                    )
                continue
            deadline = time.monotonic() + timeout_s
            error, partition, offset = message.error(), message.partition(), message.offset()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                    pending.pop(partition, None)
                elif error.fatal():
                    raise WorkerError(f"reading {topic}: {error.str()}")
                continue
            end = pending.get(partition) if partition is not None else None
            if partition is None or offset is None or end is None or offset >= end:
                continue  # written after the start, or its partition is done
            headers = message.headers()
            yield parse(
                partition,
                offset,
                message.key(),
                message.value(),
                list(headers.items()) if isinstance(headers, dict) else headers,
                message.timestamp(),
            )
            if offset >= end - 1:
                del pending[partition]
    finally:
        consumer.close()


def _ends(
    consumer: Consumer, kafka: KafkaSettings, topic: str, timeout_s: float
) -> dict[int, tuple[int, int]]:
    """``{partition: (log start, log end)}`` of the partitions holding letters."""
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
        if topic not in metadata.topics:
            raise WorkerError(f"DLQ topic {topic} does not exist")
        watermarks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            for p in sorted(metadata.topics[topic].partitions)
        }
    except KafkaException as exc:
        raise WorkerError(
            f"Kafka unreachable at {kafka.bootstrap_servers}: {describe(exc)}"
        ) from exc
    return {p: (low, high) for p, (low, high) in watermarks.items() if high > low}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--values", action="store_true", help="show each value (hex)")
    parser.add_argument("--limit", type=int, default=50, help="letters shown (default 50)")
    parser.add_argument("--code", help="show only letters with this error code")


def main(args: argparse.Namespace) -> int:
    kafka = load_kafka_settings(os.environ)
    topic = load_dlq_topic(os.environ, kafka)
    if args.limit < 0:
        print("dlq inspect: --limit must be >= 0", file=sys.stderr)
        return 2
    tally = Tally(code=args.code, limit=args.limit)
    try:
        for letter in read_letters(kafka, topic):
            tally.add(letter)
    except ConfigError:
        raise  # exit 2, said by cli.main
    except WorkerError as exc:
        print(f"dlq inspect: {exc}", file=sys.stderr)
        return 1
    summary = tally.summary()
    if args.json:
        print(json.dumps({"topic": topic, **summary_json(summary, args.values)}, indent=2))
    else:
        print(f"topic {topic}: {render(summary, args.values)}")
    return 0
