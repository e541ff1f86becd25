"""What FullStory imported (or deleted) is acknowledged; what it cannot take is dead-lettered
first.

A unit whose user was imported, or deleted and gone, is acknowledged at once (with its riders:
a delete's folded successors); a rejected user's records (read back
from Kafka) and undecodable records go to the DLQ, and are acknowledged only once Kafka took
each letter (``acks=all``). Acknowledging is the commit stage's verb (``Committer.ack``),
handed in as ``ack``. Metrics are counted per batch, not per record, where they can be. Runs
on the poll loop's thread (DLQ deliveries are reported inside its ``poll``).
"""

from __future__ import annotations

from collections.abc import Callable

from worker.errors import DeadLetterCode, InvalidRecord
from worker.loop.batch import Batch, Unit
from worker.loop.commit.watermark import Span
from worker.loop.dispatch import BatchOutcome
from worker.loop.ports import DeadLetterSink
from worker.records import Message, SourceRecord, TopicPartition, source_record
from worker.runtime.metrics import Metrics

Ack = Callable[[Span], None]


class _Countdown:
    """A rejected user's unit: acknowledged once each of its dead letters was written."""

    __slots__ = ("ack", "left", "unit")

    def __init__(self, unit: Unit, letters: int, ack: Ack) -> None:
        self.unit = unit
        self.left = letters
        self.ack = ack

    def one_done(self) -> None:
        self.left -= 1
        if self.left <= 0:
            for span in self.unit.spans():
                self.ack(span)


class Acknowledger:
    def __init__(self, dlq: DeadLetterSink, metrics: Metrics, ack: Ack) -> None:
        """``ack``: the commit stage's acknowledgement (``Committer.ack``)."""
        self._dlq = dlq
        self._metrics = metrics
        self._ack = ack

    def batch_ended(self, batch: Batch, outcome: BatchOutcome) -> None:
        """Imported users' units are acknowledged; rejected users' records are dead-lettered
        as ``FULLSTORY_REJECTED``, with FullStory's own code (``dlq.fullstory.code``; a peer's
        free-form text, so never a metric label), its message and the job that failed them."""
        imported = 0
        for uid, unit in batch.units.items():
            failure = outcome.failures.get(uid)
            if failure is None:
                for span in unit.spans():
                    self._ack(span)
                imported += len(unit.offsets)
                continue
            letters = _Countdown(unit, len(unit.offsets), self._ack)
            for record in outcome.rejected[uid]:
                self.dead_letter(
                    record,
                    DeadLetterCode.FULLSTORY_REJECTED,
                    failure.message,
                    failure.job_id,
                    letters,
                    fullstory_code=failure.code,
                )
        self._metrics.records_acknowledged.labels("deleted" if batch.deletes else "imported").inc(
            imported
        )

    def undecodable(
        self, tp: TopicPartition, offset: int, message: Message, error: InvalidRecord
    ) -> Span:
        """Dead-letter a consumed record that can never be decoded; returns its span."""
        span = Span(offset)
        self.dead_letter(source_record(tp, offset, message), error.code, error.message, None, span)
        return span

    def dead_letter(
        self,
        record: SourceRecord,
        code: DeadLetterCode,
        message: str,
        job_id: str | None,
        span: Span | _Countdown,
        fullstory_code: str | None = None,
    ) -> None:
        """Send ``record`` to the DLQ; ``span`` is acknowledged once Kafka took it."""

        def delivered() -> None:
            if isinstance(span, _Countdown):
                span.one_done()
            else:
                self._ack(span)
            self._metrics.records_acknowledged.labels("dead_lettered").inc()
            self._metrics.dead_letters.labels(code).inc()

        self._dlq.send(
            record,
            code,
            message,
            on_delivered=delivered,
            job_id=job_id,
            fullstory_code=fullstory_code,
        )
