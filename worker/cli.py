"""``fullstory-user-sync run`` wires the real adapters and runs until SIGTERM/SIGINT;
``check`` tries the settings and every peer; ``preview`` shows the users ``run`` would send
for the records in the topics; ``replay`` moves the stopped group's offsets
back; ``status`` shows the group's lag and members (``--watch``: rate and ETA); ``dlq
inspect`` reads the dead letters.

Exit status: 0 after a clean drain, 2 for a bad configuration or arguments (one line on
stderr naming the variable), 1 for an unexpected failure, a refused replay or an
unreachable broker.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Sequence
from functools import partial
from types import FrameType

import structlog
from confluent_kafka.admin import AdminClient
from structlog.typing import FilteringBoundLogger

from worker.bounded_http import Proxies, environment_proxies, route
from worker.config.choices import OnDelete
from worker.config.redact import redact_url
from worker.config.settings import Settings, load_kafka_settings, load_settings
from worker.config.spec import run_help
from worker.errors import ConfigError, WorkerError
from worker.events.debezium import DebeziumDecoder
from worker.events.decode import Decoder
from worker.events.decoders import decoder_for
from worker.events.readers import ReaderChoice
from worker.events.registry import SchemaRegistry
from worker.fullstory.budget import OrgBudget
from worker.fullstory.client import FullStoryClient
from worker.fullstory.deleter import Deleter, check_may_delete
from worker.fullstory.importer import Importer
from worker.fullstory.jobs import JobWatch
from worker.kafka import topic_watch
from worker.kafka.clients import kafka_client, quiet_config
from worker.kafka.dlq import KafkaDeadLetters
from worker.kafka.reachability import KafkaReachability
from worker.kafka.readback import KafkaRecordReader
from worker.kafka.source import KafkaSource
from worker.kafka.topic_watch import TopicWatch
from worker.kafka.topics import confirm_missing, find_topics, missing_dlq_advice
from worker.loop.batch import Batcher
from worker.loop.pipeline import Pipeline
from worker.loop.stages import LoopSettings, build_stages
from worker.ops import check, dlq_inspect, preview, status
from worker.ops.replay import Target
from worker.ops.replay import commit as replay_commit
from worker.ops.replay import plan as replay_plan
from worker.runtime.clock import SystemClock
from worker.runtime.health import Health
from worker.runtime.health_server import HealthServer
from worker.runtime.logs import configure_logging, kafka_logger
from worker.runtime.metrics import Metrics
from worker.runtime.process import limit_malloc_arenas, tune_garbage_collector

log: FilteringBoundLogger = structlog.get_logger(__name__)


def _stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT set the returned event (installed first: a stop during start-up counts)."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        # Only set the flag: logging here could deadlock on the logger's lock if the signal
        # lands while the main thread holds it. The loop logs ``stop_requested``.
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _health_server(settings: Settings, health: Health, metrics: Metrics) -> HealthServer:
    """Listen on HTTP_HOST:HTTP_PORT; an address that cannot be had is a ConfigError."""
    try:
        return HealthServer(
            health,
            settings.http_host,
            settings.http_port,
            metrics.exposition,
            refused=metrics.health_connection_refused,
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError("HTTP_PORT", f"is taken on HTTP_HOST ({reason})") from exc
        raise ConfigError("HTTP_HOST", f"cannot listen there ({reason})") from exc


def _report_reader(metrics: Metrics, choice: ReaderChoice) -> None:
    """Which reader reads a schema's bodies, and why: logged (``avro_reader``) and counted in
    ``fsus_avro_schemas{reader}``; for the local schema at start-up, for a registry's writer
    schema when the decoder first meets its id (on the poll loop)."""
    where: dict[str, object] = (
        {"schema": "local"}
        if choice.schema_id is None
        else {"schema": "registry", "schema_id": choice.schema_id}
    )
    log.info("avro_reader", **where, reader=choice.reader.value, why=choice.why.value)
    metrics.avro_reader(choice.schema_id, choice.reader)


def _report_local_reader(decoder: Decoder, metrics: Metrics) -> None:
    """At start-up: which reader reads the local schema, and a warning when it is fastavro."""
    _report_reader(metrics, decoder.local_reader)
    if decoder.reader != "compiled":
        # Correct either way; a backlog decodes about five times slower (ARCHITECTURE.md).
        log.warning(
            "avro_reader_not_compiled",
            reader=decoder.reader.value,
            why=decoder.local_reader.why.value,
        )


def _decoder(
    settings: Settings, registry: SchemaRegistry | None, health: Health, metrics: Metrics
) -> Decoder | DebeziumDecoder:
    """The source format's decoder (``events/decoders``), its problems on ``/readyz`` and
    its readers in the log and ``fsus_avro_schemas``."""

    def problem(schema_id: int, message: str) -> None:
        log.error("mapping_does_not_fit", schema_id=schema_id, reason=message)
        health.mapping_problem(message)

    return decoder_for(
        settings, registry, on_problem=problem, on_reader=partial(_report_reader, metrics)
    )


def _beating(health: Health, stop: threading.Event, seconds: float) -> bool:
    """Wait ``seconds`` before the loop runs, keeping liveness; True when asked to stop."""
    health.beat()
    stopped = stop.wait(seconds)
    health.beat()
    return stopped


def _report_egress(settings: Settings, proxies: Proxies) -> None:
    """Once, at start: the proxy each HTTP client goes through (None: direct), userinfo
    masked. Kafka's connections never go through it."""
    clients = {
        "fullstory": settings.fullstory_api_url,
        "schema_registry": settings.schema_registry_url,
    }
    for name, url in clients.items():
        if url:
            proxy = route(url, proxies)
            log.info("egress_proxy", client=name, proxy=redact_url(proxy) if proxy else None)


def _watch_topics(
    settings: Settings, health: Health, metrics: Metrics, clock: SystemClock, stop: threading.Event
) -> TopicWatch:
    """A DLQ topic that does not exist is a ConfigError (a dead letter would wait for it
    forever, and its record's offset with it), once it was missing for a few seconds (one
    created a moment ago may not be known to every broker yet); a Kafka that does not answer within
    ``topic_watch.TIMEOUT_S`` is waited for as before (readiness says so). Then every topic
    read or written is watched (``kafka/topic_watch``)."""
    kafka = settings.kafka
    admin = kafka_client(kafka, lambda: AdminClient(quiet_config(kafka)))
    find = partial(find_topics, admin, timeout_s=topic_watch.TIMEOUT_S)
    topics = [settings.dlq_topic, *kafka.topics]
    health.beat()
    try:
        found = confirm_missing(
            find, topics, settings.dlq_topic, pause=lambda s: _beating(health, stop, s)
        )
    except WorkerError as exc:
        log.warning("dlq_topic_unchecked", topic=settings.dlq_topic, error=str(exc))
    else:
        if settings.dlq_topic in found.missing and not stop.is_set():
            sources = [found.partitions[t] for t in kafka.topics if t in found.partitions]
            advice = missing_dlq_advice(
                settings.dlq_topic, kafka.bootstrap_servers, max(sources, default=None)
            )
            raise ConfigError("DLQ_TOPIC", advice)
    finally:
        health.beat()  # the loop has not started: the time spent asking is no stuck loop
    watch = TopicWatch(topics, find, health, metrics, clock)
    watch.start(stop)
    return watch


def run(settings: Settings) -> int:
    limit_malloc_arenas()  # before the first thread (health server, librdkafka, jobs)
    stop = _stop_on_signals()
    abandon = threading.Event()
    clock = SystemClock()
    watch = JobWatch(settings.job_max_wait_s)
    health = Health(settings.liveness_timeout_s, overdue_jobs=watch.overdue)
    metrics = Metrics()
    proxies = environment_proxies()  # before anything starts: a bad one exits 2
    http = None
    if settings.http_port:
        http = _health_server(settings, health, metrics)
        http.start()
    registry = (
        SchemaRegistry(
            settings.schema_registry_url, auth=settings.schema_registry_auth, proxies=proxies
        )
        if settings.schema_registry_url
        else None
    )
    decoder = _decoder(settings, registry, health, metrics)
    api = FullStoryClient(
        settings.fullstory_api_url,
        settings.fullstory_api_key,
        timeout_s=settings.http_timeout_s,
        max_connections=settings.max_jobs_in_flight + 2,
        proxies=proxies,
    )
    kafka: dict[str, object] = {**settings.kafka.client_config(), "logger": kafka_logger()}
    # Built first: the consumer and the DLQ producer both report their errors to it.
    reachability = KafkaReachability(health, metrics, clock)
    budget = OrgBudget(
        settings.org_max_jobs,
        settings.org_max_operations,
        max_jobs=settings.max_jobs_in_flight,
    )
    importer = Importer(
        api,
        abandon=abandon,
        poll_max_interval_s=settings.job_poll_max_interval_ms / 1000,
        on_api_answer=health.api_answered,
        on_api_failure=health.api_failed,
        metrics=metrics,
        declare_types=settings.property_types.declares_types,
        watch=watch,
        budget=budget,
    )
    watched = _watch_topics(settings, health, metrics, clock, stop)
    deleter = None
    if settings.on_delete is OnDelete.DELETE:
        if not check_may_delete(api, lambda s: _beating(health, stop, s)):
            return 0  # stopped before FullStory answered
        deleter = Deleter(api, importer.policy)
    loop_settings = LoopSettings(
        max_jobs_in_flight=settings.max_jobs_in_flight,
        max_pending_users=settings.max_pending_users,
    )
    stages = build_stages(
        decoder=decoder,
        batcher=Batcher(settings.batch_max_users, settings.batch_max_wait_ms / 1000),
        importer=importer,
        reader=KafkaRecordReader(kafka),
        dlq=kafka_client(
            settings.kafka,
            lambda: KafkaDeadLetters(
                kafka,
                settings.dlq_topic,
                on_error=lambda err: reachability.on_error(err.code(), err.str(), "dlq"),
            ),
        ),
        settings=loop_settings,
        abandon=abandon,
        metrics=metrics,
        on_commit_stored=reachability.reachable,
        deleter=deleter,
        budget=budget,
    )
    pipeline = Pipeline(
        stages, clock=clock, health=health, settings=loop_settings, metrics=metrics, stop=stop
    )
    source = kafka_client(
        settings.kafka,
        lambda: KafkaSource(
            {**kafka, "group.id": settings.kafka.group_id},
            settings.kafka.topics,
            on_assign=pipeline.on_assign,
            on_revoke=pipeline.on_revoke,
            on_lost=pipeline.on_lost,
            on_error=lambda err: reachability.on_error(err.code(), err.str()),
            on_commit=pipeline.on_commit,
            on_stats=reachability.on_stats,
        ),
    )
    watched.when_found(lambda _found: source.refresh())  # a topic created later is read soon
    log.info(
        "config_loaded",
        topics=list(settings.kafka.topics),
        group_id=settings.kafka.group_id,
        # Static membership (KAFKA_CFG_GROUP_INSTANCE_ID): None for a dynamic member.
        group_instance_id=str(settings.kafka.extra.get("group.instance.id") or "") or None,
        fullstory_api_url=redact_url(settings.fullstory_api_url),
        batch_max_users=settings.batch_max_users,
        max_jobs_in_flight=settings.max_jobs_in_flight,
        schema_registry=bool(settings.schema_registry_url),
        schema_registry_url=redact_url(settings.schema_registry_url or "") or None,
        source_format=settings.source_format.value,
        on_delete=settings.on_delete.value,
    )
    _report_egress(settings, proxies)
    # After the clients are built: a setting librdkafka refuses is the only line on stderr.
    if isinstance(decoder, Decoder):
        _report_local_reader(decoder, metrics)
    if settings.insecure_http:
        # Opted in with *_ALLOW_INSECURE_HTTP: said once, here, not on every request.
        log.warning("insecure_http_allowed", variables=list(settings.insecure_http))
    tune_garbage_collector()
    code = 0
    try:
        pipeline.run(source, settings.shutdown_timeout_s)
    except Exception:
        log.exception("worker_crashed")
        pipeline.abort()
        code = 1
    finally:
        if registry:
            registry.close()
        if http:
            http.close()
    _exit_now_if_job_threads_linger(code)
    api.close()
    return code


def _exit_now_if_job_threads_linger(code: int) -> None:
    """Past the shutdown deadline a job thread may sit in an HTTP call for up to the request
    timeout, and the interpreter would join it before exiting. Everything acknowledged is
    committed and the group is left by now, so exit without waiting for it."""
    lingering = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if lingering:
        log.warning("exit_without_waiting", job_threads=len(lingering))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def replay(args: argparse.Namespace) -> int:
    kafka = load_kafka_settings(os.environ)
    try:
        target = Target.parse(args.to_earliest, args.to_offset, args.to_datetime)
    except ValueError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    topics = tuple(args.topic) if args.topic else kafka.topics
    partitions = set(args.partition) if args.partition else None
    try:
        offsets = replay_plan(kafka, kafka.group_id, topics, target, partitions)
        for (topic, partition), offset in sorted(offsets.items()):
            print(f"{kafka.group_id} {topic}[{partition}] -> {offset}")
        if args.execute:
            replay_commit(kafka, kafka.group_id, offsets)
            print("committed")
        else:
            print("dry run: add --execute to commit these offsets")
    except ConfigError:
        raise  # exit 2, said by main
    except WorkerError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fullstory-user-sync", description=(__doc__ or "").replace("``", "")
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "run",
        help="consume, import into FullStory, commit; until SIGTERM",
        description="Consume, import into FullStory, commit; until SIGTERM or SIGINT.",
        epilog=run_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rewind = commands.add_parser(
        "replay", help="move the (stopped) group's committed offsets to replay events"
    )
    rewind.add_argument("--to-earliest", action="store_true", help="the start of each log")
    rewind.add_argument("--to-offset", type=int, help="this offset in every chosen partition")
    rewind.add_argument(
        "--to-datetime", help="the first record at or after this ISO-8601 time (with offset)"
    )
    rewind.add_argument("--topic", action="append", help="limit to this topic (repeatable)")
    rewind.add_argument("--partition", type=int, action="append", help="limit to partition")
    rewind.add_argument("--execute", action="store_true", help="commit (default: dry run)")
    status.add_arguments(
        commands.add_parser("status", help="the group's lag per partition and its members")
    )
    check.add_arguments(
        commands.add_parser(
            "check", help="try the settings and every peer (Kafka, topics, registry, FullStory)"
        )
    )
    preview.add_arguments(
        commands.add_parser(
            "preview", help="the users run would send for the records in the topics; sends nothing"
        )
    )
    letters = commands.add_parser("dlq", help="the dead-letter topic")
    dlq_commands = letters.add_subparsers(dest="dlq_command", required=True)
    dlq_inspect.add_arguments(
        dlq_commands.add_parser("inspect", help="counts by error code and the dead letters")
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "replay":
            return replay(args)
        if args.command == "status":
            return status.main(args)
        if args.command == "dlq":
            return dlq_inspect.main(args)
        if args.command == "check":
            return check.main(args)
        if args.command == "preview":
            return preview.main(args)
        settings = load_settings(os.environ)
        configure_logging(settings.log_level, settings.log_format)
        return run(settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
