"""Asking which topics exist (``worker.kafka.topics.find_topics``), as the topic watch does
every 10 s for the life of the worker."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from functools import partial
from types import SimpleNamespace

import structlog.testing
from confluent_kafka import KafkaError, KafkaException

from tests.fakes.clock import FakeClock
from worker.kafka import topic_watch
from worker.kafka.topics import RECHECK_PAUSES_S, confirm_missing, find_topics
from worker.runtime.health import Health
from worker.runtime.metrics import Metrics


class Admin:
    """An AdminClient whose logs and errors wait on its queue until ``poll`` (as
    librdkafka's do when a logger or error_cb is set), a few for every request while Kafka
    struggles."""

    def __init__(self, *existing: str) -> None:
        self.existing = set(existing)
        self.queued = 0

    def describe_topics(self, topics, **_options):
        self.queued += 3
        futures = {}
        for name in topics.topic_names:
            future: Future = Future()
            if name in self.existing:
                future.set_result(SimpleNamespace(partitions=[0, 1], authorized_operations=None))
            else:
                future.set_exception(KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)))
            futures[name] = future
        return futures

    def poll(self, _timeout: float) -> int:
        served, self.queued = self.queued, 0
        return served


def test_asking_again_and_again_holds_nothing_on_the_clients_queue():
    """A day of the watch's looks leaves nothing waiting on the client: unpolled, its queue
    grew by about 8 KB a second while Kafka was unreachable, until the pod ran out of
    memory."""
    admin = Admin("users")
    for _ in range(100):
        found = find_topics(admin, ["users", "dlq"], timeout_s=1.0)  # type: ignore[arg-type]
    assert found.partitions == {"users": 2} and found.missing == ("dlq",)
    assert admin.queued == 0


def test_a_dlq_created_a_moment_ago_is_found_and_one_never_created_is_missing():
    """``check --create-dlq`` then ``run`` at once: the broker that answers may not know the
    new topic for a moment, and ``run`` must not exit 2 on it. A topic that never comes is
    believed missing after a few seconds of asking, not waited for."""
    admin = Admin("users")
    paused: list[float] = []

    def pause(seconds: float) -> None:
        paused.append(seconds)
        if len(paused) == 2:
            admin.existing.add("dlq")  # the topic reaches this broker's metadata

    find = partial(find_topics, admin, timeout_s=1.0)
    found = confirm_missing(find, ["dlq", "users"], "dlq", pause)
    assert found.missing == () and found.partitions["dlq"] == 2
    assert len(paused) == 2

    paused.clear()
    find = partial(find_topics, Admin("users"), timeout_s=1.0)
    found = confirm_missing(find, ["dlq", "users"], "dlq", paused.append)
    assert found.missing == ("dlq",)
    assert paused == list(RECHECK_PAUSES_S) and sum(paused) < 10


def test_a_stop_asked_for_while_waiting_for_the_dlq_ends_the_asking():
    """SIGTERM during the few seconds of asking again ends them at once (the worker then
    exits as asked, not with the missing DLQ's exit 2 a moment later)."""
    asked: list[list[str]] = []

    def find(topics: list[str]):
        asked.append(topics)
        return find_topics(Admin("users"), topics, timeout_s=1.0)  # type: ignore[arg-type]

    found = confirm_missing(find, ["dlq", "users"], "dlq", lambda _seconds: True)
    assert found.missing == ("dlq",) and len(asked) == 1


def test_the_watch_survives_what_it_did_not_expect(monkeypatch):
    """Whatever a look raises, the watch logs it and looks again: a dead watch would leave
    /readyz naming the topics it last saw missing, for ever."""
    looks = threading.Semaphore(0)
    calls = {"n": 0}

    def find(_topics):
        calls["n"] += 1
        looks.release()
        if calls["n"] == 1:
            raise RuntimeError("an answer nobody expected")
        raise KeyError("another")

    health, metrics = Health(liveness_timeout_s=60), Metrics()
    watch = topic_watch.TopicWatch(["users"], find, health, metrics, FakeClock(start=0.0))
    stop = threading.Event()
    monkeypatch.setattr(topic_watch, "CHECK_EVERY_S", 0.01)
    try:
        with structlog.testing.capture_logs() as logs:
            thread = watch.start(stop)
            assert looks.acquire(timeout=10) and looks.acquire(timeout=10)
            assert thread.is_alive()
    finally:
        stop.set()
    thread.join(10)
    assert any(entry["event"] == "topic_watch_failed" for entry in logs)
