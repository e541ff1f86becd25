"""``fullstory-user-sync run``: wire the real adapters and run until SIGTERM/SIGINT.

Exit status: 0 after a clean drain, 2 for a bad configuration (one line on stderr
naming the variable), 1 for an unexpected failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import structlog

from worker.batch import Batcher
from worker.clock import SystemClock
from worker.config import Settings, load_settings
from worker.decode import Decoder, load_reader_schema
from worker.dlq import KafkaDeadLetters
from worker.errors import ConfigError
from worker.fullstory import FullStoryClient
from worker.health import Health, HealthServer
from worker.importer import Importer
from worker.logs import configure_logging
from worker.pipeline import LoopSettings, Pipeline
from worker.registry import SchemaRegistry
from worker.source import KafkaSource

log = structlog.get_logger("worker.cli")


def run(settings: Settings) -> int:
    abandon = threading.Event()
    health = Health(settings.liveness_timeout_s)
    http = None
    if settings.http_port:
        http = HealthServer(health, os.environ.get("HTTP_HOST", "0.0.0.0"), settings.http_port)
        http.start()
    registry = (
        SchemaRegistry(settings.schema_registry_url, auth=settings.schema_registry_auth)
        if settings.schema_registry_url
        else None
    )
    decoder = Decoder(load_reader_schema(), registry.writer_schema if registry else None)
    api = FullStoryClient(
        settings.fullstory_api_url,
        settings.fullstory_api_key,
        timeout_s=settings.http_timeout_s,
        max_connections=settings.max_jobs_in_flight + 2,
    )
    kafka = {"bootstrap.servers": settings.bootstrap_servers, **settings.librdkafka()}
    pipeline = Pipeline(
        decoder=decoder,
        batcher=Batcher(settings.batch_max_users, settings.batch_max_wait_ms / 1000),
        importer=Importer(
            api, abandon=abandon, poll_max_interval_s=settings.job_poll_max_interval_ms / 1000
        ),
        dlq=KafkaDeadLetters(kafka, settings.dlq_topic),
        clock=SystemClock(),
        health=health,
        settings=LoopSettings(
            max_jobs_in_flight=settings.max_jobs_in_flight,
            max_buffered_records=max(1_000, 2 * settings.batch_max_users),
        ),
        abandon=abandon,
    )
    source = KafkaSource(
        {**kafka, "group.id": settings.group_id},
        settings.topics,
        on_assign=pipeline.on_assign,
        on_revoke=pipeline.on_revoke,
        on_lost=pipeline.on_lost,
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        pipeline.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "config_loaded",
        topics=list(settings.topics),
        group_id=settings.group_id,
        fullstory_api_url=settings.fullstory_api_url,
        batch_max_users=settings.batch_max_users,
        max_jobs_in_flight=settings.max_jobs_in_flight,
        schema_registry=bool(settings.schema_registry_url),
    )
    try:
        pipeline.run(source, settings.shutdown_timeout_s)
    finally:
        api.close()
        if registry:
            registry.close()
        if http:
            http.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fullstory-user-sync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="consume, import into FullStory, commit; until SIGTERM")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "run":
        return run(settings)
    return 2
