"""Debezium fixtures: a real PostgreSQL, the tests' registry and a Kafka Connect worker with
Debezium's PostgreSQL connector, each started once per test run and stopped at its end.

``scripts/postgres.sh`` and ``scripts/connect.sh`` start the two servers (installing
PostgreSQL and resolving the jars on a machine's first run), as the ``broker`` fixture does
with ``scripts/kafka.sh``. A server that was already running when the session began (a
developer's ``scripts/connect.sh start``) is reused and left running.

A test asks for ``create_connector`` and the stack comes with it::

    def test_x(postgres, create_connector, broker, schema_registry):
        postgres.sql("CREATE TABLE t (id bigint PRIMARY KEY, v text)")
        topic = create_connector("t", "t")              # RUNNING, slot streaming
        postgres.sql("INSERT INTO t VALUES (1, 'a')")
        messages = consume(broker.bootstrap, topic, lambda m: len(m) >= 1)
        decode(schema_registry, messages[0].value).datum["after"]  # {'id': 1, 'v': 'a'}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.integration.debezium.stack import (
    CONNECT_SH,
    POSTGRES_SH,
    Connect,
    Connectors,
    Postgres,
    running,
    script,
    start,
)
from tests.integration.kafka_tools import Broker
from tests.integration.registry import Registry


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """This checkout's PostgreSQL 15 (``.postgres/``), logical decoding on, on 127.0.0.1."""
    ours = not running(POSTGRES_SH)
    server = Postgres(start(POSTGRES_SH))
    yield server
    if ours:
        script(POSTGRES_SH, "stop", timeout=120)


@pytest.fixture(scope="session")
def connect(broker: Broker) -> Iterator[Connect]:
    """This checkout's Kafka Connect worker (``.connect/``) against the session broker."""
    env = {**os.environ, "CONNECT_BOOTSTRAP_SERVERS": broker.bootstrap}
    ours = not running(CONNECT_SH, env)
    worker = Connect(start(CONNECT_SH, env))
    yield worker
    if ours:
        script(CONNECT_SH, "stop", env, timeout=120)


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[Registry]:
    """The registry the converter registers its schemas in (in-process, 127.0.0.1)."""
    with Registry() as registry:
        yield registry


@pytest.fixture
def create_connector(
    connect: Connect, postgres: Postgres, schema_registry: Registry
) -> Iterator[Callable[..., str]]:
    """``create_connector(name, table, *, schema="public", flatten=False, extra_config=None)``:
    a connector of this test's own for one table (see ``Connectors.create``); returns its
    topic. Deleted at teardown with its slot and publication."""
    connectors = Connectors(connect, postgres, schema_registry)
    yield connectors.create
    connectors.remove_all()
