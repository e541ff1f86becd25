"""Deletes (``ON_DELETE=delete``) on the real broker and the sandbox, canonical format: a
tombstone keyed by the uid deletes the user, in the uid's order."""

from __future__ import annotations

import random

import pytest

from fullstory_sandbox import Sandbox
from tests.fakes.avro import encode, event
from tests.integration.conftest import API_KEY
from tests.integration.test_status import _cli
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration


def _stream_with_deletes(count: int, uids: int, seed: int) -> list[tuple[str, dict | None]]:
    """(uid, event) pairs, ``None`` for a deletion: users are created, changed, deleted and
    created again, interleaved."""
    rng = random.Random(seed)
    stream: list[tuple[str, dict | None]] = []
    for i in range(count):
        uid = f"user-{rng.randrange(uids):04d}"
        if rng.random() < 0.15:
            stream.append((uid, None))
        else:
            stream.append(
                (
                    uid,
                    event(
                        uid,
                        email=rng.choice([None, f"u{i}@example.com"]),
                        properties={"visits": i, "plan": rng.choice(["free", "pro", None])},
                    ),
                )
            )
    return stream


def _expected(stream: list[tuple[str, dict | None]]) -> dict[str, dict]:
    """What FullStory holds after the stream: a user's fields since its last deletion; a
    user whose last record is a deletion is absent."""
    users: dict[str, dict] = {}
    for uid, change in stream:
        if change is None:
            users.pop(uid, None)
            continue
        user = users.setdefault(uid, {"email": None, "properties": {}})
        if change["email"] is not None:
            user["email"] = change["email"]
        user["properties"].update({k: v for k, v in change["properties"].items() if v is not None})
    return users


@pytest.fixture
def deleting_sandbox():
    with Sandbox(api_key=API_KEY, job_delay_ms=100, user_delete_ms=1000) as sandbox:
        yield sandbox


@pytest.fixture
def start_deleting_worker(start_worker, deleting_sandbox):
    def start(topic, dlq, group, **env):
        return start_worker(
            topic,
            dlq,
            group,
            FULLSTORY_API_URL=deleting_sandbox.url,
            ON_DELETE="delete",
            **env,
        )

    return start


def test_the_sandbox_follows_creates_changes_and_deletes_in_each_users_order(
    broker, deleting_sandbox, stream, start_deleting_worker
):
    """Users created, deleted and created again across three partitions: FullStory ends with
    exactly the users whose last record is not a deletion, each with what came after its last
    deletion, and no upsert ever reached a uid whose deletion was still running."""
    topic, dlq, group = stream(3)
    created = [
        (f"user-{i:04d}", event(f"user-{i:04d}", email=f"first{i}@example.com")) for i in range(60)
    ]
    records = created + _stream_with_deletes(1500, uids=60, seed=7)

    def produce(part):
        broker.produce(
            topic,
            ((uid.encode(), None if change is None else encode(change)) for uid, change in part),
        )

    def drained():
        end = broker.end_offsets(topic)
        wait_until(lambda: broker.committed(group, topic) == end, 180, "the group at the log end")

    produce(created)  # FullStory holds them all, then they are deleted and created again
    worker = start_deleting_worker(
        topic, dlq, group, health=True, BATCH_MAX_USERS="50", MAX_JOBS_IN_FLIGHT="4"
    )
    drained()
    produce(records[len(created) :])
    drained()
    expected = _expected(records)
    users = deleting_sandbox.users()
    assert set(users) == set(expected)
    for uid, want in expected.items():
        assert users[uid].get("email") == want["email"], uid
        assert users[uid].get("properties", {}) == want["properties"], uid
    assert deleting_sandbox.violations() == []
    assert sum(broker.end_offsets(dlq).values()) == 0, "a record was dead-lettered"
    # `status --worker` shows what the replica deleted, read from its /metrics.
    done = _cli(
        broker.bootstrap,
        topic,
        group,
        "status",
        "--worker",
        f"http://127.0.0.1:{worker.health_port}",
    )
    assert done.returncode == 0, done.stderr
    deleted = sum(
        1
        for request in deleting_sandbox.requests()
        if request.get("method") == "DELETE" and request.get("status") == 200
    )
    assert f"deleted {deleted:,}" in done.stdout, done.stdout


def test_a_key_that_may_not_delete_stops_the_worker_at_start_up(broker, stream, start_worker):
    """ON_DELETE=delete with a key lacking the Admin or Architect role: exit 2 and one line
    naming ON_DELETE, before any record is read (never a dead letter per delete)."""
    topic, dlq, group = stream(1)
    with Sandbox(api_key=API_KEY, api_key_admin=False) as standard:
        worker = start_worker(topic, dlq, group, FULLSTORY_API_URL=standard.url, ON_DELETE="delete")
        wait_until(lambda: worker.proc.poll() is not None, 60, "the worker to exit")
    assert worker.proc.returncode == 2
    errors = [
        line
        for line in worker.log_path.read_text().splitlines()
        if line.startswith("configuration error")
    ]
    assert len(errors) == 1 and "ON_DELETE" in errors[0] and "Admin" in errors[0]
