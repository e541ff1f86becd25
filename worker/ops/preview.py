"""``fullstory-user-sync preview``: the users ``run`` would send for the records already in
the source topics, and the records it would dead-letter, without sending anything.

Reads at most ``--max-records`` records, from the group's committed offsets (where ``run``
would start: ``auto.offset.reset`` where nothing is committed), ``--from-beginning`` or
``--from-timestamp``, up to the log ends read at the start. Records are read by a consumer
that is assigned its partitions under a throwaway group id and never commits, so it never
joins the worker's group nor moves its offsets; nothing is written to Kafka and no FullStory
client is built. Every Kafka call is bounded by ``--timeout``, and so is a read that stops
making progress. Decoding is ``run``'s (``events/decoders``, with the registry when one is
set); what follows is ``preview_fold``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from typing import cast

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from worker.bounded_http import environment_proxies
from worker.config.choices import OnDelete
from worker.config.settings import Settings, load_settings
from worker.errors import ConfigError, WorkerError
from worker.events.decoders import decoder_for
from worker.events.registry import SchemaRegistry
from worker.kafka.clients import describe, kafka_client, quiet_config
from worker.ops import preview_fold
from worker.ops.printable import shown
from worker.ops.status import StatusReader
from worker.records import Fetched, Message
from worker.runtime.logs import configure_logging

TIMEOUT_S = 10.0
MAX_RECORDS = 1000


def _start(
    consumer: Consumer, settings: Settings, args: argparse.Namespace, timeout_s: float
) -> dict[tuple[str, int], tuple[int, int]]:
    """``{(topic, partition): (first offset to read, log end)}`` of the partitions with
    records to read."""
    status = StatusReader(settings.kafka, timeout_s).read()
    ends = {(p.topic, p.partition): p.log_end for p in status.partitions}
    if args.from_beginning:
        starts = {(p.topic, p.partition): p.log_start for p in status.partitions}
    elif args.from_timestamp is not None:
        asked = [TopicPartition(t, p, args.from_timestamp) for t, p in ends]
        try:
            found = consumer.offsets_for_times(asked, timeout=timeout_s)
        except KafkaException as exc:
            raise WorkerError(f"Kafka did not find the offsets: {describe(exc)}") from exc
        # No record at or after the time: the log end, nothing to read.
        starts = {
            (t.topic, t.partition): t.offset if t.offset >= 0 else ends[(t.topic, t.partition)]
            for t in found
        }
    else:
        starts = {(p.topic, p.partition): p.position for p in status.partitions}
    return {tp: (starts[tp], end) for tp, end in ends.items() if starts[tp] < end}


def read_runs(settings: Settings, args: argparse.Namespace) -> list[Fetched]:
    """Up to ``args.max_records`` records, one run per partition in offset order."""
    kafka, timeout_s = settings.kafka, args.timeout
    config = {
        k: v
        for k, v in quiet_config(kafka).items()
        if not k.startswith(("group.", "enable.auto.", "enable.partition.eof"))
    }
    consumer = kafka_client(
        kafka,
        lambda: Consumer(
            {
                **config,
                "group.id": f"fullstory-user-sync-preview-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
            }
        ),
    )
    try:
        wanted = _start(consumer, settings, args, timeout_s)
        consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in wanted.items()])
        read: dict[tuple[str, int], list[Message]] = {tp: [] for tp in wanted}
        pending = {tp: end for tp, (_, end) in wanted.items()}
        count, deadline = 0, time.monotonic() + timeout_s
        while pending and count < args.max_records:
            message = consumer.poll(0.2)
            if message is None:
                if time.monotonic() > deadline:
                    raise WorkerError(f"Kafka sent nothing for {timeout_s:g} s")
                continue
            deadline = time.monotonic() + timeout_s
            error, offset = message.error(), message.offset()
            tp = (message.topic() or "", message.partition() or 0)
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.pop(tp, None)
                elif error.fatal():
                    raise WorkerError(f"reading {tp[0]}: {error.str()}")
                continue
            end = pending.get(tp)
            if end is None or offset is None or offset >= end:
                continue
            read[tp].append(cast(Message, message))  # its offset is set: it carries a record
            count += 1
            if offset >= end - 1:
                del pending[tp]
        return [Fetched(tp, messages) for tp, messages in read.items() if messages]
    except KafkaException as exc:
        raise WorkerError(f"Kafka failed: {describe(exc)}") from exc
    finally:
        consumer.close()


def _preview(settings: Settings, runs: list[Fetched]) -> preview_fold.Preview:
    registry = (
        SchemaRegistry(
            settings.schema_registry_url,
            auth=settings.schema_registry_auth,
            proxies=environment_proxies(),  # as run reaches it; a bad proxy exits 2
        )
        if settings.schema_registry_url
        else None
    )
    problems: list[str] = []
    try:
        decoder = decoder_for(
            settings,
            registry,
            on_problem=lambda _id, message: problems.append(message),
            on_reader=lambda _choice: None,
        )
        preview = preview_fold.fold(
            runs,
            decoder.read,
            batch_max_users=settings.batch_max_users,
            deletes=settings.on_delete is OnDelete.DELETE,
        )
    finally:
        if registry:
            registry.close()
    for message in problems:  # the same records are dead-lettered, with the mismatch
        print(f"preview: the field mapping does not fit: {shown(message)}", file=sys.stderr)
    return preview


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-records", type=int, default=MAX_RECORDS, help=f"at most (default {MAX_RECORDS})"
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true", help="each log's start")
    start.add_argument(
        "--from-timestamp",
        help="the first record at or after this time: ISO-8601 with its UTC offset, or epoch ms "
        "(default: the group's committed offsets)",
    )
    parser.add_argument(
        "--timeout", type=float, default=TIMEOUT_S, help=f"seconds (default {TIMEOUT_S:g})"
    )
    parser.add_argument(
        "--json", action="store_true", help="the exact request bodies and the dead letters"
    )


def main(args: argparse.Namespace) -> int:
    settings = load_settings(os.environ)  # a bad setting: ConfigError, exit 2 (cli.main)
    configure_logging("warning", settings.log_format)  # to stderr: stdout is the preview's
    try:
        if args.max_records < 1 or args.timeout <= 0:
            raise ValueError("--max-records and --timeout must be positive")
        if args.from_timestamp is not None:
            args.from_timestamp = preview_fold.parse_moment(args.from_timestamp)
    except ValueError as exc:
        print(f"preview: {exc}", file=sys.stderr)
        return 2
    try:
        runs = read_runs(settings, args)
        preview = _preview(settings, runs)
    except ConfigError:
        raise  # exit 2, said by cli.main
    except WorkerError as exc:
        print(f"preview: {shown(exc)}", file=sys.stderr)
        return 1
    read = sum(len(run.messages) for run in runs)
    declare = settings.property_types.declares_types
    if args.json:
        print(json.dumps({"records": read, **preview_fold.as_json(preview, declare)}, indent=2))
        return 0
    where = ", ".join(
        f"{shown(run.tp[0])}[{run.tp[1]}]@{run.messages[0].offset()}-{run.messages[-1].offset()}"
        for run in runs
    )
    print(f"read {read} record(s)" + (f": {where}" if where else ""))
    print("\n".join(preview_fold.lines(preview)))
    return 0
