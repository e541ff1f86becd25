"""Run the worker the way operators do: ``python -m worker run`` with environment variables."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_command(args: list[str], env: dict[str, str], timeout: float = 120):
    """``python -m worker ARGS`` as an operator runs it, with exactly ``env`` (callers start
    from ``os.environ`` and set ``PYTHONPATH``): the finished process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        # Set by the start_worker fixture when it serves the health endpoints.
        self.health_port: int | None = None
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def events(self) -> list[dict]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def logged(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events())

    def peak_rss_mib(self) -> float | None:
        """The process's peak resident memory so far (Linux VmHWM), while it runs."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.25):
    """Poll ``predicate`` until true; fails the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def probe(port: int, path: str) -> int | None:
    """The worker's health endpoint status, or None when it does not answer."""
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code
    except httpx.HTTPError:
        return None


def free_port() -> int:
    """A port nothing listens on right now. Racy: another process may take it before the
    caller binds it, so only use it where a bind failure is detected and retried with a
    new port (``PrivateBroker.start``, ``start_worker(health=True)``)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on right now (same caveat as ``free_port``)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


HEALTH_PORT_ATTEMPTS = 5


def start_with_health_port(
    launch: Callable[[dict[str, str]], WorkerProcess], settings: dict[str, str]
) -> WorkerProcess:
    """Start a worker whose health server listens on a port of its own.

    The worker cannot bind port 0 (``HTTP_PORT=0`` turns the server off), so a free port is
    picked up front; if another process takes it first, the worker exits at start-up with
    "Address already in use" and is started again on a new port. Once it logged
    ``config_loaded`` (after binding) and still runs, the port is the worker's.
    """
    for _ in range(HEALTH_PORT_ATTEMPTS):
        port = free_port()
        process = launch({**settings, "HTTP_PORT": str(port), "HTTP_HOST": "127.0.0.1"})
        wait_until(
            lambda p=process: p.proc.poll() is not None or p.logged("config_loaded"),
            60,
            "the worker to bind its health port or exit",
            step=0.05,
        )
        if process.proc.poll() is None:
            process.health_port = port
            return process
        if "Address already in use" not in process.log_path.read_text(errors="replace"):
            raise AssertionError(f"the worker exited at start-up; see {process.log_path}")
    raise AssertionError(f"no free health port in {HEALTH_PORT_ATTEMPTS} attempts")
