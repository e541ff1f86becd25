"""Integration fixtures: the real Kafka broker (scripts/kafka.sh) and the FullStory sandbox."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fullstory_sandbox import Sandbox
from tests.integration.kafka_tools import Broker
from tests.integration.worker_process import (
    ROOT,
    WorkerProcess,
    free_ports,
    start_with_health_port,
)

API_KEY = "sandbox-test-key"


KAFKA_SH = ROOT / "scripts" / "kafka.sh"
# scripts/kafka.sh exits with this when a port it was told to use is taken.
KAFKA_SH_PORT_TAKEN = 3


@pytest.fixture(scope="session")
def broker() -> Broker:
    """This checkout's own single-node KRaft broker on 127.0.0.1.

    ``scripts/kafka.sh start`` starts it, or reuses it only once it checked that the broker is
    this checkout's (its pid file, and the cluster id the broker answers with), and prints its
    address: 9092, or the next free port when another checkout's broker holds 9092.
    ``TEST_KAFKA_BOOTSTRAP`` skips all that for a broker you vouch for yourself.
    """
    bootstrap = os.environ.get("TEST_KAFKA_BOOTSTRAP")
    if not bootstrap:
        done = subprocess.run(
            ["bash", str(KAFKA_SH), "start"],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        bootstrap = done.stdout.strip().splitlines()[-1]
    return Broker(bootstrap)


def _libs_dir() -> Path:
    """The session broker's jars (the private broker shares them)."""
    if os.environ.get("KAFKA_LIBS_DIR"):
        return Path(os.environ["KAFKA_LIBS_DIR"])
    return Path(os.environ.get("KAFKA_STATE_DIR") or ROOT / ".kafka") / "libs"


class PrivateBroker:
    """A second single-node broker of the test's own, so a test may stop and start it.

    The worker under test keeps its address across restarts, so the ports are chosen before
    the first start. Another process may take one of them before the broker binds it: the
    first start then retries on new ports (and a fresh state dir); a restart keeps its
    address, so there it fails instead. ``bootstrap`` is final once ``start`` returned.
    """

    START_ATTEMPTS = 5

    def __init__(
        self, state_dir: Path, pick_ports: Callable[[int], list[int]] = free_ports
    ) -> None:
        self._state_root = state_dir
        self._pick_ports = pick_ports
        self._attempt = 0
        self._started = False
        self._choose_ports()

    def _choose_ports(self) -> None:
        self.port, controller = self._pick_ports(2)
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            "KAFKA_STATE_DIR": str(self._state_root / f"attempt-{self._attempt}"),
            "KAFKA_LIBS_DIR": str(_libs_dir()),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(controller),
        }

    def _script(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(KAFKA_SH), command],
            capture_output=True,
            text=True,
            timeout=300,
            env=self._env,
        )

    def start(self) -> None:
        attempts = 1 if self._started else self.START_ATTEMPTS
        for _ in range(attempts):
            done = self._script("start")
            if done.returncode == 0:
                assert done.stdout.strip().splitlines()[-1] == self.bootstrap, done.stdout
                self._started = True
                return
            if done.returncode != KAFKA_SH_PORT_TAKEN or self._started:
                break
            self._attempt += 1
            self._choose_ports()
        raise RuntimeError(
            f"private broker did not start on {self.bootstrap} (kafka.sh exit "
            f"{done.returncode}):\n{done.stderr[-3000:]}"
        )

    def stop(self) -> None:
        done = self._script("stop")
        if done.returncode != 0:
            raise RuntimeError(f"private broker did not stop:\n{done.stderr[-3000:]}")


@pytest.fixture
def private_broker(broker: Broker, tmp_path: Path) -> Iterator[PrivateBroker]:
    """Not started: the test starts and stops it. Shares the jars of the session broker."""
    if not _libs_dir().is_dir():
        pytest.fail(f"the session broker's jars are missing ({_libs_dir()})")
    private = PrivateBroker(tmp_path / "kafka")
    yield private
    private.stop()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(api_key=API_KEY, job_delay_ms=100) as sb:
        yield sb


def worker_settings(
    bootstrap: str, topic: str, dlq: str, group: str, fullstory_url: str, **more: str
) -> dict[str, str]:
    """The settings every command needs: the broker, the topics, the group, the sandbox and
    its key; ``more`` adds to them or overrides them."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": group,
        "DLQ_TOPIC": dlq,
        "FULLSTORY_API_KEY": API_KEY,
        "FULLSTORY_API_URL": fullstory_url,
        **more,
    }


@pytest.fixture
def start_worker(
    broker: Broker, sandbox: Sandbox, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``python -m worker run`` against the broker and the sandbox; stopped at teardown."""
    started: list[WorkerProcess] = []

    def launch(env: dict[str, str]) -> WorkerProcess:
        process = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log")
        started.append(process)
        return process

    def start(
        topic: str,
        dlq: str,
        group: str,
        bootstrap: str | None = None,
        health: bool = False,
        **env: str,
    ) -> WorkerProcess:
        """``health=True`` serves the health endpoints on 127.0.0.1 at ``.health_port``."""
        settings = worker_settings(
            bootstrap or broker.bootstrap,
            topic,
            dlq,
            group,
            sandbox.url,
            **{
                "BATCH_MAX_WAIT_MS": "200",
                "JOB_POLL_MAX_INTERVAL_MS": "200",
                "HTTP_PORT": "0",
                "LOG_LEVEL": "info",
                **env,
            },
        )
        if not health:
            return launch(settings)
        return start_with_health_port(launch, settings)

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
