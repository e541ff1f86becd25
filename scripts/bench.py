"""The worker's benchmark (`make bench`): the real broker, the FullStory sandbox, the worker
as a process. It measures from the outside only (committed offsets, the sandbox's stats and
job log, /proc), so it measures any version of the loop the same way.

Scenarios (each on a fresh 6-partition topic, 12 for group, a DLQ topic and a consumer group,
deleted after):

- backlog: 1,000,000 events over 50,000 uids, produced before the worker starts; sandbox
  jobs take 0.2-0.5 s. events/s = events / (worker start -> every partition committed at its
  log end, read every 0.1 s); compared with fastavro's plain decode rate of the same values
  (`schemaless_reader`, in this process, in the same run, while no worker runs; the fastest
  of 3 passes). Upserts per uid = the sandbox's upserts / users; jobs = import jobs created;
  peak RSS = the worker's VmHWM when it has drained. Run `--backlog-runs` times (3), each on
  fresh topics: a single run on this shared 2-core machine varies by a fifth either way. The
  row is the median run by drain time; its notes list every run's events/s, and peak RSS and
  upserts per uid are the worst of the runs.
- outage: the same backlog, the sandbox answering 503 to every request for the first 60 s
  after the worker starts, then healthy. events/s counts from the end of the outage.
- replay: 300,000 events over 20,000 uids, produced before the worker starts, jobs of
  3-6 s. Time to catch up against 2x the longest job the sandbox ran + the decode time.
- live: 2,000 events/s for 30 s over 50,000 uids into a running worker (BATCH_MAX_WAIT_MS=500,
  jobs 0.2-0.5 s), after the group is stable. Latency per record = the first moment a
  sampler (one consumer reading the committed offsets every 50 ms) saw its partition's
  commit pass it, minus the record's CreateTime; p50 and p99 over all records.
- debezium: 1,000,000 Debezium change events (raw envelopes, Confluent wire format, keyed by
  the primary key) of a users table over 50,000 rows, produced before the worker starts: each
  row's first event its INSERT (c), every later one an UPDATE (u) with both images (REPLICA
  IDENTITY FULL), one in ten of those changing only unmapped columns (last_login_at), which the
  worker skips as unchanged; the others change one mapped column. The tests' registry runs in
  this process with the envelope schema under the id the values carry; the worker runs with
  SOURCE_FORMAT=debezium, SCHEMA_REGISTRY_URL and a FIELD_MAPPING of uid, display name, email
  and four properties (text, zoned timestamp, date, numeric). Measured as backlog (one run):
  events/s against fastavro's plain decode of the same values with the registry's writer
  schema (logical types dropped, as the worker reads them), upserts per uid, jobs, peak RSS;
  then the sandbox must hold every row, a sample of 500 as the mapping says, and nothing may
  be dead-lettered.
- delete-latency: the backlog's 1,000,000 canonical upserts produced first; the sandbox
  (user_delete_ms=1000) already holds 20 of the backlog's users (created with POST /v2/users);
  the worker runs with ON_DELETE=delete and, from 0.5 s after it starts, a tombstone (key the
  uid, no value) for each of those 20 is produced every 0.25 s while the backlog drains.
  Latency per delete = the sandbox's answer 200 to its DELETE (the request log's
  answered_monotonic, this process's clock) minus the moment just before its produce;
  p50 / p99 (of 20, the max) / max. Also: produce (CreateTime) -> the group's
  commit past the tombstone (sampled every 50 ms; the worker commits a delete only once the
  user answers 404), how much of the backlog was committed when the last tombstone went and
  when the last delete was answered, and events/s of the backlog alone (worker start -> the
  backlog's offsets committed). The deleted users must be gone and the sandbox may record no
  upsert of a uid under deletion.
- group: 4 worker processes in one group on a 12-partition topic, against a sandbox whose org
  allows 6 jobs in progress and 30,000 operations in flight (jobs 0.2-0.5 s), with
  FULLSTORY_ORG_MAX_JOBS=6 and FULLSTORY_ORG_MAX_OPERATIONS=30000 (BATCH_MAX_USERS and
  MAX_JOBS_IN_FLIGHT their defaults). Once all four own partitions (the group as the broker
  describes it) they are SIGSTOPped, 400,000 events over 173,000 uids are produced, and they
  are SIGCONTed together, so each catches up on its share, as
  tests/integration/test_org_budget.py does. Drain = SIGCONT -> every partition committed at
  its log end; the ideal = import jobs the sandbox ran / 6 x their mean duration (created ->
  finished, its job log), and the ratio; 429s from the org's limits (the request log: 429 on
  batch_create with no injected fault); upserts per uid = the sandbox's upserts / users; peak
  jobs in progress and operations in flight from a sampler of the sandbox's stats every 50 ms
  (the sandbox refuses past its limits, so they cannot exceed 6 / 30,000: the 429s are the
  measure of the group tripping them); peak RSS = the sum of the four VmHWMs. Then again with
  the worker's defaults for both (100 / 400,000: no budget that fits the org), the row
  group-unbudgeted, for comparison.
- crashloop: the live stream (2,000 events/s for 30 s over 50,000 uids, BATCH_MAX_WAIT_MS=500,
  jobs 0.2-0.5 s) into two replicas of one group on a 6-partition topic, each a static member
  (KAFKA_CFG_GROUP_INSTANCE_ID replica-0 / replica-1), started and the group stable before
  producing. Replica 0 is SIGKILLed at 8 s and 18 s into the stream (the same fractions of a
  scaled stream) and started again 0.5 s after each kill under the same id, as a kubelet
  restarts a crashing pod. Freshness per record = the first commit sample (every 50 ms) past
  it minus its CreateTime, as live: p50 / p99 / max. Partitions back after a kill = the
  first `partitions_assigned` line, in any replica's log, holding the last of the partitions
  the killed process held when it died, minus the kill time; also when the logs first show
  all 6 partitions held by live processes again (a killed process holds nothing from its
  kill: a dynamic restart may itself be killed before it got any) and when the restarted
  worker first logged an assignment. The ideal = BATCH_MAX_WAIT_MS + the mean job (created ->
  finished, the sandbox's job log). Nothing may be lost: every partition committed at its log
  end, every record seen committed, the sandbox holding every uid, no dead letter. Then the
  same run without instance ids (dynamic members): the row crashloop-dynamic, where the
  killed member's partitions wait out its 15 s session timeout.

- readback: 6,000 events over 2,000 uids, produced before the worker starts, with the
  sandbox refusing 5% of the users (reject_uids: uids whose number is a multiple of 20, as
  FullStory refuses users by a rule the worker cannot check; jobs 0.2-0.5 s) and
  BATCH_MAX_WAIT_MS=2000 so that the users go in one job. The worker reads the refused users'
  records back from Kafka for their dead letters. Time = the job's end (the sandbox's job log)
  -> the last dead letter confirmed (the DLQ's high watermark reaching the number of the
  refused users' records, sampled every 20 ms); also the moment the worker's last read of
  the job's errors was answered (what is left after it is read-back and the letters' write)
  and the first letter. Every refused user's record must be dead-lettered, nothing else, and
  every partition committed at its log end.
Producing happens before the worker's clock starts (backlogs) and is timed on its own. Every
wait is bounded: a scenario that does not drain in time is reported as such. The worker gets
its defaults apart from the broker, topics, group, sandbox URL, HTTP_PORT=0 and the live
scenario's BATCH_MAX_WAIT_MS; its logs go to a temporary directory printed at the start.

`--scale F` multiplies event and uid counts (events per uid stay the same) and the live and
crashloop durations (at least 10 s, same rate, crashloop's kills at the same fractions): a
quick smoke run, not a measurement. The results go to `--out` (bench/RESULTS.md) and its
`.json` twin: a run replaces the rows of the scenarios it ran and keeps the others, and every
row names the run (command, commit, load) it came from.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_report import Row, load_average, save  # noqa: E402
from bench_tools import (  # noqa: E402
    DEBEZIUM_MAPPING,
    DEBEZIUM_SCHEMA_ID,
    CommitSampler,
    CommittedOffsets,
    DebeziumWorkload,
    Produced,
    StatsSampler,
    TombstoneTimer,
    WatermarkSampler,
    WorkerRun,
    Workload,
    caught_up,
    decode_seconds,
    expected_user,
    machine,
    make_debezium_workload,
    make_workload,
    produce_backlog,
    produce_paced,
    running_worker,
    source_revision,
    versions,
    wait_caught_up,
    wait_drained,
    wait_for_assignment,
)

from fullstory_sandbox import Sandbox  # noqa: E402
from tests.fakes import debezium as dbz  # noqa: E402
from tests.integration.kafka_tools import Broker  # noqa: E402
from tests.integration.registry import Registry  # noqa: E402
from worker.fullstory.budget import slots  # noqa: E402

API_KEY = "bench-key"
PARTITIONS = 6
PARTITION_IDS = list(range(PARTITIONS))
SEED = 7
FAST_JOBS_MS = (200, 500)
SLOW_JOBS_MS = (3_000, 6_000)
OUTAGE_S = 60.0
LIVE_RATE = 2_000
LIVE_SECONDS = 30.0
LIVE_UIDS = 50_000
UNCHANGED_SHARE = 0.10  # Debezium updates of unmapped columns only
DEBEZIUM_SAMPLE = 500  # users whose final state is checked field by field
DELETES = 20
DELETE_FIRST_S = 0.5  # after the worker starts
DELETE_EVERY_S = 0.25
USER_DELETE_MS = 1_000
GROUP_PARTITIONS = 12
GROUP_REPLICAS = 4
ORG_JOBS = 6  # the sandbox's max_in_progress_jobs and the group's FULLSTORY_ORG_MAX_JOBS
ORG_OPERATIONS = 30_000  # max_in_flight_requests and FULLSTORY_ORG_MAX_OPERATIONS
# The worker's defaults for the org budget: as if the replicas shared none that fits the org.
UNBUDGETED = {"FULLSTORY_ORG_MAX_JOBS": "100", "FULLSTORY_ORG_MAX_OPERATIONS": "400000"}
MAX_JOBS_IN_FLIGHT = 10  # the worker's default: the ceiling on a replica's share of the jobs


def drain_timeout_s(events: int) -> float:
    """Generous: today's worker drains 1M events in about 30 s."""
    return 120 + events / 5_000


@dataclass(frozen=True)
class Topics:
    source: str
    dlq: str
    group: str


@dataclass
class Bench:
    """What every scenario shares: the broker, the scale, where logs go, encoded workloads."""

    broker: Broker
    scale: float
    logs: Path
    backlog_runs: int = 3
    _workloads: dict[tuple[int, int], Workload] = field(default_factory=dict)
    _debezium: dict[tuple[int, int], DebeziumWorkload] = field(default_factory=dict)

    def scaled(self, events: int, uids: int) -> tuple[int, int]:
        return max(1, round(events * self.scale)), max(1, round(uids * self.scale))

    def workload(self, events: int, uids: int) -> Workload:
        """`events` over `uids`, both scaled; built once per run."""
        shape = self.scaled(events, uids)
        if shape not in self._workloads:
            self._workloads[shape] = make_workload(*shape, seed=SEED)
        return self._workloads[shape]

    def debezium_workload(self, events: int, uids: int) -> DebeziumWorkload:
        shape = self.scaled(events, uids)
        if shape not in self._debezium:
            self._debezium[shape] = make_debezium_workload(*shape, SEED, UNCHANGED_SHARE)
        return self._debezium[shape]

    def topics(self, scenario: str, partitions: int = PARTITIONS) -> Topics:
        run_id = uuid.uuid4().hex[:6]
        return Topics(
            self.broker.create_topic(partitions, prefix=f"bench-{scenario}"),
            self.broker.create_topic(1, prefix=f"bench-{scenario}-dlq"),
            f"bench-{scenario}-{run_id}",
        )

    def drop(self, topics: Topics) -> None:
        futures = self.broker.admin().delete_topics([topics.source, topics.dlq])
        for future in futures.values():
            future.result(30)

    def worker_env(self, topics: Topics, sandbox: Sandbox, **extra: str) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "KAFKA_TOPICS": topics.source,
            "KAFKA_GROUP_ID": topics.group,
            "DLQ_TOPIC": topics.dlq,
            "FULLSTORY_API_KEY": API_KEY,
            "FULLSTORY_API_URL": sandbox.url,
            "HTTP_PORT": "0",
            **extra,
        }

    def log_path(self, scenario: str) -> Path:
        return self.logs / f"worker-{scenario}.log"


def sandbox(jobs_ms: tuple[int, int], **settings: Any) -> Sandbox:
    low, high = jobs_ms
    return Sandbox(
        api_key=API_KEY, job_delay_ms=low, job_jitter_ms=high - low, seed=SEED, **settings
    )


# -- backlogs: produced first, then the worker drains them -------------------------------


@dataclass
class Drain:
    """A backlog run: how long producing, decoding and draining took, what FullStory saw."""

    produce_s: float
    decode_s: float
    drained_s: float | None
    committed: dict[int, int] | None
    end: dict[int, int]
    stats: dict[str, Any]
    longest_job_s: float
    first_job_s: float | None  # worker start -> the first job FullStory created
    peak_rss_mib: float | None
    exit_status: int | None
    dead_letters: int = 0
    problems: list[str] = field(default_factory=list)  # what `check` found wrong


def run_backlog(
    bench: Bench,
    scenario: str,
    load: Workload,
    jobs_ms: tuple[int, int],
    outage_s: float = 0,
    env: dict[str, str] | None = None,
    decode: Callable[[], float] | None = None,
    check: Callable[[Sandbox], list[str]] | None = None,
) -> Drain:
    """Produces `load`, measures its decode, then times the worker draining it. With
    `outage_s`, the sandbox answers 503 from before the worker starts until `outage_s` after.
    `env`: more of the worker's variables; `decode`: the plain decode's seconds (fastavro on
    the canonical schema by default); `check(sandbox)`: problems in what FullStory holds."""
    topics = bench.topics(scenario)
    offsets = CommittedOffsets(bench.broker.bootstrap, topics.group, topics.source, PARTITION_IDS)
    try:
        produce_s = produce_backlog(bench.broker.bootstrap, topics.source, load)
        end = bench.broker.end_offsets(topics.source)
        decode_s = decode() if decode is not None else decode_seconds(load.values)
        timeout = drain_timeout_s(len(load.values)) + outage_s
        with sandbox(jobs_ms) as api:
            heal = threading.Timer(outage_s, api.set_faults, kwargs={"server_error": {"count": 0}})
            if outage_s:
                api.set_faults(server_error={"count": 10**9, "status": 503})
            worker_env = bench.worker_env(topics, api, **(env or {}))
            with running_worker(worker_env, bench.log_path(scenario)) as worker:
                if outage_s:
                    heal.start()
                drained_s, committed = wait_drained(offsets.read, end, worker, timeout)
                heal.cancel()
                rss = worker.process.peak_rss_mib()
            stats, jobs = api.stats(), api.jobs()
            problems = check(api) if check is not None else []
        dead_letters = sum(bench.broker.end_offsets(topics.dlq).values())
    finally:
        offsets.close()
        bench.drop(topics)
    # The sandbox runs in this process, so its job times are on this process's monotonic clock.
    first_job = min((j["created_monotonic"] for j in jobs), default=None)
    return Drain(
        produce_s,
        decode_s,
        drained_s,
        committed,
        end,
        stats,
        longest_job_s(jobs),
        None if first_job is None else first_job - worker.started,
        rss,
        worker.exit_status,
        dead_letters,
        problems,
    )


def longest_job_s(jobs: list[dict[str, Any]]) -> float:
    """The longest any finished job ran (started -> finished), by the sandbox's clock."""
    return max(
        (
            j["finished_monotonic"] - j["started_monotonic"]
            for j in jobs
            if j["finished_monotonic"] is not None and j["started_monotonic"] is not None
        ),
        default=0.0,
    )


def drain_row(scenario: str, load: Workload, drain: Drain, busy_s: float = 0.0) -> Row:
    """The columns a backlog has; events/s counts from `busy_s` after the worker started."""
    events = len(load.values)
    row = Row(scenario, events, load.uids, seconds=drain.drained_s)
    row.decode_per_s = events / drain.decode_s
    if drain.drained_s is not None:
        row.events_per_s = events / max(drain.drained_s - busy_s, 1e-9)
    users = drain.stats["users"]
    row.upserts_per_uid = drain.stats["upserts"] / users if users else None
    row.jobs = drain.stats["jobs"]["total"]
    row.peak_rss_mib = drain.peak_rss_mib
    row.notes.append(f"produced in {drain.produce_s:.1f} s (not timed)")
    if drain.drained_s is None:
        behind = sum(drain.end.values()) - sum(max(0, o) for o in (drain.committed or {}).values())
        row.fail(f"NOT DRAINED: {behind:,} records uncommitted when it gave up")
    if drain.exit_status != 0:
        row.fail(f"worker exit status after SIGTERM: {drain.exit_status}")
    if drain.dead_letters:
        row.fail(f"{drain.dead_letters:,} records dead-lettered")
    for problem in drain.problems:
        row.fail(problem)
    return row


def backlog(bench: Bench) -> Row:
    load = bench.workload(1_000_000, 50_000)
    drains = [run_backlog(bench, "backlog", load, FAST_JOBS_MS) for _ in range(bench.backlog_runs)]
    rows = [drain_row("backlog", load, drain) for drain in drains]
    if not all(row.complete for row in rows):
        return next(row for row in rows if not row.complete)
    rows.sort(key=lambda row: row.seconds or 0.0)
    row = rows[len(rows) // 2]
    row.peak_rss_mib = max(r.peak_rss_mib or 0.0 for r in rows)
    row.upserts_per_uid = max(r.upserts_per_uid or 0.0 for r in rows)
    if len(rows) > 1:
        rates = ", ".join(f"{r.events_per_s:,.0f}" for r in rows)
        row.notes.insert(
            0,
            f"median of {len(rows)} runs (events/s: {rates}; fastavro/s: "
            + ", ".join(f"{r.decode_per_s:,.0f}" for r in rows)
            + "); peak RSS and upserts/uid: the worst run",
        )
    return row


def outage(bench: Bench) -> Row:
    load = bench.workload(1_000_000, 50_000)
    drain = run_backlog(bench, "outage", load, FAST_JOBS_MS, outage_s=OUTAGE_S)
    row = drain_row("outage", load, drain, busy_s=OUTAGE_S)
    refused = drain.stats["requests"]["by_status"].get("503", 0)
    after = [f"events/s from the end of the {OUTAGE_S:.0f} s outage ({refused} x 503)"]
    if drain.first_job_s is not None:
        after.append(f"first job {drain.first_job_s - OUTAGE_S:.1f} s after it ended")
    if drain.drained_s is not None:
        after.append(f"drained {drain.drained_s - OUTAGE_S:.1f} s after it ended")
    row.notes[:0] = after
    return row


def replay(bench: Bench) -> Row:
    load = bench.workload(300_000, 20_000)
    drain = run_backlog(bench, "replay", load, SLOW_JOBS_MS)
    row = drain_row("replay", load, drain)
    target = 2 * drain.longest_job_s + drain.decode_s
    row.notes.insert(
        0,
        f"target 2 x {drain.longest_job_s:.1f} s (longest job) + {drain.decode_s:.1f} s "
        f"(decode) = {target:.1f} s"
        + (f": {drain.drained_s / target:.1f}x the target" if drain.drained_s else ""),
    )
    return row


# -- live: a fixed rate into a running worker ---------------------------------------------


def ack_latencies(
    stored: list[Produced], samples: list[tuple[float, dict[int, int]]]
) -> list[float]:
    """Per record: the first sample whose commit passed it, minus its CreateTime (seconds).
    Records no sample saw committed are left out."""
    latencies: list[float] = []
    by_partition: dict[int, list[Produced]] = {}
    for record in stored:
        by_partition.setdefault(record.partition, []).append(record)
    for partition, records in by_partition.items():
        records.sort(key=lambda r: r.offset)
        i = 0
        for wall, committed in samples:
            while i < len(records) and records[i].offset < committed.get(partition, -1):
                latencies.append(wall - records[i].created_ms / 1000)
                i += 1
    return sorted(latencies)


def percentile(ordered: list[float], q: float) -> float | None:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


@dataclass
class Stream:
    """A live run: the records as stored, the commit samples, what FullStory saw."""

    stored: list[Produced]
    produce_s: float
    samples: list[tuple[float, dict[int, int]]]
    drained: bool
    stats: dict[str, Any]
    peak_rss_mib: float | None
    exit_status: int | None


def run_stream(bench: Bench, load: Workload) -> Stream | None:
    """Streams `load` at `LIVE_RATE` into a worker that already owns every partition, sampling
    the committed offsets every 50 ms until they reach the log end; None when the group never
    became stable."""
    topics = bench.topics("live")
    offsets = CommittedOffsets(bench.broker.bootstrap, topics.group, topics.source, PARTITION_IDS)
    timeout = drain_timeout_s(len(load.values))
    sampler = CommitSampler(offsets, 0.05, max_s=2 * len(load.values) / LIVE_RATE + timeout + 60)
    try:
        with sandbox(FAST_JOBS_MS) as api:
            env = bench.worker_env(topics, api, BATCH_MAX_WAIT_MS="500")
            with running_worker(env, bench.log_path("live")) as worker:
                admin = bench.broker.admin()
                if not wait_for_assignment(admin, topics.group, topics.source, PARTITION_IDS, 60):
                    return None
                sampler.start()
                try:
                    stored, produce_s = produce_paced(
                        bench.broker.bootstrap, topics.source, load, LIVE_RATE
                    )
                    end = bench.broker.end_offsets(topics.source)
                    drained_s, _ = wait_drained(sampler.latest, end, worker, timeout)
                finally:
                    sampler.stop()
                rss = worker.process.peak_rss_mib()
            stats = api.stats()
    finally:
        offsets.close()
        bench.drop(topics)
    return Stream(
        stored, produce_s, sampler.samples, drained_s is not None, stats, rss, worker.exit_status
    )


def live(bench: Bench) -> Row:
    seconds = LIVE_SECONDS if bench.scale >= 1 else max(10.0, LIVE_SECONDS * bench.scale)
    load = make_workload(int(LIVE_RATE * seconds), LIVE_UIDS, seed=SEED)
    row = Row("live", len(load.values), LIVE_UIDS)
    stream = run_stream(bench, load)
    if stream is None:
        row.fail("NOT RUN: the group did not become stable in 60 s")
        return row
    latencies = ack_latencies(stream.stored, stream.samples)
    row.seconds = stream.produce_s
    row.events_per_s = len(stream.stored) / stream.produce_s
    row.p50_s, row.p99_s = percentile(latencies, 0.50), percentile(latencies, 0.99)
    users = stream.stats["users"]
    row.upserts_per_uid = stream.stats["upserts"] / users if users else None
    row.jobs = stream.stats["jobs"]["total"]
    row.peak_rss_mib = stream.peak_rss_mib
    row.notes.append(
        f"{LIVE_RATE:,}/s for {seconds:.0f} s, BATCH_MAX_WAIT_MS=500; worker time = producing; "
        f"max {percentile(latencies, 1.0) or 0:.2f} s; {len(stream.samples)} commit samples"
    )
    if not stream.drained or len(latencies) < len(stream.stored):
        unseen = len(stream.stored) - len(latencies)
        row.fail(f"NOT DRAINED: {unseen:,} records never seen committed")
    if stream.exit_status != 0:
        row.fail(f"worker exit status after SIGTERM: {stream.exit_status}")
    return row


# -- Debezium: a users table's change events through the field mapping --------------------


def debezium_sample(load: DebeziumWorkload) -> list[int]:
    ids = sorted(load.rows)
    return ids[:: max(1, len(ids) // DEBEZIUM_SAMPLE)]


def debezium_check(load: DebeziumWorkload) -> Callable[[Sandbox], list[str]]:
    """Every row is a user; a sample of `DEBEZIUM_SAMPLE` rows holds the row's last state as
    the mapping says (a NULL email cleared)."""
    ids = sorted(load.rows)
    sample = debezium_sample(load)

    def check(api: Sandbox) -> list[str]:
        users = api.users()
        problems = []
        if set(users) != {str(i) for i in ids}:
            problems.append(f"the sandbox holds {len(users):,} users, the table {len(ids):,} rows")
        wrong = []
        for row_id in sample:
            user = users.get(str(row_id))
            held = user and {k: user.get(k) for k in ("display_name", "email", "properties")}
            if held != expected_user(load.rows[row_id]):
                wrong.append(f"{row_id}: {held} != {expected_user(load.rows[row_id])}")
        if wrong:
            problems.append(f"{len(wrong)} of {len(sample)} sampled users wrong, e.g. {wrong[0]}")
        return problems

    return check


def debezium(bench: Bench) -> Row:
    load = bench.debezium_workload(1_000_000, 50_000)
    # The writer schema as the worker's registry client hands it out: logical types dropped.
    writer = dbz.registry({DEBEZIUM_SCHEMA_ID: load.schema})(DEBEZIUM_SCHEMA_ID)
    mapping = bench.logs / "mapping.json"
    mapping.write_text(json.dumps(DEBEZIUM_MAPPING))
    with Registry() as registry:
        registry.register(DEBEZIUM_SCHEMA_ID, load.schema)
        env = {
            "SOURCE_FORMAT": "debezium",
            "FIELD_MAPPING": str(mapping),
            "SCHEMA_REGISTRY_URL": registry.url,
        }
        drain = run_backlog(
            bench,
            "debezium",
            load,
            FAST_JOBS_MS,
            env=env,
            decode=lambda: decode_seconds(load.values, schema=writer, header=5),
            check=debezium_check(load),
        )
        fetches = registry.fetches
    row = drain_row("debezium", load, drain)
    events = len(load.values)
    sample = debezium_sample(load)
    cleared = sum(load.rows[i]["email"] is None for i in sample)
    row.notes[:0] = [
        f"{load.ops['c']:,} c + {load.ops['u']:,} u, {load.unchanged:,} "
        f"({load.unchanged / events:.1%} of all events) u of last_login_at only (skipped "
        "as unchanged); the other u change one mapped column",
        f"fastavro/s: schemaless_reader, the registry's writer schema (logical types dropped), "
        f"{len(load.values[0])} B a value",
        f"{fetches} registry fetch(es); {len(sample)} users' final state checked ({cleared} "
        "with the email cleared by a NULL), every row a user, no dead letter",
        f"workload built in {load.prepare_s:.0f} s",
    ]
    return row


# -- delete latency: tombstones produced while a backlog of upserts drains -----------------


def _uid_of(path: str) -> str | None:
    return (parse_qs(urlsplit(path).query).get("uid") or [None])[0]


def _backlog_share(committed: dict[int, int] | None, backlog_end: dict[int, int]) -> float:
    """The share of the backlog's records (before the tombstones) committed."""
    done = sum(min(max(0, (committed or {}).get(p, 0)), n) for p, n in backlog_end.items())
    return done / max(1, sum(backlog_end.values()))


def _sample_at(samples: list[tuple[float, dict[int, int]]], wall: float) -> dict[int, int] | None:
    """The last commit sample taken at or before `wall`."""
    found = None
    for at, committed in samples:
        if at > wall:
            break
        found = committed
    return found


@dataclass
class Deletes:
    """A delete-latency run: the tombstones, the sandbox's DELETE answers, the commits."""

    produce_s: float
    drained_s: float | None
    backlog_end: dict[int, int]
    sent: dict[str, tuple[float, float]]  # uid -> (monotonic, wall) just before its produce
    stored: list[Produced]
    answered: dict[str, float]  # uid -> monotonic of its DELETE's 200
    samples: list[tuple[float, dict[int, int]]]
    started_wall: float  # the worker's start, wall clock
    clock_offset: float  # wall - monotonic in this process
    stats: dict[str, Any]
    jobs: list[dict[str, Any]]
    upserts_before: int
    left: list[str]  # deleted uids the sandbox still holds
    violations: int
    dead_letters: int
    peak_rss_mib: float | None
    exit_status: int | None


def run_deletes(bench: Bench, load: Workload, doomed: list[str]) -> Deletes:
    topics = bench.topics("delete-latency")
    offsets = CommittedOffsets(bench.broker.bootstrap, topics.group, topics.source, PARTITION_IDS)
    timeout = drain_timeout_s(len(load.values)) + USER_DELETE_MS / 1000
    tombstones_s = DELETE_FIRST_S + DELETES * DELETE_EVERY_S
    sampler = CommitSampler(offsets, 0.05, max_s=tombstones_s + timeout + 60)
    try:
        produce_s = produce_backlog(bench.broker.bootstrap, topics.source, load)
        backlog_end = bench.broker.end_offsets(topics.source)
        with sandbox(FAST_JOBS_MS, user_delete_ms=USER_DELETE_MS) as api:
            with httpx.Client(base_url=api.url, headers=api.auth_headers(), timeout=10) as http:
                for uid in doomed:
                    answer = http.post("/v2/users", json={"uid": uid, "display_name": "doomed"})
                    answer.raise_for_status()
            upserts_before = api.stats()["upserts"]
            env = bench.worker_env(topics, api, ON_DELETE="delete")
            with running_worker(env, bench.log_path("delete-latency")) as worker:
                clock_offset = time.time() - time.monotonic()
                sampler.start()
                due = [worker.started + DELETE_FIRST_S + k * DELETE_EVERY_S for k in range(DELETES)]
                timer = TombstoneTimer(bench.broker.bootstrap, topics.source, doomed, due)
                timer.start()
                try:
                    timer.join(tombstones_s + 60)
                    end = bench.broker.end_offsets(topics.source)
                    drained_s, _ = wait_drained(sampler.latest, end, worker, timeout)
                finally:
                    timer.stop()
                    sampler.stop()
                rss = worker.process.peak_rss_mib()
            answered: dict[str, float] = {}
            for request in api.requests():
                uid = _uid_of(request["path"])
                if request["method"] == "DELETE" and request["status"] == 200 and uid:
                    answered.setdefault(uid, request["answered_monotonic"])
            users, stats, jobs = api.users(), api.stats(), api.jobs()
            violations = len(api.violations())
        dead_letters = sum(bench.broker.end_offsets(topics.dlq).values())
    finally:
        offsets.close()
        bench.drop(topics)
    return Deletes(
        produce_s,
        drained_s,
        backlog_end,
        timer.sent,
        timer.stored,
        answered,
        sampler.samples,
        worker.started + clock_offset,
        clock_offset,
        stats,
        jobs,
        upserts_before,
        [uid for uid in doomed if uid in users],
        violations,
        dead_letters,
        rss,
        worker.exit_status,
    )


def delete_latency(bench: Bench) -> Row:
    load = bench.workload(1_000_000, 50_000)
    uids = sorted({key.decode() for key in load.keys})
    doomed = uids[:: max(1, len(uids) // DELETES)][:DELETES]
    run = run_deletes(bench, load, doomed)
    events = len(load.values)
    row = Row("delete-latency", events, load.uids, seconds=run.drained_s)
    latencies = sorted(run.answered[u] - run.sent[u][0] for u in run.answered if u in run.sent)
    row.p50_s, row.p99_s = percentile(latencies, 0.50), percentile(latencies, 0.99)
    commits = ack_latencies(run.stored, run.samples)
    backlog_done = next(
        (at for at, committed in run.samples if caught_up(committed, run.backlog_end)), None
    )
    if backlog_done is not None:
        row.events_per_s = events / (backlog_done - run.started_wall)
    row.upserts_per_uid = (run.stats["upserts"] - run.upserts_before) / load.uids
    row.jobs = run.stats["jobs"]["total"]
    row.peak_rss_mib = run.peak_rss_mib
    progress = []
    moments = [
        ("the last tombstone went", max((m for m, _ in run.sent.values()), default=None)),
        ("the last delete was answered", max(run.answered.values(), default=None)),
    ]
    for what, mono in moments:
        if mono is None:
            continue
        committed = _backlog_share(
            _sample_at(run.samples, mono + run.clock_offset), run.backlog_end
        )
        imported = sum(
            j["request_count"]
            for j in run.jobs
            if j["finished_monotonic"] is not None and j["finished_monotonic"] <= mono
        )
        progress.append(
            f"when {what} ({mono + run.clock_offset - run.started_wall:.1f} s): "
            f"{committed:.0%} of the backlog committed, {imported / load.uids:.0%} of its "
            "users imported (finished jobs)"
        )
    first_commit = next((at for at, c in run.samples if any(o > 0 for o in c.values())), None)
    if first_commit is not None:
        progress.append(f"the group's first commit {first_commit - run.started_wall:.1f} s")
    in_order = sorted(run.sent, key=lambda u: run.sent[u][0])
    each = ", ".join(
        f"{run.answered[u] - run.sent[u][0]:.1f}" if u in run.answered else "-" for u in in_order
    )
    row.notes += [
        f"p50 / p99 ack = tombstone produce -> the sandbox's 200 to its DELETE, {DELETES} "
        f"tombstones every {DELETE_EVERY_S} s from {DELETE_FIRST_S} s after the worker started "
        f"(max {percentile(latencies, 1.0) or 0:.2f} s)",
        "produce -> commit past the tombstone (after the 404, user_delete_ms="
        f"{USER_DELETE_MS}): p50 {percentile(commits, 0.5) or 0:.2f} s, "
        f"p99 {percentile(commits, 0.99) or 0:.2f} s, max {percentile(commits, 1.0) or 0:.2f} s",
        "; ".join(progress) + " after the worker started",
        f"per delete in produce order (s): {each}",
        "events/s: the backlog alone, worker start -> its offsets committed"
        + ("" if backlog_done is None else f" ({backlog_done - run.started_wall:.1f} s)"),
        f"the {DELETES} users pre-created with POST /v2/users, all in the backlog; "
        "upserts/uid leaves those 20 creates out (a deleted user's upserts still pending "
        "when its tombstone is read go with the delete, never sent)",
        f"produced in {run.produce_s:.1f} s (not timed)",
    ]
    if run.drained_s is None:
        row.fail("NOT DRAINED: the group never committed past every tombstone")
    if len(latencies) < DELETES:
        row.fail(f"only {len(latencies)} of {DELETES} deletes answered 200")
    if len(commits) < len(run.stored) or len(run.stored) < DELETES:
        row.fail(f"{len(commits)} of {DELETES} tombstones seen committed")
    if run.left:
        row.fail(f"{len(run.left)} deleted users still in the sandbox, e.g. {run.left[0]}")
    if run.violations:
        row.fail(f"{run.violations} upserts of a uid under deletion")
    if run.dead_letters:
        row.fail(f"{run.dead_letters:,} records dead-lettered")
    if run.exit_status != 0:
        row.fail(f"worker exit status after SIGTERM: {run.exit_status}")
    return row


# -- group: four replicas share an org's FullStory limits ---------------------------------


@dataclass
class GroupDrain:
    """A group run: the backlog produced while the replicas were stopped, then drained."""

    formed: bool  # the four replicas joined, each owning partitions, before the backlog
    produce_s: float
    drained_s: float | None  # SIGCONT -> every partition committed at its log end
    committed: dict[int, int] | None
    end: dict[int, int]
    stats: dict[str, Any]
    jobs: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    samples: list[tuple[float, int, int]]  # (monotonic, jobs in progress, operations)
    resumed: float  # monotonic of the SIGCONT
    users: int  # users the sandbox holds
    peak_rss_mib: list[float | None]
    exit_status: list[int | None]
    dead_letters: int


def run_group(bench: Bench, name: str, load: Workload, org: dict[str, str]) -> GroupDrain:
    """`GROUP_REPLICAS` workers (one group, `org` their budget settings) against a sandbox
    whose org allows `ORG_JOBS` jobs in progress and `ORG_OPERATIONS` operations in flight.
    Once all of them own partitions they are stopped (SIGSTOP), the backlog is produced, and
    they are continued (SIGCONT) together: each catches up on its share of it, as
    tests/integration/test_org_budget.py does."""
    topics = bench.topics(name, GROUP_PARTITIONS)
    ids = list(range(GROUP_PARTITIONS))
    offsets = CommittedOffsets(bench.broker.bootstrap, topics.group, topics.source, ids)
    timeout = drain_timeout_s(len(load.values))
    api = sandbox(
        FAST_JOBS_MS,
        max_in_progress_jobs=ORG_JOBS,
        max_in_flight_requests=ORG_OPERATIONS,
        request_log_limit=5_000_000,
    )
    sampler = StatsSampler(api.stats, 0.05, max_s=timeout + 120)
    produce_s, drained_s, committed, end, resumed = 0.0, None, None, {}, 0.0
    try:
        with api, ExitStack() as stack:
            env = bench.worker_env(topics, api, **org)
            workers = [
                stack.enter_context(running_worker(env, bench.logs / f"worker-{name}-{i}.log"))
                for i in range(GROUP_REPLICAS)
            ]
            admin = bench.broker.admin()
            formed = wait_for_assignment(
                admin, topics.group, topics.source, ids, 90, members=GROUP_REPLICAS
            )
            if formed:
                for worker in workers:
                    worker.process.proc.send_signal(signal.SIGSTOP)
                sampler.start()
                try:
                    produce_s = produce_backlog(bench.broker.bootstrap, topics.source, load)
                finally:
                    for worker in workers:
                        worker.process.proc.send_signal(signal.SIGCONT)
                    resumed = time.monotonic()
                end = bench.broker.end_offsets(topics.source)
                try:
                    drained_s, committed = wait_caught_up(
                        offsets.read,
                        end,
                        resumed,
                        lambda: all(w.process.proc.poll() is None for w in workers),
                        timeout,
                    )
                finally:
                    sampler.stop()
            rss = [worker.process.peak_rss_mib() for worker in workers]
            # All at once (one by one, each leave would move partitions to the others), and
            # waited for here: running_worker signals a worker still running again, and a
            # second SIGTERM landing in the interpreter's teardown (its handlers restored)
            # ends the process with -15 after a clean shutdown.
            for worker in workers:
                if worker.process.proc.poll() is None:
                    worker.process.proc.send_signal(signal.SIGTERM)
            for worker in workers:  # one still running then is killed by running_worker
                with suppress(subprocess.TimeoutExpired):
                    worker.process.proc.wait(90)
        stats, jobs, requests = api.stats(), api.jobs(), api.requests()
        users = len(api.users())
        dead_letters = sum(bench.broker.end_offsets(topics.dlq).values())
    finally:
        offsets.close()
        bench.drop(topics)
    return GroupDrain(
        formed,
        produce_s,
        drained_s,
        committed,
        end,
        stats,
        jobs,
        requests,
        sampler.samples,
        resumed,
        users,
        rss,
        [worker.exit_status for worker in workers],
        dead_letters,
    )


def group_row(name: str, load: Workload, run: GroupDrain, org: dict[str, str]) -> Row:
    events = len(load.values)
    row = Row(name, events, load.uids, seconds=run.drained_s)
    if not run.formed:
        row.fail(f"NOT RUN: {GROUP_REPLICAS} replicas did not all own partitions within 90 s")
        return row
    if run.drained_s is not None:
        row.events_per_s = events / run.drained_s
    row.upserts_per_uid = run.stats["upserts"] / run.users if run.users else None
    row.jobs = run.stats["jobs"]["total"]
    rss = [r for r in run.peak_rss_mib if r is not None]
    row.peak_rss_mib = sum(rss) if rss else None
    finished = [j for j in run.jobs if j["finished_monotonic"] is not None]
    durations = [j["finished_monotonic"] - j["created_monotonic"] for j in finished]
    mean_s = sum(durations) / len(durations) if durations else 0.0
    ideal_s = len(run.jobs) / ORG_JOBS * mean_s
    sent = sum(j["request_count"] for j in run.jobs)
    operations_s = sent / ORG_OPERATIONS * mean_s
    limit_429s = [
        r
        for r in run.requests
        if r["status"] == 429 and r["endpoint"] == "batch_create" and r["fault"] is None
    ]
    draining = [s for s in run.samples if s[0] >= run.resumed]
    peak_jobs = max((s[1] for s in run.samples), default=0)
    peak_ops = max((s[2] for s in run.samples), default=0)
    mean_jobs = sum(s[1] for s in draining) / len(draining) if draining else 0.0
    over = [s for s in run.samples if s[1] > ORG_JOBS or s[2] > ORG_OPERATIONS]
    ratio = f" = {run.drained_s / ideal_s:.2f}x the ideal" if run.drained_s and ideal_s else ""
    first_429 = min((r["time_monotonic"] for r in limit_429s), default=None)
    first_job = min((j["created_monotonic"] for j in run.jobs), default=None)
    # What the budget gives each partition (the worker's own arithmetic, budget.slots, from
    # the settings: not read from the worker); a replica's share is its partitions' sum.
    owned = GROUP_PARTITIONS // GROUP_REPLICAS
    jobs_slots = sorted(
        {
            slots(int(org["FULLSTORY_ORG_MAX_JOBS"]), i, GROUP_PARTITIONS)
            for i in range(GROUP_PARTITIONS)
        }
    )
    operations_slots = sorted(
        {
            slots(int(org["FULLSTORY_ORG_MAX_OPERATIONS"]), i, GROUP_PARTITIONS)
            for i in range(GROUP_PARTITIONS)
        }
    )
    row.notes += [
        f"drain (SIGCONT -> every partition committed at its log end){ratio} "
        f"{ideal_s:.1f} s = {len(run.jobs)} jobs / {ORG_JOBS} x {mean_s:.2f} s mean job "
        f"(created -> finished, the sandbox's job log; configured {FAST_JOBS_MS[0] / 1000:g}-"
        f"{FAST_JOBS_MS[1] / 1000:g} s)"
        + (f"; the first job {first_job - run.resumed:.1f} s after SIGCONT" if first_job else ""),
        f"{len(limit_429s)} x 429 from the org's limits (batch_create, no injected fault)"
        + (f", the first {first_429 - run.resumed:.1f} s after SIGCONT" if first_429 else ""),
        f"peak {peak_jobs} jobs in progress / {peak_ops:,} operations in flight "
        f"(limits {ORG_JOBS} / {ORG_OPERATIONS:,}; {len(run.samples)} samples every 50 ms); "
        f"{mean_jobs:.1f} jobs in progress on average while draining",
        f"operations bound: {sent:,} users in jobs / {ORG_OPERATIONS:,} x mean job = "
        f"{operations_s:.1f} s",
        f"{GROUP_REPLICAS} replicas x {owned} of {GROUP_PARTITIONS} partitions, "
        + ", ".join(f"{k}={v}" for k, v in org.items())
        + " (BATCH_MAX_USERS, MAX_JOBS_IN_FLIGHT: defaults); a partition carries "
        + " or ".join(map(str, jobs_slots))
        + " job(s) and "
        + " or ".join(f"{n:,}" for n in operations_slots)
        + " operations of the budget, a replica the sum of its own (at least one job, at most "
        f"MAX_JOBS_IN_FLIGHT={MAX_JOBS_IN_FLIGHT}); SIGSTOPped while the "
        f"backlog was produced ({run.produce_s:.1f} s), SIGCONT together",
        f"{run.users:,} users (distinct uids of the backlog); peak RSS: the sum of the "
        "replicas' (" + ", ".join(f"{r:.0f}" for r in rss) + " MiB)",
    ]
    if over:
        worst = max(over, key=lambda s: (s[1], s[2]))
        row.fail(
            f"OVER THE ORG'S LIMITS in {len(over)} samples, the worst {worst[1]} jobs / "
            f"{worst[2]:,} operations at {worst[0] - run.resumed:.2f} s after SIGCONT"
        )
    if len(run.requests) < run.stats["requests"]["total"]:
        row.fail("the sandbox's request log was cut: 429s undercounted")
    distinct = len(set(load.keys))
    if run.users != distinct:
        row.fail(f"the sandbox holds {run.users:,} users, the backlog has {distinct:,} uids")
    if run.drained_s is None:
        behind = sum(run.end.values()) - sum(max(0, o) for o in (run.committed or {}).values())
        row.fail(f"NOT DRAINED: {behind:,} records uncommitted when it gave up")
    if any(status != 0 for status in run.exit_status):
        row.fail(f"worker exit statuses after SIGTERM: {run.exit_status}")
    if run.dead_letters:
        row.fail(f"{run.dead_letters:,} records dead-lettered")
    return row


def group(bench: Bench) -> list[Row]:
    """The shared budget (FULLSTORY_ORG_MAX_JOBS / _OPERATIONS = the org's limits), then the
    worker's defaults for both (no budget that fits the org) for comparison."""
    load = bench.workload(400_000, 173_000)
    budget = {
        "FULLSTORY_ORG_MAX_JOBS": str(ORG_JOBS),
        "FULLSTORY_ORG_MAX_OPERATIONS": str(ORG_OPERATIONS),
    }
    rows = []
    for name, org in (("group", budget), ("group-unbudgeted", UNBUDGETED)):
        before = os.getloadavg()[0]
        row = group_row(name, load, run_group(bench, name, load, org), org)
        row.load = f"{before:.2f} -> {os.getloadavg()[0]:.2f}"
        rows.append(row)
    return rows


# -- crashloop: a replica SIGKILLed and restarted during a live stream ---------------------

CRASH_REPLICAS = 2
CRASH_KILLS_S = (8.0, 18.0)  # into the 30 s stream; scaled with it
CRASH_RESTART_S = 0.5  # a kubelet restarting the pod: back within a second
CRASH_BATCH_WAIT_MS = 500
MOVES = ("partitions_assigned", "partitions_revoked", "partitions_lost")


def logged_moves(log_path: Path) -> list[tuple[float, str, set[int]]]:
    """(wall time, event, partitions) of each assign/revoke/lost line in a worker's log."""
    moves = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") in MOVES:
            at = datetime.fromisoformat(entry["timestamp"]).timestamp()
            held = {int(partition) for _topic, partition in entry["partitions"]}
            moves.append((at, entry["event"], held))
    return moves


def owned_at(log_path: Path, until: float) -> set[int]:
    """The partitions a worker's log says it held at wall time `until`."""
    owned: set[int] = set()
    for at, event, moved in logged_moves(log_path):
        if at <= until:
            owned = owned | moved if event == "partitions_assigned" else owned - moved
    return owned


@dataclass
class Kill:
    """One SIGKILL of replica 0 and its restart under the same id (or none, when dynamic)."""

    at_s: float  # into the stream
    killed_wall: float
    held: set[int]  # what the killed process's log said it held when it died
    log: Path  # the killed process's
    restarted_wall: float | None = None
    back_s: float | None = None  # kill -> the last of `held` logged assigned again
    whole_s: float | None = None  # kill -> every partition held by a live process again
    restarted_first_s: float | None = None  # kill -> the restarted worker's first assignment
    restarted_got: set[int] = field(default_factory=set)


@dataclass
class CrashRun:
    formed: bool
    stream: Stream | None
    kills: list[Kill]
    jobs: list[dict[str, Any]]
    users: set[str]
    dead_letters: int
    exit_status: list[int | None]


class Crasher(threading.Thread):
    """SIGKILLs replica 0 at `at_s` (seconds after `started`, monotonic) and starts it again
    `CRASH_RESTART_S` later with `start()`; the running replica is `replicas[0]`."""

    def __init__(
        self,
        replicas: list[WorkerRun],
        start: Callable[[int], WorkerRun],
        started: float,
        at_s: list[float],
    ) -> None:
        super().__init__(name="crasher", daemon=True)
        self.kills: list[Kill] = []
        self.logs: list[Path] = []  # every incarnation's log, restarted ones included
        self._replicas = replicas
        self._start = start
        self._stream_started = started
        self._at_s = at_s
        self._stopping = threading.Event()

    def run(self) -> None:
        for n, at_s in enumerate(self._at_s, 1):
            if self._stopping.wait(max(0.0, self._stream_started + at_s - time.monotonic())):
                return
            victim = self._replicas[0]
            victim.process.kill()
            killed = time.time()
            victim.exit_status = victim.process.proc.returncode
            log = victim.process.log_path
            kill = Kill(at_s, killed, owned_at(log, killed), log)
            self.kills.append(kill)
            if self._stopping.wait(CRASH_RESTART_S):
                return
            self._replicas[0] = self._start(n)
            kill.restarted_wall = time.time()

    def stop(self) -> None:
        self._stopping.set()
        self.join(30)


def partitions_back(
    kill: Kill, logs: list[Path], died: dict[Path, float], restarted: Path | None
) -> None:
    """Fills in when the killed process's partitions were all assigned again (any log), when
    every partition was held by a live process again (a killed process holds nothing from
    its kill, `died`: log -> kill time) and when the restarted worker first logged an
    assignment."""
    moments = sorted(
        at
        for log in logs
        for at, event, _moved in logged_moves(log)
        if at >= kill.killed_wall and event == "partitions_assigned"
    )
    for at in moments:
        held = set().union(*(owned_at(log, at) for log in logs if died.get(log, float("inf")) > at))
        if held >= set(PARTITION_IDS):
            kill.whole_s = at - kill.killed_wall
            break
    firsts: dict[int, float] = {}
    for log in logs:
        for at, event, moved in logged_moves(log):
            if at >= kill.killed_wall and event == "partitions_assigned":
                for partition in moved & kill.held:
                    firsts[partition] = min(firsts.get(partition, at), at)
    if kill.held and set(firsts) == kill.held:
        kill.back_s = max(firsts.values()) - kill.killed_wall
    if restarted is not None:
        for at, event, moved in logged_moves(restarted):
            if at >= kill.killed_wall and event == "partitions_assigned" and moved:
                kill.restarted_first_s, kill.restarted_got = at - kill.killed_wall, moved
                break


def run_crashloop(bench: Bench, name: str, load: Workload, static: bool) -> CrashRun:
    """Two replicas (static members when `static`) take a paced stream; replica 0 is
    SIGKILLed at `CRASH_KILLS_S` (scaled to the stream) and started again under its id."""
    topics = bench.topics(name)
    offsets = CommittedOffsets(bench.broker.bootstrap, topics.group, topics.source, PARTITION_IDS)
    timeout = drain_timeout_s(len(load.values))
    seconds = len(load.values) / LIVE_RATE
    at_s = [k * seconds / LIVE_SECONDS for k in CRASH_KILLS_S]
    sampler = CommitSampler(offsets, 0.05, max_s=2 * seconds + timeout + 60)
    formed, stream, crasher = False, None, None
    incarnations: list[WorkerRun] = []
    try:
        with sandbox(FAST_JOBS_MS) as api, ExitStack() as stack:
            env = bench.worker_env(topics, api, BATCH_MAX_WAIT_MS=str(CRASH_BATCH_WAIT_MS))

            def start(replica: int, incarnation: int = 0) -> WorkerRun:
                ids = {"KAFKA_CFG_GROUP_INSTANCE_ID": f"replica-{replica}"} if static else {}
                log = bench.logs / f"worker-{name}-{replica}-{incarnation}.log"
                run = stack.enter_context(running_worker({**env, **ids}, log))
                incarnations.append(run)
                return run

            replicas = [start(i) for i in range(CRASH_REPLICAS)]
            admin = bench.broker.admin()
            formed = wait_for_assignment(
                admin, topics.group, topics.source, PARTITION_IDS, 60, members=CRASH_REPLICAS
            )
            if formed:
                sampler.start()
                crasher = Crasher(replicas, lambda n: start(0, n), time.monotonic(), at_s)
                crasher.start()
                try:
                    stored, produce_s = produce_paced(
                        bench.broker.bootstrap, topics.source, load, LIVE_RATE
                    )
                    crasher.join(CRASH_RESTART_S + 30)  # the last restart is in
                    end = bench.broker.end_offsets(topics.source)
                    drained_s, _ = wait_caught_up(
                        sampler.latest,
                        end,
                        time.monotonic(),
                        lambda: all(r.process.proc.poll() is None for r in replicas),
                        timeout,
                    )
                finally:
                    crasher.stop()
                    sampler.stop()
                rss = sum(r.process.peak_rss_mib() or 0.0 for r in replicas)
                stream = Stream(
                    stored, produce_s, sampler.samples, drained_s is not None, {}, rss, None
                )
            # All at once, and waited for here (see run_group): a static member does not
            # leave on SIGTERM, a dynamic one's leave would move partitions to the other.
            alive = [r for r in incarnations if r.process.proc.poll() is None]
            for run in alive:
                run.process.proc.send_signal(signal.SIGTERM)
            for run in alive:
                with suppress(subprocess.TimeoutExpired):
                    run.process.proc.wait(90)
        if stream is not None:
            stream.stats = api.stats()
        jobs, users = api.jobs(), set(api.users())
        dead_letters = sum(bench.broker.end_offsets(topics.dlq).values())
    finally:
        offsets.close()
        bench.drop(topics)
    kills = crasher.kills if crasher is not None else []
    logs = [r.process.log_path for r in incarnations]
    died = {kill.log: kill.killed_wall for kill in kills}
    for n, kill in enumerate(kills, 1):
        restarted = bench.logs / f"worker-{name}-0-{n}.log"
        partitions_back(kill, logs, died, restarted if restarted.exists() else None)
    survivors = [r for r in incarnations if r.process.proc.returncode != -signal.SIGKILL]
    return CrashRun(
        formed, stream, kills, jobs, users, dead_letters, [r.exit_status for r in survivors]
    )


def crashloop_row(name: str, load: Workload, run: CrashRun, static: bool) -> Row:
    row = Row(name, len(load.values), LIVE_UIDS)
    if not run.formed or run.stream is None:
        row.fail(f"NOT RUN: {CRASH_REPLICAS} replicas did not both own partitions within 60 s")
        return row
    stream = run.stream
    latencies = ack_latencies(stream.stored, stream.samples)
    row.seconds = stream.produce_s
    row.events_per_s = len(stream.stored) / stream.produce_s
    row.p50_s, row.p99_s = percentile(latencies, 0.50), percentile(latencies, 0.99)
    worst = percentile(latencies, 1.0)
    users = stream.stats["users"]
    row.upserts_per_uid = stream.stats["upserts"] / users if users else None
    row.jobs = stream.stats["jobs"]["total"]
    row.peak_rss_mib = stream.peak_rss_mib
    finished = [j for j in run.jobs if j["finished_monotonic"] is not None]
    durations = [j["finished_monotonic"] - j["created_monotonic"] for j in finished]
    mean_job_s = sum(durations) / len(durations) if durations else 0.0
    ideal_s = CRASH_BATCH_WAIT_MS / 1000 + mean_job_s
    kills = []
    for kill in run.kills:
        if kill.held:
            back = "never" if kill.back_s is None else f"{kill.back_s:.2f} s"
            back = f"held {sorted(kill.held)}, back {back}"
        else:
            back = "held nothing yet"
        whole = "never" if kill.whole_s is None else f"{kill.whole_s:.2f} s"
        first = (
            "none before it was killed or the run ended"
            if kill.restarted_first_s is None
            else f"{sorted(kill.restarted_got)} at {kill.restarted_first_s:.2f} s"
        )
        kills.append(
            f"kill at {kill.at_s:.1f} s: {back}; all {PARTITIONS} partitions held by a live "
            f"replica again {whole}; the restarted worker's first assignment {first}"
        )
    members = (
        "static members (KAFKA_CFG_GROUP_INSTANCE_ID replica-0 / replica-1)"
        if static
        else "dynamic members (no instance id)"
    )
    row.notes += [
        f"freshness = produce (CreateTime) -> the commit past it (sampled every 50 ms): "
        f"max {worst or 0:.2f} s; p99 = {(row.p99_s or 0) / ideal_s:.1f}x the ideal "
        f"{ideal_s:.2f} s = BATCH_MAX_WAIT_MS {CRASH_BATCH_WAIT_MS} ms + {mean_job_s:.2f} s "
        f"mean job (created -> finished, {len(durations)} jobs, the sandbox's job log)",
        f"{CRASH_REPLICAS} replicas, {members}, 15 s session (the default); replica 0 "
        f"SIGKILLed {len(run.kills)}x, restarted {CRASH_RESTART_S} s after each kill "
        + ("under the same name" if static else "as a new member")
        + "; back = kill -> the last of the killed process's partitions logged assigned "
        "again (any replica's log)",
        *kills,
        f"{LIVE_RATE:,}/s for {len(load.values) / LIVE_RATE:.0f} s, "
        f"BATCH_MAX_WAIT_MS={CRASH_BATCH_WAIT_MS}; worker time = producing; "
        f"{len(stream.samples)} commit samples; peak RSS: the sum of the last two replicas'",
    ]
    if len(run.kills) < len(CRASH_KILLS_S) or any(k.restarted_wall is None for k in run.kills):
        row.fail(f"only {len(run.kills)} of {len(CRASH_KILLS_S)} kills (and restarts) happened")
    if any(k.held and k.back_s is None for k in run.kills):
        row.fail("a killed replica's partitions were never logged assigned again")
    if not stream.drained or len(latencies) < len(stream.stored):
        unseen = len(stream.stored) - len(latencies)
        row.fail(f"NOT DRAINED: {unseen:,} records never seen committed")
    if len(stream.stored) < len(load.values):
        row.fail(f"only {len(stream.stored):,} of {len(load.values):,} records stored")
    distinct = {key.decode() for key in load.keys}
    if run.users != distinct:
        row.fail(
            f"the sandbox holds {len(run.users):,} users, the stream has {len(distinct):,} "
            f"uids ({len(distinct - run.users):,} missing)"
        )
    if run.dead_letters:
        row.fail(f"{run.dead_letters:,} records dead-lettered")
    if any(status != 0 for status in run.exit_status):
        row.fail(f"worker exit statuses after SIGTERM: {run.exit_status}")
    return row


def crashloop(bench: Bench) -> list[Row]:
    """Static members first (the crashloop row), then dynamic ones (crashloop-dynamic)."""
    seconds = LIVE_SECONDS if bench.scale >= 1 else max(10.0, LIVE_SECONDS * bench.scale)
    load = make_workload(int(LIVE_RATE * seconds), LIVE_UIDS, seed=SEED)
    rows = []
    for name, static in (("crashloop", True), ("crashloop-dynamic", False)):
        before = os.getloadavg()[0]
        row = crashloop_row(name, load, run_crashloop(bench, name, load, static), static)
        row.load = f"{before:.2f} -> {os.getloadavg()[0]:.2f}"
        rows.append(row)
    return rows


# -- readback: users FullStory refuses, their records read back for their dead letters ----

READBACK_EVENTS = 6_000
READBACK_UIDS = 2_000
REFUSED_UIDS = r"^user-\d{3}[02468]0$"  # user-NNNNN with NNNNN % 20 == 0: 5% of them
READBACK_SAMPLE_S = 0.02


@dataclass
class Readback:
    """A readback run: when the job ended, when its errors were read, when Kafka confirmed
    the first and the last dead letter (this process's monotonic clock: the sandbox's too)."""

    produce_s: float
    drained_s: float | None
    refused_users: int
    expected_letters: int
    letters: int
    jobs: list[dict[str, Any]]
    errors_read: float | None
    first_letter: float | None
    last_letter: float | None
    exit_status: int | None


def run_readback(bench: Bench, load: Workload) -> Readback:
    topics = bench.topics("readback")
    offsets = CommittedOffsets(bench.broker.bootstrap, topics.group, topics.source, PARTITION_IDS)
    refused = re.compile(REFUSED_UIDS)
    uids = {key.decode() for key in load.keys}
    refused_users = sum(1 for uid in uids if refused.search(uid))
    expected = sum(1 for key in load.keys if refused.search(key.decode()))
    timeout = drain_timeout_s(len(load.values)) + 60
    letters = WatermarkSampler(bench.broker.bootstrap, topics.dlq, READBACK_SAMPLE_S, timeout)
    try:
        produce_s = produce_backlog(bench.broker.bootstrap, topics.source, load)
        end = bench.broker.end_offsets(topics.source)
        with sandbox(FAST_JOBS_MS) as api:
            api.set_faults(reject_uids=REFUSED_UIDS)
            env = bench.worker_env(topics, api, BATCH_MAX_WAIT_MS="2000")
            letters.start()
            try:
                with running_worker(env, bench.log_path("readback")) as worker:
                    drained_s, _ = wait_drained(offsets.read, end, worker, timeout)
            finally:
                letters.stop()
            jobs, requests = api.jobs(), api.requests()
        dead_letters = sum(bench.broker.end_offsets(topics.dlq).values())
    finally:
        offsets.close()
        bench.drop(topics)
    errors_read = max(
        (
            r["answered_monotonic"]
            for r in requests
            if r["path"].endswith("/errors") and r["status"] == 200
        ),
        default=None,
    )
    return Readback(
        produce_s,
        drained_s,
        refused_users,
        expected,
        dead_letters,
        jobs,
        errors_read,
        letters.first_at(1),
        letters.first_at(expected),
        worker.exit_status,
    )


def readback(bench: Bench) -> Row:
    load = bench.workload(READBACK_EVENTS, READBACK_UIDS)
    run = run_readback(bench, load)
    users = len(set(load.keys))
    row = Row("readback", len(load.values), users)
    row.jobs = len(run.jobs)
    ended = [j["finished_monotonic"] for j in run.jobs if j["finished_monotonic"] is not None]
    job_end = max(ended, default=None)
    if job_end is not None and run.last_letter is not None:
        row.seconds = run.last_letter - job_end

    def after_end(moment: float | None) -> str:
        return "-" if moment is None or job_end is None else f"{moment - job_end:+.2f} s"

    row.notes.append(
        f"worker time = the job's end -> the last dead letter confirmed (the DLQ's high "
        f"watermark, sampled every {READBACK_SAMPLE_S * 1000:.0f} ms); {run.refused_users:,} of "
        f"{users:,} users refused by the sandbox (reject_uids {REFUSED_UIDS}), "
        f"{run.expected_letters:,} records to dead-letter; after the job's end: its errors "
        f"last read {after_end(run.errors_read)}, first letter {after_end(run.first_letter)}, "
        f"last {after_end(run.last_letter)}; BATCH_MAX_WAIT_MS=2000, jobs 0.2-0.5 s"
        + (f"; drained {run.drained_s:.1f} s after the worker started" if run.drained_s else "")
        + f"; produced in {run.produce_s:.1f} s (not timed)"
    )
    if len(run.jobs) != 1:
        row.notes.append(f"{len(run.jobs)} jobs, not one: the time is from the last one's end")
    if run.drained_s is None:
        row.fail("NOT DRAINED: the stream was not committed at its log end in time")
    if run.letters != run.expected_letters:
        row.fail(f"{run.letters:,} dead letters, {run.expected_letters:,} expected")
    if run.exit_status != 0:
        row.fail(f"worker exit status after SIGTERM: {run.exit_status}")
    return row


SCENARIOS: dict[str, Callable[[Bench], Row | list[Row]]] = {
    "backlog": backlog,
    "outage": outage,
    "replay": replay,
    "live": live,
    "debezium": debezium,
    "delete-latency": delete_latency,
    "group": group,
    "crashloop": crashloop,
    "readback": readback,
}
# The rows in RESULTS.md, in order: a scenario may write more than one (its others follow it).
EXTRA_ROWS = {"group": ["group-unbudgeted"], "crashloop": ["crashloop-dynamic"]}
ROWS = [row for name in SCENARIOS for row in (name, *EXTRA_ROWS.get(name, []))]


# -- main ---------------------------------------------------------------------------------


def broker_address() -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kafka.sh"), "start"],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.stdout.strip().splitlines()[-1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--backlog-runs", type=int, default=3, help="backlog runs, the median reported (3)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = {
        "command": shlex.join(["python", "scripts/bench.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": source_revision(),
        "scale": args.scale,
        "load": load_average(),
        "machine": machine(),
        "versions": versions(),
    }
    logs = Path(tempfile.mkdtemp(prefix="fsus-bench-"))
    bench = Bench(Broker(broker_address()), args.scale, logs, max(1, args.backlog_runs))
    print(f"==> broker {bench.broker.bootstrap}; worker logs in {bench.logs}; load {run['load']}")
    complete = True
    for name in args.scenario or list(SCENARIOS):
        before = os.getloadavg()[0]
        print(f"==> {name}")
        found = SCENARIOS[name](bench)
        for row in found if isinstance(found, list) else [found]:
            row.load = row.load or f"{before:.2f} -> {os.getloadavg()[0]:.2f}"
            row.run = run
            save(args.out, row, ROWS)
            complete &= row.complete
            print("    " + json.dumps({k: v for k, v in asdict(row).items() if k != "run"}))
    print(f"==> results in {args.out}")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
