"""Consumed records on their way into the users' pending units: decoded and merged.

Records come in runs (``Fetched``: one partition's consecutive messages) and are decoded and
merged into their user's unit (``Batcher.add``) as soon as the loop gets them; the offsets
are tracked a run at a time. While the schema registry does not answer, records stay here in
order (never dead-lettered for it), decoding is retried with backoff, and they count towards
backpressure. Only ``RegistryUnavailable`` means that: any other error out of decoding (a
``RetriableError`` of another origin included) is a bug, not an outage to wait out, and
propagates out of the poll loop (the worker stops; the record is neither dead-lettered nor
committed, so a restart reads it again). Only the poll loop calls this.

Each record is one event (``events.change``): a change is merged into its user's unit; a
``Delete`` goes to the batcher as the user's deletion (``deletes``: ``ON_DELETE=delete``) or is
skipped (``Skip.DELETE_IGNORED``); a ``Skipped`` record asks nothing of FullStory. A skipped
record starts no span: the watermark passes it as soon as every span before it is
acknowledged, so it is committed in order, never ahead of an earlier record. Skips are counted
(``on_skipped``, once per decode, by reason); the delete half of a key change is logged.

This is the code every record goes through: per record it calls the reader and the batcher,
and nothing else.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable

import structlog
from structlog.typing import FilteringBoundLogger

from worker.errors import InvalidRecord, RegistryUnavailable
from worker.events.change import Delete, Event, Skip, Skipped
from worker.loop.batch import Batcher
from worker.loop.commit.watermark import Span
from worker.records import Fetched, Message, TopicPartition
from worker.runtime.retry import Backoff

log: FilteringBoundLogger = structlog.get_logger(__name__)

# Records first..end-1 of a partition were merged; the spans that start among them.
Track = Callable[[TopicPartition, int, int, list[Span]], None]
# A record that can never be decoded: returns the span its dead letter will acknowledge.
Invalid = Callable[[TopicPartition, int, Message, InvalidRecord], Span]
# The event a consumed record carries (``Decoder.read``, ``DebeziumDecoder.read``).
ReadEvent = Callable[[Message], Event]
_DELETE_IGNORED = Skipped(Skip.DELETE_IGNORED)


class Intake:
    def __init__(
        self,
        read: ReadEvent,
        batcher: Batcher,
        *,
        deletes: bool = False,
        on_skipped: Callable[[dict[Skip, int]], None] = lambda _counts: None,
    ) -> None:
        """``deletes``: a ``Delete`` deletes the user (``ON_DELETE=delete``), else it is
        skipped; ``on_skipped(counts)``: the records skipped by one ``decode``, by reason."""
        self._read = read
        self._add = batcher.add
        self._delete = batcher.delete
        self._deletes = deletes
        self._on_skipped = on_skipped
        self._runs: deque[Fetched] = deque()
        self._records = 0
        self._backoff = Backoff(cap_s=10.0)
        self._retry_at = 0.0

    def __len__(self) -> int:
        """Records waiting to be decoded."""
        return self._records

    def extend(self, runs: Iterable[Fetched]) -> None:
        for run in runs:
            self._runs.append(run)
            self._records += len(run.messages)

    def holds_any(self, partitions: Collection[TopicPartition]) -> bool:
        return any(run.tp in partitions for run in self._runs)

    def drop(self, partitions: Collection[TopicPartition]) -> None:
        kept = [run for run in self._runs if run.tp not in partitions]
        self._runs = deque(kept)
        self._records = sum(len(run.messages) for run in kept)

    def decode(self, now: float, track: Track, invalid: Invalid) -> bool | None:
        """Merge every waiting record, in order, into its user's pending unit, or hand it to
        ``invalid``; ``track`` each run. Returns True when all were, False when the registry
        failed (the rest wait for a retry), None while waiting for that retry."""
        if now < self._retry_at:
            return None
        runs, read, add = self._runs, self._read, self._add
        skipped: dict[Skip, int] = {}
        try:
            while runs:
                run = runs[0]
                tp, messages = run.tp, run.messages
                spans: list[Span] = []
                for message in messages:
                    offset = message.offset()
                    try:
                        event = read(message)
                        if event.__class__ is dict:
                            unit = add(tp, offset, event, now)
                        else:
                            unit = self._other(tp, offset, event, now, skipped)
                    except InvalidRecord as exc:  # undecodable, or breaks a rule of FullStory's
                        spans.append(invalid(tp, offset, message, exc))
                        continue
                    except RegistryUnavailable as exc:  # read raised: nothing was added
                        self._wait_for_retry(now, exc, track, run, messages.index(message), spans)
                        return False
                    if unit is not None:
                        spans.append(unit)
                runs.popleft()
                self._records -= len(messages)
                track(tp, messages[0].offset(), messages[-1].offset() + 1, spans)
        finally:
            if skipped:
                self._on_skipped(skipped)
        self._backoff.reset()
        return True

    def _other(
        self, tp: TopicPartition, offset: int, event: Event, now: float, skipped: dict[Skip, int]
    ) -> Span | None:
        """A record that is not a change: a delete, or one to skip (counted in ``skipped``)."""
        if isinstance(event, Delete):
            if self._deletes:
                return self._delete(tp, offset, event.uid, now)
            event = _DELETE_IGNORED
        assert isinstance(event, Skipped)
        reason = event.reason
        skipped[reason] = skipped.get(reason, 0) + 1
        if reason is Skip.KEY_CHANGE:
            log.info("key_change_skipped", partition=tp, offset=offset)
        return None

    def _wait_for_retry(
        self,
        now: float,
        exc: RegistryUnavailable,
        track: Track,
        run: Fetched,
        done: int,
        spans: list[Span],
    ) -> None:
        """The registry failed at ``run.messages[done]``: keep that record and the rest."""
        if done:
            merged = run.messages[:done]
            track(run.tp, merged[0].offset(), merged[-1].offset() + 1, spans)
            run.messages = run.messages[done:]
            self._records -= done
        delay = self._backoff.next_delay(exc)
        self._retry_at = now + delay
        log.warning("decode_retry", error=str(exc), delay_s=round(delay, 3))
