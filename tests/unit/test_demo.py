"""``make demo`` when the local broker cannot start: the broker script's own message, not a
traceback (scripts/demo.py, scripts/demo_tools.py)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _executable(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_a_failing_maven_step_ends_the_demo_with_the_broker_scripts_message(tmp_path):
    """A first run whose Maven cannot resolve the broker's jars (offline, a proxy, a mirror
    down): the demo stops with kafka.sh's exit status, Maven's error and kafka.sh's line
    saying what failed and where the full output is, and no Python traceback."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(
        bin_dir / "mvn", 'echo "[ERROR] Could not transfer artifact kafka_2.13: offline"\nexit 1'
    )
    _executable(bin_dir / "java", "exit 0")  # found on PATH; never run before the jars
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "KAFKA_LIBS_DIR")}
    env |= {"PATH": f"{bin_dir}:{env['PATH']}", "KAFKA_STATE_DIR": str(tmp_path / "kafka")}

    done = subprocess.run(
        [sys.executable, "scripts/demo.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "[ERROR] Could not transfer artifact kafka_2.13: offline" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("kafka.sh: error: Maven could not resolve the jars"), last
    assert "left running" not in done.stdout  # nothing was started
