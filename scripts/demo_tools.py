"""What the demos share: this checkout's servers, the log directory, the closing note.

``make demo`` (scripts/demo.py) and ``make demo-debezium`` (scripts/demo_debezium.py) start
the servers with the project's scripts, which reuse a server this checkout already runs; the
demos leave them running for the next run and say how to stop them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.kafka_tools import Broker  # noqa: E402

KAFKA_SH = ROOT / "scripts" / "kafka.sh"
LOG_DIR = ROOT / ".demo"
# A cold start resolves the broker's jars with Maven first (about a minute).
START_TIMEOUT_S = 900

# What stops each server a demo leaves running (`make clean` stops them all and removes
# their state).
STOP = {
    "Kafka broker": "bash scripts/kafka.sh stop",
    "PostgreSQL": "bash scripts/postgres.sh stop",
    "Kafka Connect": "bash scripts/connect.sh stop",
}


def start_server(script: Path, env: dict[str, str] | None = None) -> str:
    """``<script> start``: the address it prints last. Its progress and its errors reach the
    terminal as it writes them; when it fails the demo ends there, with the script's exit
    status and its own message last on screen, not a traceback (from a worker thread too:
    ``Future.result()`` raises its ``SystemExit`` again in the caller)."""
    try:
        done = subprocess.run(
            ["bash", str(script), "start"],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        sys.exit(f"==> {script.name} start did not finish within {START_TIMEOUT_S} s")
    if done.returncode != 0:
        sys.exit(done.returncode)
    return done.stdout.strip().splitlines()[-1]


def start_broker() -> Broker:
    """This checkout's broker (scripts/kafka.sh start: started, or the running one)."""
    print("==> starting the local Kafka broker (first run resolves its jars with Maven)")
    return Broker(start_server(KAFKA_SH))


def log_file(name: str) -> Path:
    """A fresh log file under .demo/."""
    LOG_DIR.mkdir(exist_ok=True)
    path = LOG_DIR / name
    path.unlink(missing_ok=True)
    return path


def left_running(servers: dict[str, str]) -> None:
    """Name the servers (name -> address) left running and how to stop each."""
    print("    left running for the next run:")
    for name, address in servers.items():
        print(f"      {name:<14} {address:<40} stop: {STOP[name]}")
    print("      (`make clean` stops them too, and removes their state and .venv)")
