"""The topics the worker reads and writes, watched: one that does not exist is named in
``/readyz`` (``missing_topics``), in ``fsus_topic_missing{topic}`` and in a log line
(``topic_missing``) repeated at most once a ``LOG_EVERY_S`` while it stays missing;
``topic_found`` when it appears, and whoever asked (``when_found``) is told, so the consumer
reads a source topic created after start-up within a look, not at librdkafka's next
metadata refresh (5 minutes).

A mistyped source topic otherwise reads as silence: the consumer says so once and waits.
Runs on a thread of its own (``TopicWatch.start``), which touches only its admin client, the
``Health`` it reports to, the metric and ``when_found``'s callback (the consumer's
``KafkaSource.refresh``, which only asks the consuming thread for the metadata call); each
look is bounded by ``TIMEOUT_S``. While Kafka
does not answer, nothing changes: an unreachable broker is readiness's ``kafka_reachable``,
not a missing topic.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import structlog
from structlog.typing import FilteringBoundLogger

from worker.errors import WorkerError
from worker.kafka.topics import TopicsFound
from worker.runtime.clock import Clock
from worker.runtime.health import Health
from worker.runtime.metrics import Metrics

log: FilteringBoundLogger = structlog.get_logger(__name__)

CHECK_EVERY_S = 10.0
LOG_EVERY_S = 60.0
TIMEOUT_S = 5.0


class TopicWatch:
    """``look()`` once: asks ``find`` (``topics.find_topics`` bound to an admin client) and
    reports; ``start()`` runs ``look`` every ``CHECK_EVERY_S`` on a daemon thread until
    ``stop`` is set."""

    def __init__(
        self,
        topics: Sequence[str],
        find: Callable[[Sequence[str]], TopicsFound],
        health: Health,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._topics = list(dict.fromkeys(topics))
        self._find = find
        self._health = health
        self._metrics = metrics
        self._clock = clock
        self._logged_at: dict[str, float] = {}  # missing topic -> when it was last logged
        self._on_found: Callable[[list[str]], object] | None = None

    def when_found(self, on_found: Callable[[list[str]], object]) -> None:
        """From now on ``on_found(topics)`` is called, on the watch's thread, with the
        topics that were missing and now exist."""
        self._on_found = on_found

    def look(self) -> None:
        try:
            found = self._find(self._topics)
        except WorkerError:
            return  # Kafka did not answer: nothing learnt (readiness says unreachable)
        now = self._clock.monotonic()
        appeared: list[str] = []
        for topic in self._topics:
            missing = topic in found.missing
            self._metrics.topic_missing.labels(topic).set(1 if missing else 0)
            if not missing:
                if self._logged_at.pop(topic, None) is not None:
                    log.info("topic_found", topic=topic)
                    appeared.append(topic)
                continue
            last = self._logged_at.get(topic)
            if last is None or now - last >= LOG_EVERY_S:
                self._logged_at[topic] = now
                log.error("topic_missing", topic=topic)
        self._health.topics_missing(list(found.missing))
        on_found = self._on_found
        if appeared and on_found is not None:
            on_found(appeared)

    def start(self, stop: threading.Event) -> threading.Thread:
        def watch() -> None:
            while not stop.is_set():
                try:
                    self.look()
                except Exception:  # the watch informs; it never ends, whatever Kafka answers
                    log.exception("topic_watch_failed")
                stop.wait(CHECK_EVERY_S)

        thread = threading.Thread(target=watch, name="topic-watch", daemon=True)
        thread.start()
        return thread
