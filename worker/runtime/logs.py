"""structlog set-up: JSON lines in production, readable console output for people.

librdkafka's own log lines are routed through structlog too (event ``librdkafka``), so
a JSON log stays one JSON object per line.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str, fmt: str) -> None:
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


class _ToStructlog(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self._log = structlog.get_logger("librdkafka")

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        if record.getMessage().startswith("FAIL "):
            # A failed broker connection, several a second while Kafka is down: the error
            # callback reports each one too, counted and logged once per outage.
            level = "debug"
        method = getattr(self._log, level if level != "critical" else "error", self._log.info)
        method("librdkafka", message=record.getMessage())


def kafka_logger() -> logging.Logger:
    """A stdlib logger for confluent-kafka's ``logger`` setting, forwarding to structlog."""
    logger = logging.getLogger("worker.librdkafka")
    if not logger.handlers:
        logger.addHandler(_ToStructlog())
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
    return logger
