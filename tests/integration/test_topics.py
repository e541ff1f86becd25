"""Topics that do not exist, on the broker: the DLQ's stops ``run`` at start-up with the
command that creates it; a source topic's is named in ``/readyz``, the log and the metric."""

from __future__ import annotations

import subprocess
import uuid

import httpx
import pytest
from confluent_kafka.admin import NewTopic

from tests.fakes.avro import encode, event
from tests.integration.conftest import KAFKA_SH
from tests.integration.worker_process import wait_until

pytestmark = pytest.mark.integration


def test_a_worker_without_its_dlq_topic_exits_2_naming_it_and_how_to_create_it(
    broker, stream, start_worker
):
    """Without its DLQ topic a dead letter would wait forever, and its offset with it: the
    worker refuses to start, with exit 2 and one line naming DLQ_TOPIC, the topic and the
    command that creates it (asking never creates it: it still does not exist after)."""
    topic, _dlq, group = stream(2)
    missing = f"dlq-{uuid.uuid4().hex[:10]}"
    worker = start_worker(topic, missing, group)
    wait_until(lambda: worker.proc.poll() is not None, 60, "the worker to exit")
    assert worker.proc.returncode == 2
    said = [
        line
        for line in worker.log_path.read_text().splitlines()
        if line.strip() and not line.startswith("{")
    ]
    assert len(said) == 1, said
    [line] = said
    assert line.startswith(f"configuration error: DLQ_TOPIC: topic {missing} does not exist")
    command = f"kafka-topics.sh --bootstrap-server {broker.bootstrap} --create --topic {missing}"
    assert f"{command} --partitions 2 --config retention.ms=2592000000" in line
    assert "`fullstory-user-sync check --create-dlq`" in line
    assert missing not in broker.admin().list_topics(timeout=10).topics


def test_a_mistyped_source_topic_is_named_in_readyz_the_log_and_the_metric(
    broker, sandbox, stream, start_worker
):
    """One of two source topics does not exist: /readyz answers 503 naming it, the log says
    ``topic_missing`` with its name, ``fsus_topic_missing{topic}`` is 1; once the topic is
    created, /readyz turns 200, the gauge 0, and its records are imported about a second
    later (0.75 to 1.0 s in five runs; librdkafka alone finds the topic at its next metadata
    refresh, up to five minutes later: 290 s measured; the metadata call made from the
    watch's thread took 8 to 83 s, and once never returned)."""
    topic, dlq, group = stream(1)
    typo = f"{topic}-typo"
    worker = start_worker(f"{topic},{typo}", dlq, group, health=True)
    base = f"http://127.0.0.1:{worker.health_port}"

    def readiness() -> tuple[int, dict]:
        answer = httpx.get(base + "/readyz", timeout=2)
        return answer.status_code, answer.json()

    wait_until(lambda: worker.logged("topic_missing"), 60, "topic_missing in the log")
    status, detail = readiness()
    assert status == 503 and detail["missing_topics"] == [typo], detail
    assert [e["topic"] for e in worker.events() if e.get("event") == "topic_missing"] == [typo]
    metrics = httpx.get(base + "/metrics", timeout=2).text
    assert f'fsus_topic_missing{{topic="{typo}"}} 1.0' in metrics
    assert f'fsus_topic_missing{{topic="{topic}"}} 0.0' in metrics

    # Created once the group was joined on the other topic, as a topic created later is.
    wait_until(lambda: worker.logged("partitions_assigned"), 60, "the group joined")
    for future in broker.admin().create_topics([NewTopic(typo, 1, 1)]).values():
        future.result(timeout=30)
    wait_until(lambda: readiness()[0] == 200, 90, "/readyz to turn ready once the topic exists")
    assert "missing_topics" not in readiness()[1]
    assert f'fsus_topic_missing{{topic="{typo}"}} 0.0' in httpx.get(base + "/metrics").text
    broker.produce(typo, [(b"late", encode(event("late", display_name="Came late")))])
    wait_until(lambda: "late" in sandbox.users(), 60, "the new topic's record imported")
    assert sandbox.users()["late"]["display_name"] == "Came late"
    assert worker.terminate() == 0


def test_the_local_brokers_topics_tool_creates_the_topic_there(broker):
    """The README's first step on the local broker (which has no bin/ directory):
    ``scripts/kafka.sh topics`` is Kafka's kafka-topics tool, aimed at this broker."""
    name = f"made-by-hand-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        ["bash", str(KAFKA_SH), "topics", "--create", "--topic", name, "--partitions", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"Created topic {name}." in done.stdout
    assert broker.partitions(name) == [0, 1]
    # The README's command copied as it is, --bootstrap-server included, works too.
    args = ["--bootstrap-server", broker.bootstrap, "--describe", "--topic", name]
    described = subprocess.run(
        ["bash", str(KAFKA_SH), "topics", *args], capture_output=True, text=True, timeout=120
    )
    assert described.returncode == 0, described.stderr
    assert "PartitionCount: 2" in described.stdout
