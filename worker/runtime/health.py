"""Liveness and readiness, for Kubernetes (served with ``/metrics`` by ``health_server``).

``/healthz`` (liveness) is 200 while the poll loop has turned within ``liveness_timeout_s``:
a stuck loop gets the pod restarted; a broker or FullStory outage does not (restarting would
not help, and the loop keeps turning through both).

``/readyz`` is 200 when all of these hold:

* the consumer joined its group (with or without partitions: a replica beyond the partition
  count is idle, not broken);
* Kafka is reachable (a broker connection is up in librdkafka's latest statistics);
* records decode (the schema registry, if used, answers);
* FullStory answers: its latest call got an HTTP answer, or it has failed for less than
  ``api_grace_s`` (a short blip does not flap readiness);
* the field mapping reads every table schema met (``SOURCE_FORMAT=debezium``): a schema
  lacking a mapped column, or with one of a type FullStory cannot take, has its records
  dead-lettered; the answer names the schema and the column (``mapping_problems``, the
  latest five) until the worker restarts with a mapping that fits;
* every topic it reads and writes exists (``missing_topics`` names the ones that do not: a
  mistyped ``KAFKA_TOPICS`` entry, or a DLQ topic deleted after start-up; looked up by
  ``kafka/topic_watch``);
* no import job is overdue (``overdue_jobs``: unfinished past ``JOB_MAX_WAIT_S``; the answer
  names up to five). Its records stay unacknowledged and the partition's commit stuck behind
  them, which a restart would not mend (the next owner waits for the same job): not ready
  is the signal, ``/healthz`` stays 200.
"""

from __future__ import annotations

from collections.abc import Callable

from worker.runtime.clock import Clock, SystemClock


class Health:
    """Thread-safe enough: each flag is written by one thread and read by the HTTP server."""

    def __init__(
        self,
        liveness_timeout_s: float,
        api_grace_s: float = 30.0,
        clock: Clock | None = None,
        overdue_jobs: Callable[[], list[str]] = list,
    ) -> None:
        self._clock = clock or SystemClock()
        self._overdue_jobs = overdue_jobs
        self._liveness_timeout = liveness_timeout_s
        self._api_grace = api_grace_s
        self._last_beat = self._clock.monotonic()
        self._joined = False
        self._kafka_ok = True
        self._decoding_ok = True
        self._api_failing_since: float | None = None
        self._mapping_problems: list[str] = []
        self._missing_topics: list[str] = []

    def mapping_problem(self, message: str) -> None:
        """A table schema the field mapping cannot read (its records are dead-lettered)."""
        self._mapping_problems = [*self._mapping_problems[-4:], message]

    def topics_missing(self, topics: list[str]) -> None:
        """The topics found missing at the latest look (empty: all exist)."""
        self._missing_topics = list(topics)

    def beat(self) -> None:
        self._last_beat = self._clock.monotonic()

    def joined(self) -> None:
        self._joined = True

    def kafka(self, reachable: bool) -> None:
        self._kafka_ok = reachable

    @property
    def kafka_ok(self) -> bool:
        return self._kafka_ok

    def decoding(self, ok: bool) -> None:
        self._decoding_ok = ok

    @property
    def decoding_ok(self) -> bool:
        return self._decoding_ok

    def api_answered(self) -> None:
        self._api_failing_since = None

    def api_failed(self) -> None:
        if self._api_failing_since is None:
            self._api_failing_since = self._clock.monotonic()

    def live(self) -> tuple[bool, dict[str, object]]:
        age = self._clock.monotonic() - self._last_beat
        return age <= self._liveness_timeout, {"loop_age_s": round(age, 3)}

    def ready(self) -> tuple[bool, dict[str, object]]:
        failing = self._api_failing_since
        api_ok = failing is None or self._clock.monotonic() - failing < self._api_grace
        overdue = self._overdue_jobs()
        checks = {
            "joined_group": self._joined,
            "kafka_reachable": self._kafka_ok,
            "decoding": self._decoding_ok,
            "fullstory_answering": api_ok,
            "jobs_within_limit": not overdue,
            "mapping_fits": not self._mapping_problems,
            "topics_exist": not self._missing_topics,
        }
        detail: dict[str, object] = dict(checks)
        if self._mapping_problems:
            detail["mapping_problems"] = list(self._mapping_problems)
        if self._missing_topics:
            detail["missing_topics"] = list(self._missing_topics)
        if overdue:
            detail["overdue_jobs"] = overdue[:5]
        return all(checks.values()), detail
