"""The poll loop under test, wired to the fakes of ``tests.fakes``.

This is the one place that knows how the loop is built and driven (its constructor, its
callbacks, one turn, a shutdown); the component tests speak only to ``Loop`` and to the fakes,
so they keep their meaning when the loop inside is rebuilt.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.fakes import FakeClock, FakeDeadLetters, FakeKafka, ScriptedFullStory, ScriptedSource
from tests.fakes.avro import SCHEMA
from worker.events.decode import Decoder
from worker.fullstory.budget import OrgBudget
from worker.fullstory.deleter import Deleter
from worker.fullstory.importer import Importer
from worker.loop.batch import Batcher
from worker.loop.pipeline import Pipeline
from worker.loop.ports import RecordReader
from worker.loop.stages import LoopSettings, build_stages
from worker.runtime.health import Health
from worker.runtime.metrics import Metrics
from worker.runtime.retry import Backoff

# Bounds for waiting on job threads (real time) and on the loop (turns). `make mutation`
# shortens the wait: a mutant that never gets there is then killed sooner.
WAIT_S = float(os.environ.get("FSUS_COMPONENT_WAIT_S", "10"))
MAX_TURNS = 200_000


class Loop:
    """One worker's poll loop over a ``ScriptedSource`` of ``kafka``, ``fullstory`` and a
    ``FakeDeadLetters``, on a ``FakeClock`` (time passes when the loop waits)."""

    def __init__(
        self,
        kafka: FakeKafka,
        fullstory: ScriptedFullStory,
        *,
        max_users: int = 100,
        max_wait_s: float = 0.0,
        max_jobs: int = 4,
        max_pending: int = 10_000,
        commit_interval_s: float = 0.5,
        drain_timeout_s: float = 10.0,
        backlog_lag: int = 10_000,
        registry: Callable[[int], Any] | None = None,
        reader: RecordReader | None = None,
        deletes: bool = False,
        consume_max_records: int = 1000,
        budget: OrgBudget | None = None,
    ) -> None:
        """``registry``: writer schemas by id (the values then carry the wire format);
        ``reader``: reads rejected users' records back (``kafka`` itself by default);
        ``deletes``: ``ON_DELETE=delete`` (else deletes are skipped)."""
        self.clock = FakeClock()
        self.kafka = kafka
        self.fullstory = fullstory
        self.source = ScriptedSource(kafka, self.clock)
        self.dlq = FakeDeadLetters(self.clock)
        self.abandon = threading.Event()
        self.metrics = Metrics()
        importer = Importer(
            fullstory,
            abandon=self.abandon,
            metrics=self.metrics,
            poll_max_interval_s=0.005,
            poll_min_interval_s=0.001,
            backoff=lambda: Backoff(base_s=0.001, cap_s=0.005, floor_s=0.001),
            budget=budget,
        )
        settings = LoopSettings(
            max_jobs_in_flight=max_jobs,
            max_pending_users=max_pending,
            commit_interval_s=commit_interval_s,
            rebalance_drain_timeout_s=drain_timeout_s,
            backlog_lag=backlog_lag,
            consume_max_records=consume_max_records,
        )
        deleter = (
            Deleter(fullstory, importer.policy, poll_min_s=0.001, poll_max_s=0.005)
            if deletes
            else None
        )
        stages = build_stages(
            decoder=Decoder(SCHEMA, registry),
            batcher=Batcher(max_users, max_wait_s),
            importer=importer,
            reader=reader or kafka,
            dlq=self.dlq,
            settings=settings,
            abandon=self.abandon,
            metrics=self.metrics,
            deleter=deleter,
            budget=budget,
        )
        self._pipeline = Pipeline(
            stages,
            clock=self.clock,
            health=Health(60, clock=self.clock),
            settings=settings,
            metrics=self.metrics,
        )
        self._pipeline.source = self.source
        self.source.on_assign = self._pipeline.on_assign
        self.source.on_revoke = self._pipeline.on_revoke
        self.source.on_lost = self._pipeline.on_lost
        self.source.on_commit = self._pipeline.on_commit
        self.stopped = False

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the loop's ``/metrics`` (0 when it was never reported)."""
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def turn(self, times: int = 1) -> None:
        """Run the loop ``times`` turns (each polls the source once)."""
        for _ in range(times):
            self._pipeline.step()

    def turn_until(self, condition: Callable[[], bool], what: str) -> None:
        """Turn until ``condition`` holds; fail naming ``what`` after ``WAIT_S`` real seconds."""
        deadline = time.monotonic() + WAIT_S
        for _ in range(MAX_TURNS):
            if condition():
                return
            if time.monotonic() > deadline:
                break
            self._pipeline.step()
            time.sleep(0.0002)  # let job threads run
        raise AssertionError(f"the loop never got to: {what}")

    def shutdown(self, timeout_s: float) -> None:
        """SIGTERM: drain up to ``timeout_s`` (fake seconds), commit, leave the group."""
        self._pipeline.stop()
        self._pipeline.shutdown(timeout_s)
        self.stopped = True

    def close(self) -> None:
        """End the job threads (test teardown)."""
        self.abandon.set()
        if not self.stopped:
            self._pipeline.abort()
            self.stopped = True
