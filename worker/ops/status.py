"""``fullstory-user-sync status``: the group's committed offsets against its topics' logs,
how far the replicas read and merged (published in the commit metadata), the jobs in flight
with their users, and the group's members; ``--watch`` follows a replay or a catch-up until
Ctrl-C, its rate and ETA measured on the read position; ``--worker URL`` adds what the
replicas did (``activity``: deletes, skipped records), and exits 1 when a named replica does
not answer.

Read-only: it never joins the group or commits (AdminClient calls only), so it runs beside
the replicas. Every Kafka call is bounded by ``TIMEOUT_S``; a broker that does not answer is
one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

# OffsetSpec is re-exported without __all__, which mypy --strict does not count.
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from worker.config.settings import KafkaSettings, load_kafka_settings
from worker.errors import WorkerError
from worker.kafka.clients import describe, kafka_client, quiet_config, wait
from worker.loop.commit.ledger import Published, decode
from worker.ops import activity
from worker.ops.progress import (
    GroupStatus,
    Member,
    Meter,
    PartitionStatus,
    Progress,
    Sample,
    as_json,
    progress_line,
    table,
)
from worker.runtime.clock import Clock, SystemClock

TIMEOUT_S = 10.0
_NOTHING_COMMITTED = -1001  # librdkafka's OFFSET_INVALID
# OffsetSpec's constructors carry no annotations.
_EARLIEST: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
_LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]


class StatusReader:
    """Reads one ``GroupStatus`` per ``read()``; one admin client for every refresh."""

    def __init__(self, kafka: KafkaSettings, timeout_s: float = TIMEOUT_S) -> None:
        self._kafka = kafka
        self._timeout_s = timeout_s
        self._reset = str(kafka.extra.get("auto.offset.reset", "earliest")).lower()
        self._admin = kafka_client(kafka, lambda: AdminClient(quiet_config(kafka)))

    def read(self) -> GroupStatus:
        group, timeout = self._kafka.group_id, self._timeout_s
        tps = self._partitions()
        request = [ConsumerGroupTopicPartitions(group, tps)]
        offsets = self._admin.list_consumer_group_offsets(request, request_timeout=timeout)
        found = wait(offsets[group], timeout + 1, "the committed offsets").topic_partitions
        committed = {
            (tp.topic, tp.partition): None if tp.offset == _NOTHING_COMMITTED else tp.offset
            for tp in found
        }
        # Each replica publishes its read position and jobs in the metadata of the partitions
        # it commits (``worker.loop.commit.ledger`` says why there): read with the offsets.
        published = {(tp.topic, tp.partition): decode(tp.metadata) for tp in found}
        starts = self._offsets(tps, _EARLIEST, "the log starts")
        ends = self._offsets(tps, _LATEST, "the log ends")
        described = self._admin.describe_consumer_groups([group], request_timeout=timeout)
        description = wait(described[group], timeout + 1, "the group's description")
        partitions = tuple(
            PartitionStatus(
                tp.topic,
                tp.partition,
                committed.get((tp.topic, tp.partition)),
                starts[(tp.topic, tp.partition)],
                ends[(tp.topic, tp.partition)],
                self._reset,
                *_read_and_jobs(published.get((tp.topic, tp.partition), Published())),
            )
            for tp in tps
        )
        members = tuple(
            Member(
                m.member_id,
                m.client_id,
                m.host,
                tuple(sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)),
            )
            for m in description.members
        )
        return GroupStatus(group, description.state.name, partitions, members)

    def _partitions(self) -> list[TopicPartition]:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout_s)
        except KafkaException as exc:
            raise WorkerError(
                f"Kafka unreachable at {self._kafka.bootstrap_servers}: {describe(exc)}"
            ) from exc
        tps = []
        for topic in self._kafka.topics:
            if topic not in metadata.topics:
                raise WorkerError(f"topic {topic} does not exist")
            tps += [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
        return tps

    def _offsets(
        self, tps: list[TopicPartition], spec: OffsetSpec, what: str
    ) -> dict[tuple[str, int], int]:
        asked = self._admin.list_offsets({tp: spec for tp in tps}, request_timeout=self._timeout_s)
        return {
            (tp.topic, tp.partition): int(wait(future, self._timeout_s + 1, what).offset)
            for tp, future in asked.items()
        }


def _read_and_jobs(
    published: Published,
) -> tuple[int | None, tuple[tuple[str, int | None], ...]]:
    return published.read, tuple(published.jobs.items())


def watch(
    read: Callable[[], GroupStatus],
    emit: Callable[[GroupStatus, Progress], None],
    every_s: float,
    count: int | None,
    clock: Clock,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Read and emit every ``every_s`` (from start to start), ``count`` times or forever."""
    meter = Meter()
    done = 0
    while True:
        started = clock.monotonic()
        status = read()
        at = clock.monotonic()
        sample = Sample(at, status.position, status.lag, status.read, status.read_lag)
        emit(status, meter.add(sample))
        done += 1
        if count is not None and done >= count:
            return
        sleep(max(0.0, started + every_s - clock.monotonic()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) with rate and ETA, until Ctrl-C",
    )
    parser.add_argument("--count", type=int, help="with --watch: stop after N refreshes")
    parser.add_argument(
        "--worker",
        action="append",
        default=[],
        metavar="URL",
        help="a replica's health server (http://host:HTTP_PORT, repeatable): adds what the "
        "replicas did, summed: deletes, skipped records, acknowledgements",
    )


def main(args: argparse.Namespace) -> int:
    kafka = load_kafka_settings(os.environ)
    bad_watch = args.watch is not None and args.watch <= 0
    if bad_watch or (args.count is not None and args.count < 1):
        print("status: --watch takes seconds > 0 and --count N >= 1", file=sys.stderr)
        return 2
    reader = StatusReader(kafka)
    unreachable = False

    def shown(status: GroupStatus, progress: Progress | None = None) -> str:
        """The status as printed, with the replicas' activity when ``--worker`` names any."""
        nonlocal unreachable
        done = activity.read(args.worker) if args.worker else None
        unreachable = unreachable or bool(done and done.unreachable)
        if args.json:
            document = as_json(status, progress)
            if done is not None:
                document["activity"] = activity.as_json(done)
            return json.dumps(document, indent=None if progress else 2)
        text = table(status)
        if done is not None:
            text += "\n\n" + "\n".join(activity.lines(done))
        return text if progress is None else f"{text}\n\n{progress_line(progress)}\n"

    try:
        if args.watch is None:
            print(shown(reader.read()))
            return 1 if unreachable else 0
        clear = "\033[H\033[J" if sys.stdout.isatty() and not args.json else ""

        def emit(status: GroupStatus, progress: Progress) -> None:
            print(f"{clear}{shown(status, progress)}", flush=True)

        watch(reader.read, emit, args.watch, args.count, SystemClock())
    except WorkerError as exc:
        print(f"status: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass  # Ctrl-C ends a watch; what was shown stands
    return 1 if unreachable else 0
