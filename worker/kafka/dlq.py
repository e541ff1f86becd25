"""The dead-letter topic: records that cannot be delivered, with their reason.

Each dead letter keeps the original key, value and headers, and adds headers naming the
error and the source (``dlq.error.code``, a ``DeadLetterCode``; ``dlq.error.message``;
``dlq.fullstory.code``, FullStory's own code for a user it refused; ``dlq.source.topic``,
``dlq.source.partition``, ``dlq.source.offset``, ``dlq.job.id``). ``on_delivered`` runs,
and ``dead_lettered`` is logged, only once Kafka acknowledged the write (acks=all); a failed
write is sent again after a pause, never dropped. Callbacks run on the thread that calls ``poll``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, Producer
from structlog.typing import FilteringBoundLogger

from worker.errors import DeadLetterCode
from worker.records import SourceRecord
from worker.runtime.clock import Clock, SystemClock

log: FilteringBoundLogger = structlog.get_logger(__name__)
_RESEND_AFTER_S = 1.0
# Bounds on the text a peer (FullStory) decides: a header is cut to this many bytes.
MESSAGE_MAX_BYTES = 4096
FULLSTORY_CODE_MAX_BYTES = 256
ORIGINAL = "original."  # the prefix a source record's own dlq.* headers are kept under


def dead_letter_headers(
    record: SourceRecord,
    code: DeadLetterCode,
    message: str,
    job_id: str | None,
    fullstory_code: str | None = None,
) -> list[tuple[str, str | bytes | None]]:
    """The record's own headers, then the worker's; ``fullstory_code``: FullStory's code for a
    user it refused (``code`` is then ``FULLSTORY_REJECTED``). A ``dlq.*`` header the record
    carried itself (a producer's forgery, or a letter sent back to a source topic) is kept
    under ``original.dlq.*``: only the worker writes ``dlq.*``, so ``dlq inspect`` never pins a
    letter on a job or a code that is not the worker's."""
    headers: list[tuple[str, str | bytes | None]] = [
        (f"{ORIGINAL}{name}" if name.startswith("dlq.") else name, value)
        for name, value in record.headers
    ]
    headers += [
        ("dlq.error.code", code.encode()),
        ("dlq.error.message", message.encode()[:MESSAGE_MAX_BYTES]),
        ("dlq.source.topic", record.topic.encode()),
        ("dlq.source.partition", str(record.partition).encode()),
        ("dlq.source.offset", str(record.offset).encode()),
    ]
    if fullstory_code is not None:
        headers.append(("dlq.fullstory.code", fullstory_code.encode()[:FULLSTORY_CODE_MAX_BYTES]))
    if job_id:
        headers.append(("dlq.job.id", job_id.encode()))
    if record.omitted is not None:
        headers.append(("dlq.value.omitted", record.omitted.encode()))
    return headers


# KAFKA_CFG_* reaches the consumer and this producer both; these would only draw warnings.
_CONSUMER_ONLY = (
    "group.",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "auto.offset.reset",
    "enable.auto.",
    "auto.commit.",
    "partition.assignment.strategy",
    "fetch.",
    "isolation.level",
    "check.crcs",
    "queued.",
    "max.partition.fetch.bytes",
)


class KafkaDeadLetters:
    """The loop's ``DeadLetterSink`` (``worker.loop.ports``) on a Kafka producer."""

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        on_error: Callable[[KafkaError], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        """``on_error`` gets the producer's errors (it counts them and logs once per outage);
        without it each is logged. ``clock``: when a resend is due."""

        def error_cb(err: KafkaError) -> None:
            if on_error is None:
                log.warning("dlq_kafka_error", error=str(err))
            else:
                on_error(err)

        self._topic = topic
        self._clock = clock or SystemClock()
        shared = {k: v for k, v in config.items() if not k.startswith(_CONSUMER_ONLY)}
        self._producer = Producer(
            {
                **shared,
                "enable.idempotence": True,
                "acks": "all",
                # librdkafka retries internally; our own resend covers what it gives up on.
                "message.timeout.ms": 120_000,
                "error_cb": error_cb,
            }
        )
        self._in_flight = 0
        self._resend: list[
            tuple[float, tuple[Callable[[], None], Callable[[KafkaError], None]]]
        ] = []

    def send(
        self,
        record: SourceRecord,
        code: DeadLetterCode,
        message: str,
        on_delivered: Callable[[], None],
        job_id: str | None = None,
        fullstory_code: str | None = None,
    ) -> None:
        headers = dead_letter_headers(record, code, message, job_id, fullstory_code)
        value = record.value

        def produce() -> None:
            self._in_flight += 1
            self._producer.produce(
                self._topic, value=value, key=record.key, headers=headers, on_delivery=delivered
            )

        def failed(err: KafkaError) -> None:
            nonlocal value
            log.error(
                "dlq_write_failed",
                error=str(err),
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
            delay = _RESEND_AFTER_S
            if err.code() == KafkaError.MSG_SIZE_TOO_LARGE and value is not None:
                # Never drop the letter: keep its key, headers and source coordinates.
                headers.append(("dlq.value.omitted", f"{len(value)} bytes: too large".encode()))
                value, delay = None, 0.0
            self._resend.append((self._clock.monotonic() + delay, (produce, failed)))

        shown = None if fullstory_code is None else fullstory_code[:FULLSTORY_CODE_MAX_BYTES]

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            self._in_flight -= 1
            if err is not None:
                failed(err)
                return
            # Only now: logged at send, a letter Kafka never took read like one written.
            log.warning(
                "dead_lettered",
                code=code,
                fullstory_code=shown,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                job_id=job_id,
            )
            on_delivered()

        self._attempt(produce, failed)

    def _attempt(self, produce: Callable[[], None], failed: Callable[[KafkaError], None]) -> None:
        """Produce now, or schedule a resend: a dead letter is never given up."""
        try:
            produce()
        except BufferError:
            self._in_flight -= 1
            self._resend.append((self._clock.monotonic() + 0.1, (produce, failed)))
        except KafkaException as exc:
            self._in_flight -= 1
            failed(exc.args[0])

    def poll(self, timeout: float) -> None:
        self._producer.poll(timeout)
        if not self._resend:
            return
        now = self._clock.monotonic()
        due = [attempt for at, attempt in self._resend if at <= now]
        self._resend = [(at, attempt) for at, attempt in self._resend if at > now]
        for produce, failed in due:
            self._attempt(produce, failed)

    def pending(self) -> int:
        return self._in_flight + len(self._resend)

    def flush(self, timeout: float) -> int:
        return int(self._producer.flush(timeout))
