"""``status`` and ``dlq inspect`` on the real broker, run as an operator would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.fakes.avro import event
from tests.integration.test_end_to_end import _produce_events
from tests.integration.worker_process import ROOT, run_command, wait_until
from worker.errors import DeadLetterCode
from worker.kafka.dlq import dead_letter_headers
from worker.records import SourceRecord

UNDECODABLE, REJECTED = DeadLetterCode.UNDECODABLE, DeadLetterCode.FULLSTORY_REJECTED

pytestmark = pytest.mark.integration


def _cli(bootstrap, topic, group, *args, dlq=None, timeout=60):
    """``python -m worker ARGS`` with only the Kafka settings (no FullStory key)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "FULLSTORY_"))}
    env = {
        **clean,
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": group,
        **({"DLQ_TOPIC": dlq} if dlq else {}),
    }
    return run_command(list(args), env, timeout)


def _produce(broker, topic, per_partition, headers=None):
    """``per_partition[p]`` records into partition p, keys ``k<p>-<i>``."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    for partition, count in per_partition.items():
        for i in range(count):
            producer.produce(
                topic, key=f"k{partition}-{i}".encode(), value=b"v", partition=partition
            )
    assert producer.flush(30) == 0


def _commit(broker, group, topic, offsets):
    """Commit ``{partition: offset}`` for ``group`` from outside it, as a plain client."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


def test_status_shows_committed_log_end_lag_and_members(broker, stream):
    """Per partition: the commit, the log end and the lag, counted from the log start where
    nothing is committed; the topic's total; the member holding the partitions."""
    topic, _dlq, group = stream(3)
    _produce(broker, topic, {0: 10, 1: 20, 2: 5})
    _commit(broker, group, topic, {0: 4, 1: 20})
    member = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "client.id": "status-test-member",
            "enable.auto.commit": False,
        }
    )
    member.subscribe([topic])
    try:
        wait_until(lambda: member.poll(0.2) is not None or member.assignment(), 60, "assignment")
        done = _cli(broker.bootstrap, topic, group, "status", "--json")
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)
    finally:
        member.close()
    (shown,) = status["topics"]
    rows = {p["partition"]: p for p in shown["partitions"]}
    assert {
        p: (r["committed"], r["log_end"], r["lag"], r["lag_from"]) for p, r in rows.items()
    } == {
        0: (4, 10, 6, "committed"),
        1: (20, 20, 0, "committed"),
        2: (None, 5, 5, "log_start"),
    }
    assert (shown["topic"], shown["lag"], shown["log_end"], status["lag"]) == (topic, 11, 35, 11)
    assert status["state"] == "STABLE"
    (who,) = status["members"]
    assert who["client_id"] == "status-test-member"
    assert sorted(a["partition"] for a in who["assignment"]) == [0, 1, 2]

    text = _cli(broker.bootstrap, topic, group, "status")
    assert text.returncode == 0, text.stderr
    assert re.search(rf"{topic}\s+2\s+-\s+5\s+5\s+0\s+5\s+log_start \*", text.stdout), text.stdout
    assert re.search(rf"{topic}\s+total\s+35\s+11", text.stdout), text.stdout


def test_watch_refreshes_count_times_with_a_progress_line(broker, stream):
    """``--watch --count 2`` refreshes twice, each with the progress line, and exits 0."""
    topic, _dlq, group = stream(1)
    _produce(broker, topic, {0: 8})
    _commit(broker, group, topic, {0: 2})
    done = _cli(broker.bootstrap, topic, group, "status", "--watch", "0.2", "--count", "2")
    assert done.returncode == 0, done.stderr
    progress = re.findall(r"\[[#.]+\]\s+\d+% lag 6  rate [\d.,]+/s  eta \S+", done.stdout)
    assert len(progress) == 2, done.stdout
    lines = _cli(
        broker.bootstrap, topic, group, "status", "--watch", "0.2", "--count", "2", "--json"
    )
    shown = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [s["progress"]["lag"] for s in shown] == [6, 6]


def _status_json(broker, topic, group):
    done = _cli(broker.bootstrap, topic, group, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _watch_until(broker, topic, group, then, moving, timeout=60):
    """``status --watch 0.5 --json`` as an operator runs it: ``then()`` after its first
    refresh, until a refresh shows ``moving(document)`` (then Ctrl-C's stand-in ends it);
    every document it printed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "FULLSTORY_"))}
    env = {
        **clean,
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": group,
    }
    watch = subprocess.Popen(
        [sys.executable, "-m", "worker", "status", "--watch", "0.5", "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        deadline = time.monotonic() + timeout
        for line in watch.stdout:
            seen.append(json.loads(line))
            if len(seen) == 1:
                then()
            elif moving(seen[-1]) or time.monotonic() > deadline:
                break
    finally:
        watch.kill()
        watch.wait(10)
    return seen


def test_a_catch_up_with_its_jobs_still_running_shows_reading_not_committing(
    broker, sandbox, stream, start_worker
):
    """FullStory holds every job open: nothing can be committed, yet ``status`` shows how
    far each partition was read and merged, the jobs in flight with their users, and
    ``--watch`` a nonzero rate while more records arrive, with the committed offsets
    unmoved all along (the read position is information, never a commit)."""
    topic, dlq, group = stream(2)
    sandbox.set_faults(job_delay_ms=600_000)
    first = [event(f"early-{i}") for i in range(12)]
    _produce_events(broker, topic, first)
    start_worker(topic, dlq, group, BATCH_MAX_WAIT_MS="50")
    wait_until(lambda: sandbox.jobs(), 60, "a job held open by the sandbox")
    ends = broker.end_offsets(topic)

    def read_to_the_end(status):
        parts = status["topics"][0]["partitions"]
        return all(p["read"] == ends[p["partition"]] for p in parts) and status["jobs"]

    wait_until(lambda: read_to_the_end(_status_json(broker, topic, group)), 60, "all read")
    status = _status_json(broker, topic, group)
    for p in status["topics"][0]["partitions"]:
        assert p["read_published"] and p["read_lag"] == 0
        assert p["committed"] in (None, 0) and p["lag"] == ends[p["partition"]]
    assert status["lag"] == 12 and status["read_lag"] == 0
    assert sum(job["users"] for job in status["jobs"]) == 12
    assert {j["id"] for j in sandbox.jobs()} == {job["job_id"] for job in status["jobs"]}

    late = [event(f"late-{i}") for i in range(12)]
    seen = _watch_until(
        broker,
        topic,
        group,
        lambda: _produce_events(broker, topic, late),
        lambda s: s["progress"]["rate"] > 0,
    )
    last = seen[-1]
    assert last["progress"]["rate"] > 0 and last["progress"]["eta_s"] is not None, seen
    assert last["progress"]["committed_rate"] == 0 and last["progress"]["done"] == 0
    assert last["lag"] == 24
    assert set(broker.committed(group, topic).values()) <= {0, -1001}  # nothing acknowledged
    text = _cli(broker.bootstrap, topic, group, "status")
    assert re.search(r"jobs in flight \(\d+, \d+ users\)", text.stdout), text.stdout


def test_an_unreachable_broker_is_one_line_and_exit_1():
    """No answer within the timeout: one line naming the address, no traceback."""
    done = _cli("127.0.0.1:1", "users", "g", "status")
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert "unreachable at 127.0.0.1:1" in line
    done = _cli("127.0.0.1:1", "users", "g", "dlq", "inspect")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1


def _letters(broker, dlq):
    """Six dead letters across two DLQ partitions, headers as the worker writes them."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    letters = [
        (0, SourceRecord("users", 0, 10, b"u1", b"\x01\x02"), UNDECODABLE, None, None),
        (0, SourceRecord("users", 0, 11, b"u2", b"\x03"), UNDECODABLE, None, None),
        (1, SourceRecord("users", 1, 7, b"u3", b"\x04"), REJECTED, "job-1", "invalid_email"),
        (1, SourceRecord("users", 1, 8, b"u4", b"\x05"), REJECTED, "job-1", "invalid_email"),
        (0, SourceRecord("users", 2, 3, b"u5", None), DeadLetterCode.TOMBSTONE, None, None),
        (1, SourceRecord("users", 0, 12, b"u6", b"\x06"), UNDECODABLE, None, None),
    ]
    for partition, record, code, job, fullstory_code in letters:
        message = f"{code} at {record.offset}"
        headers = dead_letter_headers(record, code, message, job, fullstory_code)
        producer.produce(
            dlq, key=record.key, value=record.value, headers=headers, partition=partition
        )
    assert producer.flush(30) == 0


def _inspect_groups(broker):
    listed = broker.admin().list_consumer_groups().result(timeout=30).valid
    return {g.group_id for g in listed if g.group_id.startswith("fullstory-user-sync-dlq-inspect")}


def test_dlq_inspect_counts_every_letter_and_shows_the_chosen_ones(broker, stream):
    """Counts by code and by source over all letters; the records with their source, job id,
    FullStory's own code and broker time; values only with --values; and no group left
    behind."""
    topic, _unused, group = stream(1)
    dlq = broker.create_topic(2, prefix="dlq")
    _letters(broker, dlq)
    groups_before = _inspect_groups(broker)
    done = _cli(broker.bootstrap, topic, group, "dlq", "inspect", "--json", dlq=dlq)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["topic"], shown["total"], shown["matching"]) == (dlq, 6, 6)
    assert shown["by_code"] == {"undecodable": 3, "fullstory_rejected": 2, "tombstone": 1}
    assert shown["by_source"] == {"users[0]": 3, "users[1]": 2, "users[2]": 1}
    records = {(r["partition"], r["offset"]): r for r in shown["records"]}
    assert len(records) == 6
    third = records[(1, 0)]
    assert (third["key"], third["code"], third["job_id"]) == ("u3", "fullstory_rejected", "job-1")
    assert third["fullstory_code"] == "invalid_email"
    assert records[(0, 0)]["fullstory_code"] is None
    assert third["source"] == {"topic": "users", "partition": 1, "offset": 7}
    assert third["message"] == "fullstory_rejected at 7"
    assert third["timestamp"] and third["timestamp_type"] in ("CreateTime", "LogAppendTime")
    assert all("value_hex" not in r for r in shown["records"])

    args = ["dlq", "inspect", "--json", "--values", "--code", "fullstory_rejected", "--limit", "1"]
    chosen = json.loads(_cli(broker.bootstrap, topic, group, *args, dlq=dlq).stdout)
    assert (chosen["total"], chosen["matching"]) == (6, 2)
    (one,) = chosen["records"]
    assert (one["key"], one["value_hex"]) == ("u3", "04")
    assert _inspect_groups(broker) == groups_before, "dlq inspect left a consumer group"


def test_dlq_inspect_stops_at_the_end_it_saw_at_start(broker, stream):
    """An empty DLQ reads as zero letters at once: the end is the one seen at start, so the
    command never waits for letters to come."""
    topic, dlq, group = stream(1)
    started = time.monotonic()
    done = _cli(broker.bootstrap, topic, group, "dlq", "inspect", dlq=dlq)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"topic {dlq}: 0 dead letters")
    assert time.monotonic() - started < 20
