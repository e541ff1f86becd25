"""Hand-over fences: partitions whose previous owner's FullStory jobs may still run.

On assignment, the commit metadata names the jobs in flight for the partition when it was
last committed (``ledger``). Until those jobs ended the partition is fenced: its records are
merged but not sent, so an old job cannot land older values after ours. Only the poll
loop calls this; the waits run on job threads (``Dispatcher.wait_for``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, KeysView, Mapping
from concurrent.futures import Future

import structlog
from structlog.typing import FilteringBoundLogger

from worker.loop.commit.ledger import decode_jobs
from worker.records import TopicPartition

log: FilteringBoundLogger = structlog.get_logger(__name__)


class Fences:
    def __init__(self) -> None:
        self._fences: dict[TopicPartition, tuple[Future[None], list[str]]] = {}

    def __len__(self) -> int:
        return len(self._fences)

    def partitions(self) -> KeysView[TopicPartition]:
        return self._fences.keys()

    def hold(
        self,
        metadata: Mapping[TopicPartition, str],
        wait_for: Callable[[list[str]], Future[None]],
    ) -> dict[TopicPartition, list[str]]:
        """Fence each newly assigned partition whose commit ``metadata`` names jobs, until
        ``wait_for(jobs)`` is done; returns those partitions with their jobs."""
        held = {}
        for tp, text in metadata.items():
            jobs = decode_jobs(text)
            if jobs:
                self._fences[tp] = (wait_for(jobs), jobs)
                held[tp] = jobs
                log.info("partition_fenced", partition=tp, jobs=jobs)
        return held

    def lift(self) -> list[tuple[TopicPartition, list[str]]]:
        """Fences whose jobs all ended, removed; with those jobs."""
        lifted = []
        for tp, (wait, jobs) in list(self._fences.items()):
            if wait.done():
                del self._fences[tp]
                lifted.append((tp, jobs))
                log.info("partition_fence_lifted", partition=tp)
        return lifted

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        for tp in partitions:
            self._fences.pop(tp, None)
