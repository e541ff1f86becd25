"""``fullstory-user-sync preview`` on the real broker: the users ``run`` would send and the
records it would dead-letter, read without joining the group or moving its offsets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.fakes.avro import encode, event
from tests.integration.conftest import worker_settings
from tests.integration.worker_process import ROOT, run_command, wait_until

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000  # the records' timestamps: T0, T0 + 1 s, ...


def _preview(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_command(["preview", *args], {**os.environ, "PYTHONPATH": str(ROOT), **env})


def _produce(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    """One record a second from ``T0``, in order, to partition 0."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i, (key, value) in enumerate(values):
        producer.produce(topic, key=key, value=value, partition=0, timestamp=T0 + i * 1000)
    assert producer.flush(30) == 0


def _change(uid: str, **fields: object) -> tuple[bytes, bytes]:
    return uid.encode(), encode(event(uid, **fields))


RECORDS = [
    _change("u0", display_name="Already imported"),  # below the group's commit
    _change("u1", display_name="Ann", properties={"plan": "pro", "age": 31}),
    (b"bad", b"\x07not avro"),
    _change("u2", email="bo@example.com", properties={"vip": True}),
    _change("u1", email="ann@example.com", properties={"plan": "team", "score": 2.5}),
]


@pytest.fixture
def setup(broker, sandbox, stream):
    """The records above in a one-partition topic; the group committed offset 1."""
    topic, dlq, group = stream(1)
    _produce(broker.bootstrap, topic, RECORDS)
    committer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    committer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    committer.close()
    env = worker_settings(broker.bootstrap, topic, dlq, group, sandbox.url)
    return topic, dlq, group, env


def test_preview_shows_the_merged_user_and_the_bad_record_and_moves_nothing(broker, sandbox, setup):
    """From the committed offset: u1's two changes are one user with its FullStory types,
    u2 is another, the bad record is a dead letter with its code and place; u0 (committed)
    is not read. The group's offsets are as they were, it has no members, the DLQ is empty
    and FullStory got no request at all."""
    topic, dlq, group, env = setup
    done = _preview(env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"read 4 record(s): {topic}[0]@1-4" in out
    assert "would send 2 user(s) in 1 request(s)" in out
    assert f"  u1  (2 records, {topic}[0])" in out
    assert 'display_name: "Ann"' in out and 'email: "ann@example.com"' in out
    assert 'plan = "team" (str)' in out
    assert "age = 31 (int)" in out and "score = 2.5 (real)" in out
    assert f"  u2  (1 record, {topic}[0])" in out and "vip = true (bool)" in out
    assert f"would dead-letter 1 record(s)\n  {topic}[0]@2 undecodable: " in out
    assert "u0" not in out
    assert broker.committed(group, topic) == {0: 1}
    described = broker.admin().describe_consumer_groups([group])[group].result(timeout=30)
    assert described.members == []
    assert broker.end_offsets(dlq) == {0: 0}
    assert sandbox.requests() == []


def test_json_bodies_are_what_the_worker_sends(broker, sandbox, setup, start_worker):
    """The request objects of ``--json``'s bodies are those the worker, run afterwards on
    the same records, has FullStory's jobs carry; the dead letter is the one it writes."""
    topic, dlq, group, env = setup
    done = _preview(env, "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    previewed = {r["uid"]: r for body in shown["bodies"] for r in body["requests"]}
    assert [(x["offset"], x["code"]) for x in shown["dead_letters"]] == [(2, "undecodable")]

    start_worker(topic, dlq, group)
    end = broker.end_offsets(topic)
    wait_until(lambda: broker.committed(group, topic) == end, 60, "the worker to drain")
    sent = {r["uid"]: r for job in sandbox.job_requests().values() for r in job}
    assert previewed == sent
    assert set(sent) == {"u1", "u2"}
    assert broker.end_offsets(dlq) == {0: 1}


def test_from_timestamp_starts_at_the_first_record_at_or_after_it(setup):
    """T0 + 3 s is u2's record: u1's earlier changes and the bad record are not read; an
    epoch-ms time reads the same; --from-beginning reads u0 too."""
    _, _, _, env = setup
    at = datetime.fromtimestamp((T0 + 3000) / 1000, UTC).isoformat()
    for moment in (at, str(T0 + 3000)):
        done = _preview(env, "--json", "--from-timestamp", moment)
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        assert shown["records"] == 2
        [body] = shown["bodies"]
        assert [r["uid"] for r in body["requests"]] == ["u2", "u1"]
        assert body["requests"][1] == {
            "uid": "u1",
            "email": "ann@example.com",
            "properties": {"plan": "team", "score": 2.5},
            "schema": {"properties": {"plan": "str", "score": "real"}},
        }
        assert shown["dead_letters"] == []
    beginning = json.loads(_preview(env, "--json", "--from-beginning").stdout)
    assert beginning["records"] == 5
    assert "u0" in {r["uid"] for body in beginning["bodies"] for r in body["requests"]}


def _readme_example(name: str) -> str:
    """The shell block under ``<!-- readme-example: NAME -->`` in the README, as it is
    pasted into a shell."""
    readme = (ROOT / "README.md").read_text()
    after = readme.split(f"<!-- readme-example: {name} -->\n", 1)[1]
    block = after.split("```", 2)[1]
    return block.split("\n", 1)[1]  # without the fence's language line


def test_the_readmes_example_events_are_shown_by_preview_as_it_says(broker, sandbox, stream):
    """A new user without events follows the README: its example producer puts two changes
    of alice into their topic, and preview shows what the README says it shows (one user,
    two records merged, plan a str now "pro", seats an int)."""
    topic, dlq, group = stream(1)
    env = worker_settings(broker.bootstrap, topic, dlq, group, sandbox.url)
    python = Path(sys.executable).parent  # the README's `python` is the venv's
    produced = subprocess.run(
        ["bash", "-c", _readme_example("produce")],
        cwd=ROOT,
        env={**os.environ, **env, "PATH": f"{python}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert produced.returncode == 0, produced.stderr
    done = _preview(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "would send 1 user(s) in 1 request(s)" in done.stdout
    assert f"  alice  (2 records, {topic}[0])" in done.stdout
    assert 'plan = "pro" (str)' in done.stdout and "seats = 3 (int)" in done.stdout
    assert 'email: "alice@example.com"' in done.stdout
    assert "would dead-letter 0 record(s)" in done.stdout
