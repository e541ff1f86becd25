"""Scenario 5b: the DLQ cannot take letters for a while (its topic does not exist yet)."""

from __future__ import annotations

import random
import time
import uuid

import pytest

from tests.fakes.avro import encode
from tests.integration.faults.checker import check, events_named, publish
from tests.integration.faults.commits import CommitWatcher, wait_for_commits
from tests.integration.faults.topics import create_dlq_topic, read_dead_letters, read_topic
from tests.integration.oracle import fold_events, random_events
from tests.integration.worker_process import probe, wait_until

pytestmark = pytest.mark.integration

JUNK = b"\xff"  # not Avro: a string length whose varint never ends
JUNK_RECORDS = 12


def test_a_dead_lettered_record_is_committed_only_once_kafka_took_its_letter(
    broker, sandbox, start_worker, capsys, record_property
):
    """Undecodable records arrive while the DLQ topic is gone (deleted after the worker
    started: it refuses to start without one): the worker imports everything else, but each
    partition's commit stays at its first undecodable record until Kafka has taken the letter
    (the DLQ stamps LogAppendTime, so the oracle sees when that was); then the stream drains,
    every letter written after the DLQ appeared, and ``dead_lettered`` logged only for them."""
    topic, dlq, group = broker.create_topic(2), f"dlq-{uuid.uuid4().hex[:10]}", "dlq-outage"
    create_dlq_topic(broker.admin(), dlq)
    with CommitWatcher(broker.bootstrap, group, topic) as watcher:
        worker = start_worker(topic, dlq, group, health=True, BATCH_MAX_USERS="50")
        wait_until(lambda: probe(worker.health_port, "/readyz") == 200, 60, "the worker ready")
        for future in broker.admin().delete_topics([dlq]).values():
            future.result(timeout=30)
        wait_until(
            lambda: dlq not in broker.admin().list_topics(timeout=10).topics, 30, "DLQ deleted"
        )
        _outage(broker, sandbox, topic, dlq, group, watcher, worker, capsys, record_property)


def _outage(broker, sandbox, topic, dlq, group, watcher, worker, capsys, record_property):
    events = random_events(1_000, uids=150, seed=61)
    messages = [(e["uid"].encode(), encode(e)) for e in events]
    rng = random.Random(61)
    for n in range(JUNK_RECORDS):
        messages.insert(rng.randrange(len(messages)), (f"junk-{n}".encode(), JUNK))
    started_s = time.time()
    broker.produce(topic, messages)
    first_junk: dict[int, int] = {}
    for record in read_topic(broker.bootstrap, topic):
        if record.value() == JUNK:
            first_junk.setdefault(record.partition(), record.offset())
    assert len(first_junk) == 2, "put junk in both partitions"

    want = fold_events(events)
    wait_until(lambda: len(sandbox.users()) == len(want), 60, "every good change imported")
    wait_for_commits(watcher, first_junk, 30, "commits up to the first undecodable records")
    held = {p: watcher.poll_now().get(p, 0) for p in first_junk}
    assert events_named(worker, "dead_lettered") == [], "logged before Kafka took the letter"
    dlq_created_s = time.time()
    create_dlq_topic(broker.admin(), dlq)
    wait_for_commits(watcher, broker.end_offsets(topic), 90, "the stream to drain")
    verdict = check(
        bootstrap=broker.bootstrap,
        sandbox=sandbox,
        topic=topic,
        dlq=dlq,
        group=group,
        watcher=watcher,
        workers=[worker],
        started_s=started_s,
    )
    assert worker.terminate() == 0
    assert len(events_named(worker, "dead_lettered")) == JUNK_RECORDS
    letters = read_dead_letters(broker.bootstrap, dlq, topic)
    numbers = {
        **verdict.numbers,
        "held_at": held,
        "first_letter_after_dlq_s": round(min(x.written_s for x in letters) - dlq_created_s, 2),
    }
    publish(capsys, record_property, "dlq outage", numbers)
    assert verdict.problems == []
    # Everything else was imported and committed, yet no commit passed a record whose
    # letter Kafka did not have yet.
    assert held == first_junk, (held, first_junk)
    assert len(letters) == JUNK_RECORDS
    assert all(x.written_s >= dlq_created_s for x in letters)
    assert {x.code for x in letters} == {"undecodable"}
