"""Consumed records waiting to be decoded.

Normally every record is decoded in the turn that consumed it. While the schema registry does
not answer, records stay here in order (never dead-lettered for it), decoding is retried with
backoff, and they count towards backpressure. Only the poll loop calls this.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable

import structlog

from worker.decode import Decoder
from worker.errors import InvalidRecord, RetriableError
from worker.records import SourceRecord, TopicPartition, UserChange
from worker.retry import Backoff

log = structlog.get_logger("worker.intake")


class Intake:
    def __init__(self, decoder: Decoder) -> None:
        self._decode = decoder.decode
        self._records: deque[SourceRecord] = deque()
        self._backoff = Backoff(cap_s=10.0)
        self._retry_at = 0.0

    def __len__(self) -> int:
        return len(self._records)

    def extend(self, records: Iterable[SourceRecord]) -> None:
        self._records.extend(records)

    def holds_any(self, partitions: Collection[TopicPartition]) -> bool:
        return any(record.tp in partitions for record in self._records)

    def drop(self, partitions: Collection[TopicPartition]) -> None:
        self._records = deque(r for r in self._records if r.tp not in partitions)

    def decode(
        self,
        now: float,
        decoded: Callable[[SourceRecord, UserChange], None],
        invalid: Callable[[SourceRecord, InvalidRecord], None],
    ) -> bool | None:
        """Hand each record, in order, to ``decoded`` or ``invalid``. Returns True when all
        were, False when the registry failed (the rest wait for a retry), None while waiting."""
        if now < self._retry_at:
            return None
        records, decode = self._records, self._decode
        while records:
            record = records[0]
            try:
                change = decode(record.value)
            except InvalidRecord as exc:
                records.popleft()
                invalid(record, exc)
                continue
            except RetriableError as exc:
                delay = self._backoff.next_delay(exc)
                self._retry_at = now + delay
                log.warning("decode_retry", error=str(exc), delay_s=round(delay, 3))
                return False
            records.popleft()
            decoded(record, change)
        self._backoff.reset()
        return True
