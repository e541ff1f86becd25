"""Integration fixtures: the real Kafka broker (scripts/kafka.sh) and the FullStory sandbox."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fullstory_sandbox import Sandbox
from tests.integration.kafka_tools import Broker
from tests.integration.worker_process import ROOT, WorkerProcess

API_KEY = "sandbox-test-key"


@pytest.fixture(scope="session")
def broker() -> Broker:
    """The project's own single-node KRaft broker on 127.0.0.1 (reused if already running)."""
    bootstrap = os.environ.get("TEST_KAFKA_BOOTSTRAP")
    if not bootstrap:
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "kafka.sh"), "start"],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        bootstrap = done.stdout.strip().splitlines()[-1]
    return Broker(bootstrap)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateBroker:
    """A second single-node broker of the test's own, so a test may stop and start it."""

    def __init__(self, state_dir: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            "KAFKA_STATE_DIR": str(state_dir),
            "KAFKA_LIBS_DIR": str(ROOT / ".kafka" / "libs"),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
        }

    def _script(self, command: str) -> None:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "kafka.sh"), command],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
            env=self._env,
        )

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")


@pytest.fixture
def private_broker(broker: Broker, tmp_path: Path) -> Iterator[PrivateBroker]:
    """Not started: the test starts and stops it. Shares the jars of the session broker."""
    if not (ROOT / ".kafka" / "libs").is_dir():
        pytest.fail("the session broker's jars are missing (.kafka/libs)")
    private = PrivateBroker(tmp_path / "kafka")
    yield private
    private.stop()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(api_key=API_KEY, job_delay_ms=100) as sb:
        yield sb


@pytest.fixture
def start_worker(
    broker: Broker, sandbox: Sandbox, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``python -m worker run`` against the broker and the sandbox; stopped at teardown."""
    started: list[WorkerProcess] = []

    def start(
        topic: str, dlq: str, group: str, bootstrap: str | None = None, **env: str
    ) -> WorkerProcess:
        process = WorkerProcess(
            {
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap or broker.bootstrap,
                "KAFKA_TOPICS": topic,
                "KAFKA_GROUP_ID": group,
                "DLQ_TOPIC": dlq,
                "FULLSTORY_API_KEY": API_KEY,
                "FULLSTORY_API_URL": sandbox.url,
                "BATCH_MAX_WAIT_MS": "200",
                "JOB_POLL_MAX_INTERVAL_MS": "200",
                "HTTP_PORT": "0",
                "LOG_LEVEL": "info",
                **env,
            },
            tmp_path / f"worker-{len(started)}.log",
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def stream(broker: Broker) -> Callable[[int], tuple[str, str, str]]:
    """A fresh source topic with ``n`` partitions, its DLQ topic, and a fresh group id."""

    def make(partitions: int) -> tuple[str, str, str]:
        topic = broker.create_topic(partitions)
        dlq = broker.create_topic(1, prefix="dlq")
        return topic, dlq, f"group-{uuid.uuid4().hex[:8]}"

    return make
