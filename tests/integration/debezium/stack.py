"""The Debezium stack the tests drive: PostgreSQL (scripts/postgres.sh), a Kafka Connect
worker (scripts/connect.sh) with Debezium's PostgreSQL connector, and what it writes.

Values and keys are Avro in Confluent's wire format (byte 0, a 4-byte big-endian schema id,
the Avro body), written by Apicurio's converter against the tests' registry
(``tests/integration/registry.py``); ``decode`` reads them back with fastavro.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fastavro
from confluent_kafka import Consumer, KafkaError, TopicPartition

from tests.integration.registry import Registry
from tests.integration.worker_process import ROOT, wait_until

POSTGRES_SH = ROOT / "scripts" / "postgres.sh"
CONNECT_SH = ROOT / "scripts" / "connect.sh"
AVRO_CONVERTER = "io.apicurio.registry.utils.converter.AvroConverter"
CONNECTOR_CLASS = "io.debezium.connector.postgresql.PostgresConnector"


# The README's example field mapping of a users table (the end-to-end test and
# `make demo-debezium` use it).
USERS_MAPPING = {
    "uid": "id",
    "display_name": "full_name",
    "email": "email",
    "properties": {
        "plan": "pricing_plan",
        "signed_up": "created_at",
        "signup_day": "signup_date",
        "lifetime_value": "ltv",
    },
}


def script(
    path: Path, command: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run one of the stack's scripts (bounded: a cold start may install packages and
    resolve jars first)."""
    return subprocess.run(
        ["bash", str(path), command], capture_output=True, text=True, timeout=timeout, env=env
    )


def start(path: Path, env: dict[str, str] | None = None) -> str:
    """``<script> start``: the address it prints last."""
    done = script(path, "start", env)
    if done.returncode != 0:
        raise RuntimeError(f"{path.name} start failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout.strip().splitlines()[-1]


def running(path: Path, env: dict[str, str] | None = None) -> bool:
    """This checkout's server is up already (started before the session: left running)."""
    return script(path, "status", env, timeout=60).returncode == 0


@dataclass(frozen=True)
class Postgres:
    """The test server, reached with ``psql`` (no Python driver needed)."""

    dsn: str

    @property
    def host(self) -> str:
        return urlsplit(self.dsn).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.dsn).port or 5432

    @property
    def user(self) -> str:
        return urlsplit(self.dsn).username or ""

    @property
    def password(self) -> str:
        return urlsplit(self.dsn).password or ""

    @property
    def dbname(self) -> str:
        return urlsplit(self.dsn).path.lstrip("/")

    def sql(self, statements: str) -> list[list[str]]:
        """Run ``statements`` in one session (stopping at the first error, which raises);
        the rows the last one returned, each a list of text columns."""
        done = subprocess.run(
            ["psql", "-X", "-q", "-At", "-F", "\x1f", "-v", "ON_ERROR_STOP=1", "-d", self.dsn],
            input=statements,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}\n-- in --\n{statements}")
        return [line.split("\x1f") for line in done.stdout.splitlines()]


@dataclass(frozen=True)
class Connect:
    """The Connect worker's REST API."""

    url: str

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                raw = answer.read()
                return answer.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as refused:
            raw = refused.read()
            try:
                return refused.code, json.loads(raw) if raw else None
            except ValueError:
                return refused.code, raw.decode(errors="replace")

    def status(self, name: str) -> dict[str, Any] | None:
        code, body = self.call("GET", f"/connectors/{name}/status")
        return body if code == 200 else None


def avro_converter(registry_url: str) -> dict[str, str]:
    """Apicurio's converter writing Confluent's framing: no Apicurio headers, the 4-byte id,
    and that id the content id (what ``GET /schemas/ids/{id}`` serves), auto-registered
    under TopicIdStrategy's ``<topic>-key`` / ``<topic>-value``."""
    settings = {
        "apicurio.registry.url": registry_url,
        "apicurio.registry.auto-register": "true",
        "apicurio.registry.as-confluent": "true",
        "apicurio.registry.use-id": "contentId",
        "apicurio.registry.headers.enabled": "false",
    }
    config = {"key.converter": AVRO_CONVERTER, "value.converter": AVRO_CONVERTER}
    for side in ("key", "value"):
        config.update({f"{side}.converter.{k}": v for k, v in settings.items()})
    return config


@dataclass
class Connectors:
    """Creates table-specific connectors; ``remove_all`` deletes them, their slots and
    publications (a slot left behind would hold WAL for ever)."""

    connect: Connect
    postgres: Postgres
    registry: Registry
    created: list[tuple[str, str, str]] = field(default_factory=list)

    def create(
        self,
        name: str,
        table: str,
        *,
        schema: str = "public",
        flatten: bool = False,
        extra_config: dict[str, str] | None = None,
        timeout_s: float = 90,
    ) -> str:
        """A connector capturing ``schema.table`` alone; returns its topic once the connector
        and its task run and its slot streams (so changes made from now on are captured after
        the snapshot). Each call has its own connector name, slot, publication and
        ``topic.prefix``. ``flatten``: ExtractNewRecordState, deletes rewritten with
        ``__deleted`` and ``__op`` added."""
        suffix = uuid.uuid4().hex[:10]
        connector = f"{name}-{suffix}"
        slot = f"dbz_{suffix}"
        publication = f"dbz_pub_{suffix}"
        prefix = f"dbz{suffix}"
        config = {
            "connector.class": CONNECTOR_CLASS,
            "tasks.max": "1",
            "database.hostname": self.postgres.host,
            "database.port": str(self.postgres.port),
            "database.user": self.postgres.user,
            "database.password": self.postgres.password,
            "database.dbname": self.postgres.dbname,
            "topic.prefix": prefix,
            "plugin.name": "pgoutput",
            "slot.name": slot,
            "publication.name": publication,
            "publication.autocreate.mode": "filtered",
            "table.include.list": f"{schema}.{table}",
            "decimal.handling.mode": "precise",
            # The broker creates no topic itself; Connect creates the connector's.
            "topic.creation.default.replication.factor": "1",
            "topic.creation.default.partitions": "1",
            **avro_converter(self.registry.url),
        }
        if flatten:
            config.update(
                {
                    "transforms": "unwrap",
                    "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
                    "transforms.unwrap.delete.tombstone.handling.mode": "rewrite",
                    "transforms.unwrap.add.fields": "op",
                }
            )
        config.update(extra_config or {})
        code, body = self.connect.call("POST", "/connectors", {"name": connector, "config": config})
        if code not in (200, 201):
            raise AssertionError(f"Connect refused connector {connector}: {code} {body}")
        self.created.append((connector, slot, publication))
        self._wait_running(connector, timeout_s)
        if config.get("snapshot.mode") != "initial_only":
            wait_until(
                lambda: self._slot_active(slot),
                timeout_s,
                f"connector {connector}'s slot {slot} to stream",
                step=0.2,
            )
        return f"{prefix}.{schema}.{table}"

    def _wait_running(self, connector: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            status = self.connect.status(connector)
            if status:
                states = [status["connector"]["state"]] + [t["state"] for t in status["tasks"]]
                if "FAILED" in states:
                    raise AssertionError(f"connector {connector} failed: {json.dumps(status)}")
                if status["tasks"] and set(states) == {"RUNNING"}:
                    return
            time.sleep(0.2)
        raise AssertionError(f"connector {connector} not RUNNING after {timeout_s}s: {status}")

    def _slot_active(self, slot: str) -> bool:
        rows = self.postgres.sql(
            f"SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'"
        )
        return rows == [["t"]]

    def remove_all(self) -> None:
        problems = []
        for connector, slot, publication in reversed(self.created):
            code, body = self.connect.call("DELETE", f"/connectors/{connector}")
            if code not in (204, 404):
                problems.append(f"DELETE {connector}: {code} {body}")
            try:
                # The task lets go of its slot shortly after the delete answered.
                wait_until(
                    lambda s=slot: not self._slot_active(s),  # type: ignore[misc]
                    30,
                    f"slot {slot} to be free",
                )
                self.postgres.sql(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    f" WHERE slot_name = '{slot}';\n"
                    f"DROP PUBLICATION IF EXISTS {publication};"
                )
            except (AssertionError, RuntimeError) as exc:
                problems.append(f"{slot}/{publication}: {exc}")
        self.created.clear()
        if problems:
            raise AssertionError("connector teardown: " + "; ".join(problems))


@dataclass(frozen=True)
class Framed:
    """One Confluent-wire-format payload: its schema id, writer schema and decoded datum."""

    schema_id: int
    schema: dict[str, Any]
    datum: Any


def decode(registry: Registry, payload: bytes) -> Framed:
    """Read ``payload`` as Confluent's wire format with the writer schema the registry serves
    for its id (``GET /schemas/ids/{id}``, as the worker asks); AssertionError otherwise."""
    assert len(payload) >= 5 and payload[0] == 0, f"not Confluent wire format: {payload[:8]!r}"
    (schema_id,) = struct.unpack(">I", payload[1:5])
    with urllib.request.urlopen(f"{registry.url}/schemas/ids/{schema_id}", timeout=10) as answer:
        schema = json.loads(json.loads(answer.read())["schema"])
    datum = fastavro.schemaless_reader(io.BytesIO(payload[5:]), fastavro.parse_schema(schema))
    return Framed(schema_id, schema, datum)


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes | None


def consume(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Message]], bool],
    timeout_s: float = 60,
) -> list[Message]:
    """Every message of ``topic``'s partition 0 from the start, until ``until(messages)``
    holds (AssertionError, with what arrived, after ``timeout_s``). The topic is created by
    Connect with the first record, so an unknown topic is waited for."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"dbz-test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    messages: list[Message] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout_s
        while not until(messages):
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{topic}: after {timeout_s}s only {len(messages)} messages: {messages}"
                )
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() in (
                    KafkaError.UNKNOWN_TOPIC_OR_PART,
                    KafkaError._PARTITION_EOF,
                ):
                    continue
                raise AssertionError(f"{topic}: {error}")
            messages.append(Message(message.key(), message.value()))
    finally:
        consumer.close()
    return messages


def field_types(schema: dict[str, Any], record: str) -> dict[str, Any]:
    """The Avro type of each field of the record named ``record`` (its nullable union
    unwrapped), found anywhere in ``schema``."""
    found = _find_record(schema, record)
    if found is None:
        raise KeyError(record)
    types = {}
    for column in found["fields"]:
        kind = column["type"]
        if isinstance(kind, list):
            kind = next(k for k in kind if k != "null")
        types[column["name"]] = kind
    return types


def _find_record(node: Any, name: str) -> dict[str, Any] | None:
    if isinstance(node, dict):
        if node.get("type") == "record" and node.get("name") == name:
            return node
        for value in node.values():
            found = _find_record(value, name)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _find_record(value, name)
            if found is not None:
                return found
    return None
