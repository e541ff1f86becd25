import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "KAFKA_TOPICS": "t",
    "FULLSTORY_API_KEY": "top-secret-key",
}


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "FULLSTORY_"))}
    return subprocess.run(
        [sys.executable, "-m", "worker", "run"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("missing", "extra"),
    [
        ("KAFKA_TOPICS", {}),
        ("FULLSTORY_API_KEY", {}),
        ("BATCH_MAX_USERS", {"BATCH_MAX_USERS": "0"}),
        ("KAFKA_CFG_SECURITY_PROTOCOL", {"KAFKA_CFG_SECURITY_PROTOCOL": "SASL_SSLX"}),
    ],
    ids=["no-topics", "no-api-key", "bad-batch-size", "bad-librdkafka-value"],
)
def test_bad_configuration_exits_2_with_one_line_naming_the_variable(missing, extra):
    """Operators see exactly which variable is wrong, before anything connects."""
    env = {k: v for k, v in BASE.items() if k != missing} | extra | {"HTTP_PORT": "0"}
    done = _run(env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and missing in lines[0]
    assert "top-secret-key" not in done.stderr + done.stdout
