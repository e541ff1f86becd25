"""The benchmark's load and its instruments: they speak to the broker, the FullStory sandbox
and the worker process only, never to the worker's internals, so the numbers keep their
meaning when the loop is rebuilt.

- `make_workload` / `produce_backlog` / `produce_paced`: pre-encoded user changes, written
  with one batching producer (fast) or at a fixed rate (each record's CreateTime kept).
- `decode_seconds`: fastavro's plain decode of the same values, in this process.
- `CommittedOffsets` / `CommitSampler`: the group's committed offsets through one
  long-lived consumer that never joins the group.
- `running_worker`: `python -m worker run` as a process, SIGTERMed on the way out.
- `machine` / `versions`: what the results were measured on.
"""

from __future__ import annotations

import io
import os
import platform
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka
import fastavro
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from tests.fakes.avro import SCHEMA, encode
from tests.integration.oracle import random_events
from tests.integration.worker_process import ROOT, WorkerProcess

# Events are generated and encoded this many at a time, so a 1M-event workload never holds
# 1M decoded dicts at once.
_CHUNK = 50_000


@dataclass(frozen=True)
class Workload:
    """Encoded records in produce order: `keys[i]` (the uid) goes with `values[i]`."""

    keys: list[bytes]
    values: list[bytes]
    uids: int
    prepare_s: float


def make_workload(events: int, uids: int, seed: int) -> Workload:
    """`events` partial updates over `uids` users, the shape of the integration tests' stream
    (`tests/integration/oracle.random_events`), Avro-encoded as a producer writes them."""
    started = time.monotonic()
    interned: dict[str, bytes] = {}
    keys: list[bytes] = []
    values: list[bytes] = []
    for chunk, first in enumerate(range(0, events, _CHUNK)):
        for change in random_events(min(_CHUNK, events - first), uids=uids, seed=seed + chunk):
            change["changed_at"] += first  # random_events counts from 0 in every chunk
            keys.append(interned.setdefault(change["uid"], change["uid"].encode()))
            values.append(encode(change))
    return Workload(keys, values, uids, time.monotonic() - started)


def decode_seconds(values: list[bytes], passes: int = 3) -> float:
    """The fastest of `passes` runs of fastavro's `schemaless_reader` over every value, in this
    process: the plain decode, without the worker's mapping to its own records. The fastest
    pass is the one other processes on the machine disturbed least."""
    reader, schema, stream = fastavro.schemaless_reader, SCHEMA, io.BytesIO
    fastest = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for value in values:
            reader(stream(value), schema, None)
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def _producer(bootstrap: str, **config: object) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", **config})


def _produce(
    producer: Producer,
    topic: str,
    key: bytes,
    value: bytes,
    on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
) -> None:
    """One `produce`, waiting (at most 30 s) while the producer's queue is full."""
    deadline = time.monotonic() + 30
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=on_delivery)
            return
        except BufferError:
            if time.monotonic() > deadline:
                raise
            producer.poll(0.05)


def produce_backlog(bootstrap: str, topic: str, load: Workload) -> float:
    """Writes the whole workload as fast as the broker takes it; returns the seconds taken."""
    producer = _producer(
        bootstrap,
        **{
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        },
    )
    started = time.monotonic()
    for key, value in zip(load.keys, load.values, strict=True):
        _produce(producer, topic, key, value)
    if producer.flush(120) != 0:
        raise RuntimeError(f"records left unflushed after 120 s producing to {topic}")
    return time.monotonic() - started


@dataclass(frozen=True)
class Produced:
    """A record as the broker stored it: where, and when the producer created it."""

    partition: int
    offset: int
    created_ms: int


def produce_paced(
    bootstrap: str, topic: str, load: Workload, rate: float
) -> tuple[list[Produced], float]:
    """Writes the workload at `rate` records/s (10 ms steps, linger 5 ms); returns the stored
    records and the seconds it took. Gives up producing at twice the planned time + 30 s."""
    stored: list[Produced] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        partition, offset = message.partition(), message.offset()
        if error is None and partition is not None and offset is not None:
            stored.append(Produced(partition, offset, message.timestamp()[1]))

    producer = _producer(bootstrap, **{"linger.ms": 5})
    total = len(load.values)
    started = time.monotonic()
    deadline = started + 2 * total / rate + 30
    sent = 0
    while sent < total and time.monotonic() < deadline:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        for i in range(sent, due):
            _produce(producer, topic, load.keys[i], load.values[i], on_delivery=delivered)
        sent = max(sent, due)
        producer.poll(0)
        time.sleep(0.01)
    seconds = time.monotonic() - started
    producer.flush(60)
    return stored, seconds


class CommittedOffsets:
    """Reads a group's committed offsets with one long-lived consumer; it never subscribes, so
    it never joins the group it reads."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: list[int]) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self._partitions = [TopicPartition(topic, p) for p in partitions]

    def read(self) -> dict[int, int] | None:
        """Committed offset per partition (negative when none), or None when the broker did
        not answer (the coordinator is still loading, or a timeout)."""
        try:
            found = self._consumer.committed(self._partitions, timeout=10)
        except KafkaException:
            return None
        return {tp.partition: tp.offset for tp in found}

    def close(self) -> None:
        self._consumer.close()


def caught_up(committed: dict[int, int] | None, end: dict[int, int]) -> bool:
    """Every partition committed at its log end (an empty partition needs no commit)."""
    if committed is None:
        return False
    return all(n == 0 or committed.get(p, -1) >= n for p, n in end.items())


class CommitSampler(threading.Thread):
    """Samples the committed offsets every `interval_s` (wall time, offsets) until `stop` or
    `max_s` seconds. Only this thread uses `offsets` while it runs."""

    def __init__(self, offsets: CommittedOffsets, interval_s: float, max_s: float) -> None:
        super().__init__(name="commit-sampler", daemon=True)
        self.samples: list[tuple[float, dict[int, int]]] = []
        self._offsets = offsets
        self._interval_s = interval_s
        self._max_s = max_s
        self._stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        tick = 0
        while not self._stopping.is_set() and time.monotonic() - started < self._max_s:
            committed = self._offsets.read()
            if committed is not None:
                self.samples.append((time.time(), committed))
            tick += 1
            self._stopping.wait(max(0.0, started + tick * self._interval_s - time.monotonic()))

    def latest(self) -> dict[int, int] | None:
        return self.samples[-1][1] if self.samples else None

    def stop(self) -> None:
        self._stopping.set()
        self.join(30)


def wait_for_assignment(
    admin: AdminClient, group: str, topic: str, partitions: list[int], timeout_s: float
) -> bool:
    """True once the group is stable with every partition of `topic` assigned."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = admin.describe_consumer_groups([group])[group].result(10)
        except KafkaException:
            found = None
        if found is not None and found.state == ConsumerGroupState.STABLE:
            assigned = {
                tp.partition
                for member in found.members
                if member.assignment is not None
                for tp in member.assignment.topic_partitions
                if tp.topic == topic
            }
            if assigned == set(partitions):
                return True
        time.sleep(0.2)
    return False


@dataclass
class WorkerRun:
    """The worker process, when it was started, and how it ended (set on the way out)."""

    process: WorkerProcess
    started: float
    exit_status: int | None = None


@contextmanager
def running_worker(env: dict[str, str], log_path: Path) -> Iterator[WorkerRun]:
    """Starts `python -m worker run`; SIGTERMs it on the way out (SIGKILL after 90 s)."""
    run = WorkerRun(WorkerProcess(env, log_path), time.monotonic())
    try:
        yield run
    finally:
        try:
            run.exit_status = run.process.terminate(timeout=90)
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.exit_status = run.process.proc.returncode


def wait_drained(
    read: Callable[[], dict[int, int] | None],
    end: dict[int, int],
    worker: WorkerRun,
    timeout_s: float,
) -> tuple[float | None, dict[int, int] | None]:
    """Seconds from the worker's start until `read()` shows every partition at its log end
    (checked every 0.1 s), and the offsets last read. None instead of the seconds when
    `timeout_s` passed or the worker exited first."""
    deadline = time.monotonic() + timeout_s
    committed = None
    while time.monotonic() < deadline and worker.process.proc.poll() is None:
        committed = read()
        if caught_up(committed, end):
            return time.monotonic() - worker.started, committed
        time.sleep(0.1)
    return None, committed


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return f"{os.cpu_count()} CPUs (nproc), {cpu}, {kib / 1024**2:.1f} GiB RAM, {platform.system()}"


def versions() -> str:
    pom = (ROOT / "scripts" / "kafka" / "pom.xml").read_text()
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    kafka = found.group(1) if found else "unknown"
    return (
        f"Python {platform.python_version()}, confluent-kafka {confluent_kafka.__version__}, "
        f"librdkafka {confluent_kafka.libversion()[0]}, fastavro {fastavro.__version__}, "
        f"Kafka broker {kafka} (scripts/kafka/pom.xml)"
    )


def source_revision() -> str:
    """The commit measured, flagged when worker/ has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (
        " + local changes in worker/" if git("status", "--porcelain", "worker") else ""
    )
