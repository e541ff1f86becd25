"""The `python -m fullstory_sandbox` command: start on port 0, port file, signals, loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def test_serves_writes_port_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The CLI prints its URL, writes --port-file, serves, logs requests, exits 0 on SIGTERM."""
    port_file = tmp_path / "url"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fullstory_sandbox",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--job-delay-ms",
            "10",
            "--port-file",
            str(port_file),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        url = port_file.read_text().strip()
        assert url.startswith("http://127.0.0.1:")
        response = httpx.post(
            f"{url}/v2/users/batch",
            json={"requests": [{"uid": "a"}]},
            headers={"Authorization": "Basic cli-key"},
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stdout.strip() == url
    assert "/v2/users/batch 200" in stderr
    assert "cli-key" not in stderr


def test_refuses_a_non_loopback_host() -> None:
    """Binding 0.0.0.0 is refused with exit status 2 and a message."""
    result = subprocess.run(
        [sys.executable, "-m", "fullstory_sandbox", "--host", "0.0.0.0", "--api-key", "k"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
