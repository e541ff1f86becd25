"""``fullstory-user-sync check`` on the real broker and the FullStory sandbox: green on a
good setup without writing anything, each broken peer named with its fix, ``--create-dlq``."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from fullstory_sandbox import Sandbox
from tests.integration.conftest import API_KEY, worker_settings
from tests.integration.registry import Registry
from tests.integration.worker_process import ROOT, free_port, run_command

pytestmark = pytest.mark.integration


def _check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_command(["check", *args], {**os.environ, "PYTHONPATH": str(ROOT), **env})


@pytest.fixture
def setup(broker, sandbox, stream):
    """A good setup's settings: the stream's topics, the sandbox, its key."""
    topic, dlq, group = stream(3)
    return worker_settings(broker.bootstrap, topic, dlq, group, sandbox.url)


def _line(done: subprocess.CompletedProcess[str], name: str) -> str:
    [line] = [x for x in done.stdout.splitlines() if x.split(":", 1)[0].endswith(name)]
    return line


def test_a_good_setup_is_all_green_and_nothing_is_written(broker, sandbox, setup):
    """Every item passes (exit 0), one line each, with a registry in use; the DLQ topic holds
    no probe afterwards and FullStory got no write (only GETs); --json says the same."""
    with Registry() as registry:
        env = {**setup, "SCHEMA_REGISTRY_URL": registry.url, "ON_DELETE": "delete"}
        done = _check(env)
        as_json = json.loads(_check(env, "--json").stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines and all(line.startswith("ok  ") for line in lines), done.stdout
    names = [line.split(":", 1)[0].split(maxsplit=1)[1] for line in lines]
    assert names == [
        "settings",
        "kafka",
        f"source topic {setup['KAFKA_TOPICS']}",
        f"dlq topic {setup['DLQ_TOPIC']}",
        f"group {setup['KAFKA_GROUP_ID']}",
        "schema registry",
        "fullstory key",
        "fullstory delete role",
    ]
    assert "3 partitions" in _line(done, f"source topic {setup['KAFKA_TOPICS']}")
    assert as_json["ok"] is True and len(as_json["checks"]) == len(lines)
    assert sum(broker.end_offsets(setup["DLQ_TOPIC"]).values()) == 0
    assert {r.get("method") for r in sandbox.requests()} == {"GET"}


@pytest.mark.parametrize(
    ("broken", "line", "fix"),
    [
        ("dlq", "dlq topic", "fullstory-user-sync check --create-dlq"),
        ("source", "source topic", "check KAFKA_TOPICS"),
        ("key", "fullstory key", "set FULLSTORY_API_KEY"),
        ("registry", "schema registry", "check SCHEMA_REGISTRY_URL"),
        ("url", "fullstory key", "check FULLSTORY_API_URL"),
    ],
    ids=[
        "missing-dlq",
        "missing-source-topic",
        "bad-fullstory-key",
        "unreachable-registry",
        "a-web-server-not-fullstory",
    ],
)
def test_each_failure_is_named_with_its_fix(broker, setup, broken, line, fix, tmp_path):
    """One broken peer: exit 1, its line says FAIL and what to do; every other line is ok.
    A FULLSTORY_API_URL that is some web server answering 404 pages is no proven key."""
    env = dict(setup)
    if broken == "url":
        web = ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
        )
        threading.Thread(target=web.serve_forever, daemon=True).start()
        env["FULLSTORY_API_URL"] = f"http://127.0.0.1:{web.server_port}"
    if broken == "dlq":
        env["DLQ_TOPIC"] = f"dlq-{uuid.uuid4().hex[:10]}"
    elif broken == "source":
        env["KAFKA_TOPICS"] = f"{setup['KAFKA_TOPICS']}-typo"
    elif broken == "key":
        env["FULLSTORY_API_KEY"] = "not-the-sandbox-key"
    elif broken == "registry":
        env["SCHEMA_REGISTRY_URL"] = f"http://127.0.0.1:{free_port()}"
    done = _check(env)
    if broken == "url":
        web.shutdown()
        web.server_close()
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [x for x in done.stdout.splitlines() if not x.startswith("ok  ")]
    assert len(failed) == 1 and failed[0].startswith(f"FAIL  {line}"), done.stdout
    assert fix in failed[0]
    if broken == "dlq":
        command = (
            f"kafka-topics.sh --bootstrap-server {broker.bootstrap} --create"
            f" --topic {env['DLQ_TOPIC']} --partitions 3"
        )
        assert command in failed[0]
        assert env["DLQ_TOPIC"] not in broker.admin().list_topics(timeout=10).topics


def test_create_dlq_creates_it_with_the_sources_partitions_and_then_check_passes(broker, setup):
    """--create-dlq creates the missing DLQ topic (the source's 3 partitions, 30 days'
    retention) and that run passes; so does a plain check after it."""
    env = {**setup, "DLQ_TOPIC": f"dlq-{uuid.uuid4().hex[:10]}"}
    created = _check(env, "--create-dlq")
    assert created.returncode == 0, created.stdout + created.stderr
    assert "created" in _line(created, f"dlq topic {env['DLQ_TOPIC']}")
    assert broker.partitions(env["DLQ_TOPIC"]) == [0, 1, 2]
    resource = ConfigResource(ResourceType.TOPIC, env["DLQ_TOPIC"])
    configs = broker.admin().describe_configs([resource])[resource].result(timeout=10)
    assert configs["retention.ms"].value == str(30 * 24 * 3600 * 1000)
    assert _check(env).returncode == 0


def test_a_bad_setting_is_exit_2_and_one_line(setup):
    """Settings are loaded as `run` loads them: a bad one is exit 2 and one line naming it,
    before any peer is tried."""
    done = _check({**setup, "BATCH_MAX_USERS": "0"})
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("configuration error: BATCH_MAX_USERS")


def test_a_key_that_may_not_delete_fails_with_on_delete_delete(setup):
    """ON_DELETE=delete with a key lacking the Admin or Architect role: the key passes, the
    delete role fails, naming the role."""
    with Sandbox(api_key=API_KEY, api_key_admin=False) as standard:
        env = {**setup, "FULLSTORY_API_URL": standard.url, "ON_DELETE": "delete"}
        done = _check(env)
    assert done.returncode == 1
    assert _line(done, "fullstory key").startswith("ok  ")
    role = _line(done, "fullstory delete role")
    assert role.startswith("FAIL") and "Admin or Architect" in role


def test_an_unreachable_broker_fails_kafka_and_leaves_its_items_unchecked(setup):
    """No broker at the address: the kafka line fails naming it and what to check, the
    topics and the group say they were not checked, FullStory is still tried; exit 1."""
    done = _check({**setup, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"})
    assert done.returncode == 1
    kafka = _line(done, "kafka")
    assert kafka.startswith("FAIL") and "check KAFKA_BOOTSTRAP_SERVERS" in kafka
    for name in (f"dlq topic {setup['DLQ_TOPIC']}", f"group {setup['KAFKA_GROUP_ID']}"):
        assert "not checked: Kafka did not answer" in _line(done, name)
    assert _line(done, "fullstory key").startswith("ok  ")
