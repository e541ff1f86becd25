"""Prometheus metrics, served on ``/metrics`` next to the probes.

Names are prefixed ``fsus_``. Each worker owns a ``CollectorRegistry`` (no global state),
so tests and several pipelines in one process do not share counters.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from worker.errors import (
    BadAnswer,
    RateLimited,
    RejectedRequest,
    RetriableError,
    ServerError,
    Unreachable,
)
from worker.runtime.health_server import Refused

# The readers of fsus_avro_schemas{reader}: worker.events.readers.Reader's values (a test holds
# them equal; runtime imports nothing of events).
AVRO_READERS = ("compiled", "fastavro")
# The reasons of fsus_records_skipped{reason}: worker.events.change.Skip's values (a test holds
# them equal).
SKIP_REASONS = (
    "unchanged", "delete_ignored", "key_change", "tombstone", "truncate", "message"
)  # fmt: skip
DELETE_RESULTS = ("deleted", "absent", "rejected")
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_USER_BUCKETS = (1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records_consumed = Counter(
            "fsus_records_consumed", "Records read from the source topics.", registry=r
        )
        self.records_acknowledged = Counter(
            "fsus_records_acknowledged",
            "Records acknowledged (imported by FullStory or written to the DLQ).",
            ["outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "fsus_dead_letters",
            "Records written to the dead-letter topic.",
            ["code"],
            registry=r,
        )
        self.records_skipped = Counter(
            "fsus_records_skipped",
            "Records acknowledged without asking anything of FullStory, by reason: updates of"
            " columns the mapping does not read, deletes with ON_DELETE=ignore, the delete half"
            " of a primary-key change, Debezium tombstones, truncates and messages.",
            ["reason"],
            registry=r,
        )
        for reason in SKIP_REASONS:
            self.records_skipped.labels(reason)
        self.deletes = Counter(
            "fsus_user_deletes",
            "Users deleted in FullStory (ON_DELETE=delete), by result: deleted (200, then gone),"
            " absent (404: no such user), rejected (400: dead-lettered).",
            ["result"],
            registry=r,
        )
        for result in DELETE_RESULTS:
            self.deletes.labels(result)
        self.deletes_waiting = Gauge(
            "fsus_deletes_pending", "Deletes waiting to be sent.", registry=r
        )
        self.budget_share = Gauge(
            "fsus_org_budget_share",
            "This replica's share of FULLSTORY_ORG_MAX_JOBS / FULLSTORY_ORG_MAX_OPERATIONS"
            " (its share of the partitions), by kind: jobs, operations.",
            ["kind"],
            registry=r,
        )
        self.jobs_limit = Gauge(
            "fsus_import_jobs_limit",
            "Import jobs this replica may have in flight now: its share, halved on a 429 and"
            " grown back while FullStory accepts jobs.",
            registry=r,
        )
        self.import_jobs_in_flight = Gauge(
            "fsus_import_jobs_in_flight",
            "Import jobs in flight (against the share; delete batches are not jobs).",
            registry=r,
        )
        self.operations_in_flight = Gauge(
            "fsus_operations_in_flight",
            "Users in this replica's import jobs in flight (FullStory's operations).",
            registry=r,
        )
        self.jobs = Counter(
            "fsus_import_jobs",
            "FullStory import jobs that ended, by status.",
            ["status"],
            registry=r,
        )
        self.job_duration = Histogram(
            "fsus_import_job_duration_seconds",
            "From job creation to its terminal status.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.batch_users = Histogram(
            "fsus_batch_users", "Users per import job.", buckets=_USER_BUCKETS, registry=r
        )
        self.api_retries = Counter(
            "fsus_fullstory_retries",
            "FullStory calls retried, by call and reason.",
            ["call", "reason"],
            registry=r,
        )
        self.commits = Counter(
            "fsus_offset_commits", "Offset commits, by result.", ["result"], registry=r
        )
        self.last_commit = Gauge(
            "fsus_last_commit_timestamp_seconds",
            "Unix time of the last successful commit that moved an offset (records "
            "acknowledged); commits carrying only a read position or job list are not counted.",
            registry=r,
        )
        self.jobs_in_flight = Gauge(
            "fsus_jobs_in_flight", "Import jobs this replica has open.", registry=r
        )
        self.jobs_overdue = Gauge(
            "fsus_jobs_overdue",
            "Jobs still unfinished JOB_MAX_WAIT_S after the wait for them began; their records"
            " stay unacknowledged.",
            registry=r,
        )
        self.pending_users = Gauge(
            "fsus_pending_users",
            "Users whose merged changes wait for an import job (backpressure counts these).",
            registry=r,
        )
        self.partitions = Gauge(
            "fsus_partitions", "Partitions owned, by state.", ["state"], registry=r
        )

        self.kafka_errors = Counter(
            "fsus_kafka_errors",
            "Errors librdkafka reported (mostly failed connections), by client and code.",
            ["client", "code"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "fsus_consumer_lag",
            "Records between the consumer's position and the log end (librdkafka statistics).",
            ["topic", "partition"],
            registry=r,
        )
        self.read_position = Gauge(
            "fsus_read_position",
            "Per partition owned, 1 + the last offset read and merged (ahead of the committed"
            " offset while the jobs holding those records run).",
            ["topic", "partition"],
            registry=r,
        )
        self.topic_missing = Gauge(
            "fsus_topic_missing",
            "1 while a topic the worker reads (KAFKA_TOPICS) or writes (DLQ_TOPIC) does not"
            " exist, 0 once it was seen; looked up every 10 s.",
            ["topic"],
            registry=r,
        )
        self.avro_schemas = Gauge(
            "fsus_avro_schemas",
            "Avro schemas records are read with, by reader: the local schema and, with a"
            " registry, each writer schema id seen.",
            ["reader"],
            registry=r,
        )
        for reader in AVRO_READERS:
            self.avro_schemas.labels(reader).set(0)
        self.health_refused = Counter(
            "fsus_health_connections_refused",
            "Connections to the health server (probes, /metrics) ended without their answer,"
            " by reason: evicted (the oldest, cut to make room past the cap), full (closed at"
            " once, no room), timed_out, too_large (request line and headers), bad_request"
            " (answered 4xx/5xx by the server itself).",
            ["reason"],
            registry=r,
        )
        for refused in Refused:
            self.health_refused.labels(refused.value)
        # Schema id (None: the local schema) -> its reader; the decoder's thread only.
        self._avro_readers: dict[int | None, str] = {}

    def avro_reader(self, schema_id: int | None, reader: str) -> None:
        """A schema's bodies (``schema_id`` None: the local schema's) are read by ``reader``,
        one of ``AVRO_READERS``; a schema id told again is counted once, with its latest."""
        if reader not in AVRO_READERS:
            raise ValueError(f"unknown Avro reader {reader!r}")
        self._avro_readers[schema_id] = reader
        for each in AVRO_READERS:
            in_use = sum(read_by == each for read_by in self._avro_readers.values())
            self.avro_schemas.labels(each).set(in_use)

    def loop_state(
        self, *, jobs: int, pending: int, assigned: int, paused: int, fenced: int, deletes: int = 0
    ) -> None:
        """The poll loop's gauges, set once a turn."""
        self.jobs_in_flight.set(jobs)
        self.pending_users.set(pending)
        self.deletes_waiting.set(deletes)
        for state, count in (("assigned", assigned), ("paused", paused), ("fenced", fenced)):
            self.partitions.labels(state).set(count)

    def org_budget(
        self, share_jobs: int, share_operations: int, limit: int, jobs: int, operations: int
    ) -> None:
        """The org budget's gauges, set once a turn."""
        self.budget_share.labels("jobs").set(share_jobs)
        self.budget_share.labels("operations").set(share_operations)
        self.jobs_limit.set(limit)
        self.import_jobs_in_flight.set(jobs)
        self.operations_in_flight.set(operations)

    def health_connection_refused(self, reason: Refused) -> None:
        self.health_refused.labels(reason.value).inc()

    def forget_partition(self, topic: str, partition: int) -> None:
        """Stop reporting a partition this replica no longer owns."""
        for gauge in (self.consumer_lag, self.read_position):
            with contextlib.suppress(KeyError):  # never reported
                gauge.remove(topic, str(partition))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def retry_reason(error: RetriableError | RejectedRequest) -> str:
    """A low-cardinality label for why a FullStory call is retried: ``network``,
    ``rate_limited``, ``server_error``, ``bad_answer`` (one no documentation promises), or
    ``http_<status>`` for any other answer."""
    if isinstance(error, Unreachable):
        return "network"
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, ServerError):
        return "server_error"
    if isinstance(error, BadAnswer):
        return "bad_answer"
    return f"http_{error.status}"
