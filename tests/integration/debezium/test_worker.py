"""The worker on a real Debezium stream: PostgreSQL -> Debezium's connector -> Kafka (Confluent
wire format through the tests' registry) -> the worker -> the sandbox.

The sandbox must end holding the table's rows under the field mapping, deleted rows absent
(``ON_DELETE=delete``), with no upsert of a uid whose deletion still ran and no two jobs of one
uid overlapping."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable

import httpx
import pytest

from fullstory_sandbox import Sandbox
from tests.integration.conftest import API_KEY, worker_settings
from tests.integration.debezium.stack import USERS_MAPPING as MAPPING
from tests.integration.debezium.stack import Postgres
from tests.integration.kafka_tools import Broker
from tests.integration.registry import Registry
from tests.integration.test_end_to_end import _overlapping_jobs_with_a_shared_uid
from tests.integration.worker_process import ROOT, run_command, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

COLUMNS = (
    "id bigint PRIMARY KEY, full_name text, email text, pricing_plan text,"
    " created_at timestamptz, signup_date date, ltv numeric(12,2), last_login_at timestamp"
)


def _row(id_: int, name: str, email: str | None, plan: str | None, ltv: str) -> str:
    mail = "NULL" if email is None else f"'{email}'"
    tier = "NULL" if plan is None else f"'{plan}'"
    return (
        f"({id_}, '{name}', {mail}, {tier}, '2024-05-06 07:08:09+02', '2024-05-06', {ltv},"
        " '2024-05-06 07:08:09')"
    )


def _user(name: str, email: str | None, plan: str | None, ltv: float) -> dict:
    """A row as FullStory should hold it under MAPPING (a NULL column: a null value)."""
    return {
        "display_name": name,
        "email": email,
        "properties": {
            "plan": plan,
            "signed_up": "2024-05-06T05:08:09.000000Z",
            "signup_day": "2024-05-06",
            "lifetime_value": ltv,
        },
    }


@pytest.fixture
def deleting_sandbox():
    with Sandbox(api_key=API_KEY, job_delay_ms=100, user_delete_ms=500) as sandbox:
        yield sandbox


def test_the_sandbox_follows_the_table_through_debezium(
    postgres: Postgres,
    create_connector: Callable[..., str],
    broker: Broker,
    schema_registry: Registry,
    deleting_sandbox: Sandbox,
    start_worker,
    tmp_path,
) -> None:
    """Snapshot, inserts, updates of mapped and unmapped columns, a NULL that clears, deletes
    with and without REPLICA IDENTITY FULL, a re-created user, a primary-key change and a
    truncate, NUMERIC, TIMESTAMPTZ and DATE columns."""
    table = f"users_{uuid.uuid4().hex[:8]}"
    postgres.sql(
        f"CREATE TABLE {table} ({COLUMNS}); ALTER TABLE {table} REPLICA IDENTITY FULL;"
        f" INSERT INTO {table} VALUES {_row(1, 'Ada', 'ada@example.com', 'pro', '1234.50')},"
        f" {_row(2, 'Grace', 'grace@example.com', 'free', '0.05')},"
        f" {_row(3, 'Edsger', 'edsger@example.com', 'free', '7')},"
        f" {_row(6, 'Kathleen', 'kathleen@example.com', 'pro', '3')};"
    )
    topic = create_connector("users", table, extra_config={"skipped.operations": "none"})
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    dlq = broker.create_topic(1, prefix="dlq")
    group = f"group-{uuid.uuid4().hex[:8]}"
    worker = start_worker(
        topic,
        dlq,
        group,
        health=True,
        FULLSTORY_API_URL=deleting_sandbox.url,
        SOURCE_FORMAT="debezium",
        FIELD_MAPPING=str(mapping),
        ON_DELETE="delete",
        SCHEMA_REGISTRY_URL=schema_registry.url,
    )
    wait_until(lambda: set(deleting_sandbox.users()) == {"1", "2", "3", "6"}, 120, "the snapshot")
    postgres.sql(
        f"INSERT INTO {table} VALUES {_row(4, 'Barbara', 'barbara@example.com', 'pro', '12')},"
        f" {_row(5, 'Alan', 'alan@example.com', 'team', '99999.99')};\n"
        f"UPDATE {table} SET pricing_plan = 'enterprise' WHERE id = 1;\n"
        f"UPDATE {table} SET last_login_at = now() WHERE id = 2;\n"  # unmapped: skipped
        f"UPDATE {table} SET email = NULL WHERE id = 3;\n"  # clears the email
        f"DELETE FROM {table} WHERE id = 6;\n"  # imported: deleted in FullStory
        f"DELETE FROM {table} WHERE id = 4;\n"  # REPLICA IDENTITY FULL; never sent
        f"ALTER TABLE {table} REPLICA IDENTITY DEFAULT;\n"
        f"DELETE FROM {table} WHERE id = 5;\n"  # before holds the key only
        f"INSERT INTO {table} VALUES {_row(4, 'Barbara II', None, 'free', '1')};\n"
        f"UPDATE {table} SET id = 20 WHERE id = 2;\n"  # a primary-key change
    )
    expected = {
        "1": _user("Ada", "ada@example.com", "enterprise", 1234.5),
        "3": _user("Edsger", None, "free", 7.0),
        "4": _user("Barbara II", None, "free", 1.0),
        "20": _user("Grace", "grace@example.com", "free", 0.05),
        # A uid cannot change in FullStory: the key change's delete half deletes nothing, and
        # the old user stays as it was.
        "2": _user("Grace", "grace@example.com", "free", 0.05),
    }

    def holds_expected() -> bool:
        users = deleting_sandbox.users()
        return set(users) == set(expected) and all(
            {k: users[uid].get(k) for k in ("display_name", "email", "properties")} == want
            for uid, want in expected.items()
        )

    wait_until(holds_expected, 120, "the sandbox to hold the table's rows")
    before = sum(broker.end_offsets(topic).values())
    postgres.sql(f"TRUNCATE {table};")  # acknowledged, never acted on
    wait_until(lambda: sum(broker.end_offsets(topic).values()) > before, 60, "the truncate")
    end = broker.end_offsets(topic)
    wait_until(lambda: broker.committed(group, topic) == end, 120, "the group at the log end")
    assert holds_expected()
    assert deleting_sandbox.violations() == []
    assert not _overlapping_jobs_with_a_shared_uid(deleting_sandbox.jobs())
    assert sum(broker.end_offsets(dlq).values()) == 0, "a record was dead-lettered"
    metrics = httpx.get(f"http://127.0.0.1:{worker.health_port}/metrics", timeout=5).text
    for reason in ("unchanged", "key_change", "tombstone", "truncate"):
        assert f'fsus_records_skipped_total{{reason="{reason}"}} 0.0' not in metrics, reason
    # 6 was deleted in FullStory; 4 and 5 too, or, created and deleted in one merge window,
    # never sent (FullStory answers their DELETE with 404).
    deletes = {
        result: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        for result in ("deleted", "absent", "rejected")
        if line.startswith(f'fsus_user_deletes_total{{result="{result}"}}')
    }
    assert deletes["deleted"] >= 1 and deletes["deleted"] + deletes["absent"] == 3, deletes
    assert deletes["rejected"] == 0


def test_a_table_without_a_mapped_column_is_dead_lettered_and_readyz_says_why(
    postgres: Postgres,
    create_connector: Callable[..., str],
    broker: Broker,
    schema_registry: Registry,
    sandbox: Sandbox,
    start_worker,
    tmp_path,
) -> None:
    """The mapping names `pricing_plan`, the table has no such column: each record goes to the
    DLQ as `mapped_column_missing` (never imported with the property missing), the group
    still commits past them, and /readyz is 503 naming the column."""
    table = f"users_{uuid.uuid4().hex[:8]}"
    postgres.sql(f"CREATE TABLE {table} (id bigint PRIMARY KEY, full_name text, email text);")
    topic = create_connector("nocol", table)
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"uid": "id", "properties": {"plan": "pricing_plan"}}))
    dlq = broker.create_topic(1, prefix="dlq")
    group = f"group-{uuid.uuid4().hex[:8]}"
    worker = start_worker(
        topic,
        dlq,
        group,
        health=True,
        SOURCE_FORMAT="debezium",
        FIELD_MAPPING=str(mapping),
        SCHEMA_REGISTRY_URL=schema_registry.url,
    )
    postgres.sql(f"INSERT INTO {table} VALUES (1, 'Ada', 'a@example.com'), (2, 'Grace', NULL);")
    letters = broker.read_all(dlq, expected=2, timeout_s=60)
    codes = {dict(m.headers())["dlq.error.code"] for m in letters}
    assert len(letters) == 2 and codes == {b"mapped_column_missing"}
    end = broker.end_offsets(topic)
    wait_until(lambda: broker.committed(group, topic) == end, 60, "the group past the letters")
    ready = httpx.get(f"http://127.0.0.1:{worker.health_port}/readyz", timeout=5)
    assert ready.status_code == 503
    assert "pricing_plan" in " ".join(ready.json()["mapping_problems"])
    assert sandbox.users() == {}


def test_preview_shows_what_run_then_sends_for_a_debezium_table(
    postgres: Postgres,
    create_connector: Callable[..., str],
    broker: Broker,
    schema_registry: Registry,
    deleting_sandbox: Sandbox,
    start_worker,
    tmp_path,
) -> None:
    """Writing a mapping is done with preview: on a real Debezium topic it shows the mapped
    users with their FullStory types, the delete and the skipped unchanged update, and its
    --json bodies are the requests the worker, run afterwards, has FullStory's jobs carry."""
    table = f"users_{uuid.uuid4().hex[:8]}"
    postgres.sql(
        f"CREATE TABLE {table} ({COLUMNS}); ALTER TABLE {table} REPLICA IDENTITY FULL;"
        f" INSERT INTO {table} VALUES {_row(1, 'Ada', 'ada@example.com', 'pro', '1234.50')},"
        f" {_row(2, 'Grace', 'grace@example.com', 'free', '0.05')},"
        f" {_row(3, 'Edsger', 'edsger@example.com', 'free', '7')};"
    )
    topic = create_connector("preview", table)
    postgres.sql(
        f"UPDATE {table} SET pricing_plan = 'team' WHERE id = 1;\n"
        f"UPDATE {table} SET last_login_at = now() WHERE id = 2;\n"  # unmapped: skipped
        f"DELETE FROM {table} WHERE id = 3;\n"
    )
    # 3 snapshot reads, 2 updates, the delete and its tombstone.
    wait_until(lambda: sum(broker.end_offsets(topic).values()) == 7, 60, "the changes")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    dlq = broker.create_topic(1, prefix="dlq")
    group = f"group-{uuid.uuid4().hex[:8]}"
    debezium = {
        "SOURCE_FORMAT": "debezium",
        "FIELD_MAPPING": str(mapping),
        "ON_DELETE": "delete",
        "SCHEMA_REGISTRY_URL": schema_registry.url,
    }
    env = worker_settings(broker.bootstrap, topic, dlq, group, deleting_sandbox.url, **debezium)
    shown = run_command(["preview"], {**os.environ, "PYTHONPATH": str(ROOT), **env})
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "would send 2 user(s) in 1 request(s)" in shown.stdout
    assert 'plan = "team" (str)' in shown.stdout
    assert "lifetime_value = 1234.5 (real)" in shown.stdout
    assert 'signed_up = "2024-05-06T05:08:09.000000Z" (date)' in shown.stdout
    assert "would delete 1 user(s)" in shown.stdout and "  3  (" in shown.stdout
    as_json = run_command(["preview", "--json"], {**os.environ, "PYTHONPATH": str(ROOT), **env})
    assert as_json.returncode == 0, as_json.stderr
    previewed = json.loads(as_json.stdout)
    assert previewed["records"] == 7 and previewed["dead_letters"] == []
    assert previewed["deletes"] == [{"uid": "3", "records": 2}]  # its snapshot row and its d
    assert previewed["skipped"] == {"tombstone": 1, "unchanged": 1}
    bodies = {r["uid"]: r for body in previewed["bodies"] for r in body["requests"]}
    assert deleting_sandbox.requests() == []

    start_worker(topic, dlq, group, FULLSTORY_API_URL=deleting_sandbox.url, **debezium)
    end = broker.end_offsets(topic)
    wait_until(lambda: broker.committed(group, topic) == end, 120, "the worker to drain")
    sent = {r["uid"]: r for job in deleting_sandbox.job_requests().values() for r in job}
    # 3's snapshot row and its delete are one delete when read in one merge window, as
    # preview read them; the worker may read them apart, then sends 3 before deleting it.
    assert set(bodies) == {"1", "2"} and {uid: sent[uid] for uid in bodies} == bodies
    assert set(deleting_sandbox.users()) == {"1", "2"}
