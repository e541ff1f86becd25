"""When the loop takes records in and when it sends users out. Pure apart from the source
calls it is handed; only the poll loop calls these.

* ``Backpressure``: when ``limit`` users (or undecoded records) wait, every owned partition is
  paused, and the loop keeps polling (so it stays in the group however long FullStory takes);
  they are resumed when half as many wait. librdkafka keeps an application's pause across a
  re-assignment, so a partition that moves away is resumed first.
* ``BacklogHold``: from far behind the log end until caught up, users keep merging instead of
  going out in batches, so a backlog or a replay sends each user about once. Paused
  partitions count no lag, so backpressure ends a hold.
"""

from __future__ import annotations

from collections.abc import Collection

import structlog
from structlog.typing import FilteringBoundLogger

from worker.loop.ports import Source
from worker.records import TopicPartition

log: FilteringBoundLogger = structlog.get_logger(__name__)


class Backpressure:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.paused: set[TopicPartition] = set()

    def apply(self, source: Source, waiting: int, owned: Collection[TopicPartition]) -> None:
        if waiting >= self._limit:
            to_pause = set(owned) - self.paused
            if to_pause:
                source.pause(to_pause)
                self.paused |= to_pause
                log.info("partitions_paused", waiting=waiting)
        elif self.paused and waiting <= self._limit // 2:
            source.resume(self.paused)
            log.info("partitions_resumed", waiting=waiting)
            self.paused.clear()

    def forget(self, source: Source, partitions: Collection[TopicPartition]) -> None:
        """Partitions that moved away: undo our pause now."""
        paused = self.paused & set(partitions)
        if paused:
            source.resume(paused)
        self.paused -= paused


class BacklogHold:
    def __init__(self, backlog_lag: int, caught_up_lag: int) -> None:
        self._enter = backlog_lag
        self._leave = caught_up_lag
        self._holding = False

    def holding(self, lag: int) -> bool:
        """``lag``: records in the unpaused partitions not yet consumed."""
        if lag >= self._enter:
            self._holding = True
        elif lag <= self._leave:
            self._holding = False
        return self._holding
