"""The benchmark's load and its instruments: they speak to the broker, the FullStory sandbox
and the worker process only, never to the worker's internals, so the numbers keep their
meaning when the loop is rebuilt.

- `make_workload` / `produce_backlog` / `produce_paced`: pre-encoded user changes, written
  with one batching producer (fast) or at a fixed rate (each record's CreateTime kept).
- `make_debezium_workload`: Debezium envelopes of a users table (`tests/fakes/debezium`), in
  Confluent wire format, keyed by the primary key, with every uid's final row kept.
- `TombstoneTimer`: tombstones produced at fixed moments, each one's produce time kept.
- `decode_seconds`: fastavro's plain decode of the same values, in this process.
- `CommittedOffsets` / `CommitSampler`: the group's committed offsets through one
  long-lived consumer that never joins the group.
- `StatsSampler`: the sandbox's jobs in progress and operations in flight, every 50 ms.
- `WatermarkSampler`: a one-partition topic's high watermark (what Kafka confirmed), sampled.
- `running_worker`: `python -m worker run` as a process, SIGTERMed on the way out.
- `machine` / `versions`: what the results were measured on.
"""

from __future__ import annotations

import io
import os
import platform
import random
import re
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

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

from tests.fakes import debezium as dbz
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


# -- Debezium change events of a users table ----------------------------------------------

DEBEZIUM_SCHEMA_ID = 1  # the value schema's id in the registry, carried by every value
DEBEZIUM_KEY_SCHEMA_ID = 2
# What FIELD_MAPPING maps: uid, display name, email, and properties of four column types
# (text, a zoned timestamp, a date, a numeric). last_login_at, visits and churn_risk are not
# mapped: an update of only those is one the worker skips as unchanged.
DEBEZIUM_MAPPING: dict[str, Any] = {
    "uid": "id",
    "display_name": "full_name",
    "email": "email",
    "properties": {
        "plan": "pricing_plan",
        "signed_up": "created_at",
        "signup_day": "signup_date",
        "lifetime_value": "ltv",
    },
}
_PLANS = ("free", "pro", "team", "enterprise")
_FIRST_ID = 100_001
_EPOCH_DAY = date(1970, 1, 1)
_CREATED = datetime(2023, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DebeziumWorkload(Workload):
    """Envelopes of `ops` (op -> count), `unchanged` of them updates of unmapped columns only;
    `rows`: every id's row after its last event; `schema`: the value schema as registered."""

    schema: dict[str, Any] = field(default_factory=dict)
    ops: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _text(value: str) -> bytes:
    data = value.encode()
    return _zigzag(len(data)) + data


def _some(encoded: bytes) -> bytes:
    """The second branch of a ["null", T] union."""
    return b"\x02" + encoded


_NULL = b"\x00"


def _unscaled(cents: int) -> bytes:
    """A decimal's unscaled value, big-endian two's complement."""
    return cents.to_bytes(cents.bit_length() // 8 + 1, "big", signed=True)


def _row_bytes(row: dict[str, Any]) -> bytes:
    """The `Value` record of `tests/fakes/debezium.COLUMNS`, Avro-encoded by hand (fastavro
    takes ~60 µs an envelope: a minute for a million); checked against fastavro on a sample."""

    def opt(value: Any, encode: Callable[[Any], bytes]) -> bytes:
        return _NULL if value is None else _some(encode(value))

    return b"".join(
        (
            _zigzag(row["id"]),
            opt(row["full_name"], _text),
            opt(row["email"], _text),
            opt(row["pricing_plan"], _text),
            opt(row["created_at"], _text),
            opt(row["signup_date"], _zigzag),
            opt(row["ltv_cents"], lambda c: (lambda b: _zigzag(len(b)) + b)(_unscaled(c))),
            opt(row["last_login_at"], _zigzag),
            opt(row["visits"], _zigzag),
            opt(row["churn_risk"], lambda x: struct.pack("<d", x)),
        )
    )


def _source_bytes(ts_ms: int, tx_id: int, lsn: int) -> bytes:
    """`Source` as `tests/fakes/debezium.source()` fills it, with this event's times."""
    return b"".join(
        (
            _text("2.7.0.Final"),
            _text("postgresql"),
            _text(dbz.PREFIX),
            _zigzag(ts_ms),
            _NULL + _text("false"),  # snapshot: the first branch of [enum, "null"]
            _text("shop"),
            _some(_text(f'["{lsn - 24}","{lsn}"]')),
            _some(_zigzag(ts_ms * 1000)),
            _some(_zigzag(ts_ms * 1_000_000)),
            _text("public"),
            _text("users"),
            _some(_zigzag(tx_id)),
            _some(_zigzag(lsn)),
            _NULL,  # xmin
        )
    )


def _envelope_bytes(op: str, before: bytes | None, after: bytes, ts_ms: int, seq: int) -> bytes:
    processed = ts_ms + 142
    return b"".join(
        (
            struct.pack(">bI", 0, DEBEZIUM_SCHEMA_ID),
            _NULL if before is None else _some(before),
            _some(after),
            _source_bytes(ts_ms, 1_000 + seq, 24_023_128 + 64 * seq),
            _NULL,  # transaction
            _text(op),
            _some(_zigzag(processed)),
            _some(_zigzag(processed * 1000)),
            _some(_zigzag(processed * 1_000_000)),
        )
    )


def _new_row(row_id: int, rng: random.Random, seq: int) -> dict[str, Any]:
    created = _CREATED + timedelta(seconds=row_id * 613 % 31_536_000, microseconds=row_id % 997)
    return {
        "id": row_id,
        "full_name": f"User {row_id}",
        "email": f"user{row_id}@example.com",
        "pricing_plan": rng.choice(_PLANS),
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "signup_date": (created.date() - _EPOCH_DAY).days,
        "ltv_cents": rng.randrange(0, 10_000_000),
        "last_login_at": (dbz.COMMITTED_MS + seq) * 1000,
        "visits": 1,
        "churn_risk": round(rng.random(), 4),
    }


def _updated(row: dict[str, Any], rng: random.Random, seq: int, unchanged: bool) -> dict[str, Any]:
    """An UPDATE: last_login_at always moves; unless `unchanged`, one mapped column changes
    too (an email set to NULL now and then, which clears it in FullStory)."""
    row = {**row, "last_login_at": (dbz.COMMITTED_MS + seq) * 1000}
    if unchanged:
        return row
    row["visits"] += 1
    row["churn_risk"] = round(rng.random(), 4)
    column = rng.choice(("full_name", "email", "pricing_plan", "ltv_cents"))
    if column == "full_name":
        row["full_name"] = f"User {row['id']} ({seq})"
    elif column == "email":
        row["email"] = None if rng.random() < 0.05 else f"u{seq}@example.com"
    elif column == "pricing_plan":
        row["pricing_plan"] = rng.choice([p for p in _PLANS if p != row["pricing_plan"]])
    else:
        row["ltv_cents"] += rng.randrange(1, 100_000)
    return row


def _as_datum(row: dict[str, Any]) -> dict[str, Any]:
    """The row as fastavro reads it with the registered (logical-typed) schema."""
    datum = {k: v for k, v in row.items() if k != "ltv_cents"}
    datum["ltv"] = Decimal(row["ltv_cents"]).scaleb(-2)
    return datum


def make_debezium_workload(
    events: int, uids: int, seed: int, unchanged_share: float = 0.10
) -> DebeziumWorkload:
    """`events` change events of a users table over `uids` rows: each row's first event is
    its INSERT (`c`), every later one an UPDATE (`u`) with both images (REPLICA IDENTITY
    FULL), `unchanged_share` of them changing only unmapped columns. Keys are the Debezium
    key `{id}` in wire format, so a row's events share a partition, in order."""
    started = time.monotonic()
    rng = random.Random(seed)
    key_of: dict[int, bytes] = {}
    current: dict[int, tuple[dict[str, Any], bytes]] = {}
    keys: list[bytes] = []
    values: list[bytes] = []
    ops = {"c": 0, "u": 0}
    unchanged = 0
    envelope = dbz.envelope_schema()
    check = fastavro.parse_schema(envelope)
    for seq in range(events):
        row_id = _FIRST_ID + rng.randrange(uids)
        ts_ms = dbz.COMMITTED_MS + seq
        found = current.get(row_id)
        if found is None:
            row = _new_row(row_id, rng, seq)
            after = _row_bytes(row)
            value = _envelope_bytes("c", None, after, ts_ms, seq)
            key_of[row_id] = struct.pack(">bI", 0, DEBEZIUM_KEY_SCHEMA_ID) + _zigzag(row_id)
            ops["c"] += 1
        else:
            old, before = found
            same = rng.random() < unchanged_share
            row = _updated(old, rng, seq, same)
            after = _row_bytes(row)
            value = _envelope_bytes("u", before, after, ts_ms, seq)
            ops["u"] += 1
            unchanged += same
        current[row_id] = (row, after)
        keys.append(key_of[row_id])
        values.append(value)
        if seq < 100 or seq % 9_973 == 0:
            _check_encoding(check, value, found[0] if found else None, row, ts_ms)
    return DebeziumWorkload(
        keys,
        values,
        uids,
        time.monotonic() - started,
        schema=envelope,
        ops=ops,
        unchanged=unchanged,
        rows={row_id: row for row_id, (row, _) in current.items()},
    )


def _check_encoding(
    schema: Any, value: bytes, before: dict[str, Any] | None, after: dict[str, Any], ts_ms: int
) -> None:
    """The hand encoding reads back, with fastavro and the registered schema, as written."""
    body = io.BytesIO(value)
    body.seek(5)
    datum = fastavro.schemaless_reader(body, schema, None)
    assert isinstance(datum, dict) and body.tell() == len(value), "trailing bytes"
    assert datum["before"] == (None if before is None else _as_datum(before)), datum
    assert datum["after"] == _as_datum(after), datum
    assert datum["source"]["ts_ms"] == ts_ms and datum["op"] == ("c" if before is None else "u")
    assert datum["source"]["snapshot"] == "false" and datum["transaction"] is None


def expected_user(row: dict[str, Any]) -> dict[str, Any]:
    """What FullStory should hold for a row under `DEBEZIUM_MAPPING` (README, "Debezium
    sources"): a NULL column clears its field."""
    return {
        "display_name": row["full_name"],
        "email": row["email"],
        "properties": {
            "plan": row["pricing_plan"],
            "signed_up": row["created_at"],
            "signup_day": (_EPOCH_DAY + timedelta(days=row["signup_date"])).isoformat(),
            "lifetime_value": float(Decimal(row["ltv_cents"]).scaleb(-2)),
        },
    }


def decode_seconds(
    values: list[bytes], passes: int = 3, schema: Any = SCHEMA, header: int = 0
) -> float:
    """The fastest of `passes` runs of fastavro's `schemaless_reader` over every value, in this
    process: the plain decode, without the worker's mapping to its own records. The fastest
    pass is the one other processes on the machine disturbed least. `schema`: the parsed
    writer schema (the canonical one by default); `header`: bytes skipped before the Avro
    body (5 for Confluent's wire format)."""
    reader, stream = fastavro.schemaless_reader, io.BytesIO
    fastest = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        if header:
            for value in values:
                body = stream(value)
                body.seek(header)
                reader(body, schema, None)
        else:
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


class WatermarkSampler(threading.Thread):
    """Samples the high watermark of partition 0 of `topic` every `interval_s` (monotonic
    time the broker's answer came, offset) until `stop` or `max_s` seconds: a record below it
    is one Kafka confirmed (acks=all on this single broker)."""

    def __init__(self, bootstrap: str, topic: str, interval_s: float, max_s: float) -> None:
        super().__init__(name="watermark-sampler", daemon=True)
        self.samples: list[tuple[float, int]] = []
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
        self._partition = TopicPartition(topic, 0)
        self._interval_s = interval_s
        self._max_s = max_s
        self._stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        try:
            while not self._stopping.is_set() and time.monotonic() - started < self._max_s:
                try:
                    _low, high = self._consumer.get_watermark_offsets(
                        self._partition, timeout=5, cached=False
                    )
                    self.samples.append((time.monotonic(), high))
                except KafkaException:
                    pass
                self._stopping.wait(self._interval_s)
        finally:
            self._consumer.close()

    def first_at(self, count: int) -> float | None:
        """When the watermark was first seen at `count` or past it."""
        return next((at for at, high in self.samples if high >= count), None)

    def stop(self) -> None:
        self._stopping.set()
        self.join(30)


def wait_for_assignment(
    admin: AdminClient,
    group: str,
    topic: str,
    partitions: list[int],
    timeout_s: float,
    members: int | None = None,
) -> bool:
    """True once the group is stable with every partition of `topic` assigned (and, with
    `members`, held by exactly that many members, each owning at least one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = admin.describe_consumer_groups([group])[group].result(10)
        except KafkaException:
            found = None
        if found is not None and found.state == ConsumerGroupState.STABLE:
            owned = [
                {tp.partition for tp in member.assignment.topic_partitions if tp.topic == topic}
                for member in found.members
                if member.assignment is not None
            ]
            owners = sum(1 for held in owned if held)
            if set().union(*owned) == set(partitions) and members in (None, owners):
                return True
        time.sleep(0.2)
    return False


class StatsSampler(threading.Thread):
    """Samples the sandbox's in-progress jobs (queued + running) and in-flight operations
    every `interval_s` as (monotonic, jobs, operations), until `stop` or `max_s` seconds.
    `stats` is the sandbox's `stats()` (in this process: no HTTP in the way)."""

    def __init__(
        self, stats: Callable[[], dict[str, Any]], interval_s: float, max_s: float
    ) -> None:
        super().__init__(name="stats-sampler", daemon=True)
        self.samples: list[tuple[float, int, int]] = []
        self._stats = stats
        self._interval_s = interval_s
        self._max_s = max_s
        self._stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        tick = 0
        while not self._stopping.is_set() and time.monotonic() - started < self._max_s:
            jobs = self._stats()["jobs"]
            self.samples.append((time.monotonic(), jobs["processing"], jobs["in_flight_requests"]))
            tick += 1
            self._stopping.wait(max(0.0, started + tick * self._interval_s - time.monotonic()))

    def stop(self) -> None:
        self._stopping.set()
        self.join(30)


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
    return wait_caught_up(
        read, end, worker.started, lambda: worker.process.proc.poll() is None, timeout_s
    )


def wait_caught_up(
    read: Callable[[], dict[int, int] | None],
    end: dict[int, int],
    since: float,
    alive: Callable[[], bool],
    timeout_s: float,
) -> tuple[float | None, dict[int, int] | None]:
    """Seconds from `since` (monotonic) until `read()` shows every partition at its log end
    (checked every 0.1 s), and the offsets last read; None instead of the seconds when
    `timeout_s` passed or `alive()` turned false first."""
    deadline = time.monotonic() + timeout_s
    committed = None
    while time.monotonic() < deadline and alive():
        committed = read()
        if caught_up(committed, end):
            return time.monotonic() - since, committed
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


class TombstoneTimer(threading.Thread):
    """Produces a tombstone (key: the uid, no value) for each of `uids` at the monotonic
    moments `due`, one producer, no linger. `sent[uid]` = (monotonic, wall) just before its
    `produce`; `stored` = each tombstone as the broker stored it (CreateTime kept)."""

    def __init__(self, bootstrap: str, topic: str, uids: list[str], due: list[float]) -> None:
        super().__init__(name="tombstones", daemon=True)
        self.sent: dict[str, tuple[float, float]] = {}
        self.stored: list[Produced] = []
        self._producer = _producer(bootstrap, **{"linger.ms": 0})
        self._topic = topic
        self._plan = list(zip(uids, due, strict=True))
        self._stopping = threading.Event()

    def run(self) -> None:
        def delivered(error: KafkaError | None, message: Message) -> None:
            partition, offset = message.partition(), message.offset()
            if error is None and partition is not None and offset is not None:
                self.stored.append(Produced(partition, offset, message.timestamp()[1]))

        for uid, due in self._plan:
            if self._stopping.wait(max(0.0, due - time.monotonic())):
                break
            self.sent[uid] = (time.monotonic(), time.time())
            self._producer.produce(self._topic, None, uid.encode(), on_delivery=delivered)
            self._producer.poll(0)
        self._producer.flush(30)

    def stop(self) -> None:
        self._stopping.set()
        self.join(60)
