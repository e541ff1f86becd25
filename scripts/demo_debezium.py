"""The Debezium variant of the demo: a real PostgreSQL table followed into FullStory.

Starts this checkout's Kafka broker, PostgreSQL and Kafka Connect (scripts/kafka.sh,
postgres.sh, connect.sh; each reused when already running), the tests' schema registry and
the FullStory sandbox (in-process, 127.0.0.1, an Admin key so deletes work). Creates a
``users`` table (its own schema, ``--rows`` rows, TIMESTAMPTZ, DATE and NUMERIC columns,
REPLICA IDENTITY FULL), a field mapping and a Debezium connector for the table (Apicurio's
Avro converter writing Confluent's wire format); runs ``python -m worker run`` with
SOURCE_FORMAT=debezium until the snapshot is in the sandbox, then updates mapped and unmapped
columns and deletes rows, and waits until the sandbox follows. Prints the table against the
sandbox under the mapping and the worker's counters, stops the worker with SIGTERM, removes the
connector (with its slot and publication) and the table, and leaves the three servers running.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from demo_tools import left_running, log_file, start_broker, start_server

from fullstory_sandbox import Sandbox
from tests.integration.debezium.stack import (
    CONNECT_SH,
    POSTGRES_SH,
    Connect,
    Connectors,
    Postgres,
)
from tests.integration.debezium.stack import (
    USERS_MAPPING as MAPPING,
)
from tests.integration.registry import Registry
from tests.integration.worker_process import WorkerProcess, start_with_health_port, wait_until
from worker.ops import activity

API_KEY = "demo-key"
# last_login_at is not mapped: an update of it alone is skipped as unchanged.
COLUMNS = (
    "id bigint PRIMARY KEY, full_name text, email text, pricing_plan text,"
    " created_at timestamptz, signup_date date, ltv numeric(12,2), last_login_at timestamptz"
)
ROWS = """
SELECT g, 'User ' || g, 'user' || g || '@example.com', (ARRAY['free', 'pro', 'team'])[1 + g % 3],
       timestamptz '2024-01-01 09:30:00+02' + g * interval '37 minutes',
       date '2024-01-01' + g % 366, round(g * 1.37, 2), NULL
FROM generate_series(1, {rows}) AS g"""
# What the mapping sends, as psql prints it (timestamps as the worker writes them).
AS_SENT = """
SELECT id, full_name, email, pricing_plan,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(signup_date, 'YYYY-MM-DD'), ltv
FROM {table} ORDER BY id"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--timeout", type=float, default=120, help="seconds for each wait")
    args = parser.parse_args()
    began = time.monotonic()

    broker = start_broker()
    print("==> starting PostgreSQL and Kafka Connect (first run: apt, then the jars)")
    connect_env = {**os.environ, "CONNECT_BOOTSTRAP_SERVERS": broker.bootstrap}
    with ThreadPoolExecutor(2) as pool:
        pg_dsn = pool.submit(start_server, POSTGRES_SH)
        connect_url = pool.submit(start_server, CONNECT_SH, connect_env)
        postgres, connect = Postgres(pg_dsn.result()), Connect(connect_url.result())
    print(f"    PostgreSQL {postgres.host}:{postgres.port}, Connect {connect.url}")
    stack_s = time.monotonic() - began

    run_id = uuid.uuid4().hex[:6]
    schema = f"demo_{run_id}"
    table = f"{schema}.users"
    mapping = log_file("mapping.json")
    mapping.write_text(json.dumps(MAPPING, indent=2) + "\n")
    postgres.sql(
        f"BEGIN; CREATE SCHEMA {schema}; CREATE TABLE {table} ({COLUMNS});"
        f" ALTER TABLE {table} REPLICA IDENTITY FULL;"
        f" INSERT INTO {table} {ROWS.format(rows=args.rows)}; COMMIT;"
    )
    print(f"==> {table}: {args.rows} rows; mapping {mapping}: {json.dumps(MAPPING)}")

    worker: WorkerProcess | None = None
    with (
        Registry() as registry,
        Sandbox(api_key=API_KEY, job_delay_ms=100, user_delete_ms=100) as sandbox,
    ):
        connectors = Connectors(connect, postgres, registry)
        try:
            topic = connectors.create("demo-users", "users", schema=schema, timeout_s=args.timeout)
            dlq = broker.create_topic(1, prefix=f"demo-dlq-{run_id}")
            log = log_file("worker-debezium.log")
            print(f"==> connector streaming to {topic}; registry {registry.url}")
            print(f"==> FullStory sandbox at {sandbox.url}; starting the worker (log: {log})")
            snapshot_began = time.monotonic()
            worker = start_with_health_port(
                lambda env: WorkerProcess(env, log),
                {
                    "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                    "KAFKA_TOPICS": topic,
                    "KAFKA_GROUP_ID": f"demo-debezium-{run_id}",
                    "DLQ_TOPIC": dlq,
                    "FULLSTORY_API_KEY": API_KEY,
                    "FULLSTORY_API_URL": sandbox.url,
                    "SOURCE_FORMAT": "debezium",
                    "FIELD_MAPPING": str(mapping),
                    "ON_DELETE": "delete",
                    "SCHEMA_REGISTRY_URL": registry.url,
                    "BATCH_MAX_WAIT_MS": "200",
                    "JOB_POLL_MAX_INTERVAL_MS": "200",
                },
            )
            wait_until(
                lambda: _running(worker, log) and len(sandbox.users()) >= args.rows,
                args.timeout,
                "the snapshot in the sandbox",
                step=0.2,
            )
            snapshot_s = time.monotonic() - snapshot_began

            changes_began = time.monotonic()
            postgres.sql(
                f"UPDATE {table} SET pricing_plan = 'enterprise', ltv = ltv + 100"
                f" WHERE id % 10 = 0;\n"
                f"UPDATE {table} SET email = NULL WHERE id % 50 = 3;\n"
                f"UPDATE {table} SET last_login_at = now() WHERE id % 10 = 1;\n"
                f"DELETE FROM {table} WHERE id % 100 = 7;\n"
            )
            ids = range(1, args.rows + 1)
            mapped = sum(1 for i in ids if i % 10 == 0 or i % 50 == 3)
            unmapped = sum(1 for i in ids if i % 10 == 1)
            deleted = sum(1 for i in ids if i % 100 == 7)
            print(
                f"==> changed the table: {mapped} rows in mapped columns (plan and ltv, or email"
                f" to NULL), {unmapped} in last_login_at (unmapped), {deleted} deleted"
            )
            expected = _as_sent(postgres, table)
            wait_until(
                lambda: _running(worker, log) and _follows(expected, sandbox.users()),
                args.timeout,
                "the sandbox to follow the table",
                step=0.2,
            )
            url = f"http://127.0.0.1:{worker.health_port}"
            # The sandbox hides a user as soon as its deletion is accepted; the worker counts
            # the delete once the user is gone.
            wait_until(
                lambda: _settled(activity.read([url]), unmapped, deleted),
                args.timeout,
                "the worker to count the deletes and the skipped updates",
                step=0.2,
            )
            seen = activity.read([url])
            changes_s = time.monotonic() - changes_began
        finally:
            status = worker.terminate() if worker is not None else None
            try:
                connectors.remove_all()
            finally:
                postgres.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

        users = sandbox.users()
        violations = sandbox.violations()
    matches = _matching(expected, users)
    skipped = _count(seen, "fsus_records_skipped", "unchanged")
    deletes = {
        result: _count(seen, "fsus_user_deletes", result)
        for result in ("deleted", "absent", "rejected")
    }
    total_s = time.monotonic() - began
    print(
        f"==> rows in {table}: {len(expected)}; users in the sandbox: {len(users)};"
        f" {matches}/{len(expected)} match their row under the mapping"
    )
    for uid in sorted(users, key=int)[:2]:
        print(f"    {uid}: {json.dumps(users[uid], sort_keys=True)}")
    print(
        f"    deletes done: {deletes['deleted']:.0f} (absent {deletes['absent']:.0f},"
        f" rejected {deletes['rejected']:.0f}) of {deleted} rows deleted;"
        f" skipped as unchanged: {skipped:.0f} of {unmapped} unmapped updates;"
        f" sandbox violations: {len(violations)}"
    )
    print(
        "    the worker's counters (its /metrics, read as `python -m worker status --worker` does):"
    )
    for line in activity.lines(seen):
        print(f"      {line}")
    print(
        f"    elapsed {total_s:.1f}s: servers up {stack_s:.1f}s, snapshot in the sandbox"
        f" {snapshot_s:.1f}s, changes followed {changes_s:.1f}s; worker exit status {status}"
    )
    left_running(
        {
            "Kafka broker": broker.bootstrap,
            "PostgreSQL": f"{postgres.host}:{postgres.port}",
            "Kafka Connect": connect.url,
        }
    )
    ok = (
        status == 0
        and matches == len(expected) == len(users)
        and deletes["deleted"] + deletes["absent"] == deleted
        and deletes["rejected"] == 0
        and skipped >= unmapped
        and not violations
    )
    print("==> OK" if ok else f"==> MISMATCH (see {log})")
    return 0 if ok else 1


def _running(worker: WorkerProcess, log: Path) -> bool:
    """True while the worker runs; one that exited ends the wait at once."""
    if worker.proc.poll() is not None:
        raise RuntimeError(f"the worker exited with status {worker.proc.returncode}; see {log}")
    return True


def _as_sent(postgres: Postgres, table: str) -> dict[str, dict[str, Any]]:
    """Each row as FullStory should hold it under MAPPING."""
    users = {}
    for uid, name, email, plan, signed_up, day, ltv in postgres.sql(AS_SENT.format(table=table)):
        users[uid] = {
            "display_name": name,
            "email": email or None,  # psql prints NULL as ""
            "properties": {
                "plan": plan,
                "signed_up": signed_up,
                "signup_day": day,
                "lifetime_value": float(ltv),
            },
        }
    return users


def _follows(expected: dict[str, dict[str, Any]], users: dict[str, Any]) -> bool:
    return len(users) == len(expected) == _matching(expected, users)


def _matching(expected: dict[str, dict[str, Any]], users: dict[str, Any]) -> int:
    return sum(
        1
        for uid, want in expected.items()
        if uid in users
        and {k: users[uid].get(k) for k in ("display_name", "email", "properties")} == want
    )


def _settled(seen: activity.Activity, unmapped: int, deleted: int) -> bool:
    done = sum(_count(seen, "fsus_user_deletes", r) for r in ("deleted", "absent", "rejected"))
    return _count(seen, "fsus_records_skipped", "unchanged") >= unmapped and done >= deleted


def _count(seen: activity.Activity, family: str, label: str) -> float:
    return seen.counters.get(family, {}).get(label, 0.0)


if __name__ == "__main__":
    sys.exit(main())
