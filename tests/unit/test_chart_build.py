"""scripts/check_chart.sh's helm build, as a user with Go sees it (`make chart-check`, `make
test`): go install, played by a stand-in, on a copy of the script so nothing is built here."""

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GO = """#!/bin/sh
if [ "$1" = env ]; then echo https://proxy.golang.org; exit 0; fi
echo "go: downloading helm.sh/helm/v3 v3.19.5" >&2
echo "go: helm.sh/helm/v3@v3.19.5: connection refused" >&2
exit 1
"""


def test_a_cold_helm_build_says_first_it_may_take_minutes_and_a_failed_one_stops(tmp_path):
    """Go prints nothing for minutes after its last `go: downloading`, so the script says
    first that a cold build may take a few minutes; when go fails, the check stops there with
    go's message and exit 1 instead of going on with a helm that was never built."""
    (tmp_path / "scripts").mkdir()
    for script in ("check_chart.sh", "go_tool.sh"):
        shutil.copy(ROOT / "scripts" / script, tmp_path / "scripts")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "go").write_text(GO)
    (bin_dir / "go").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "HELM"}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"

    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "check_chart.sh"), "--helm"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    lines = done.stderr.splitlines()
    assert "may take a few minutes" in lines[0]
    assert lines[1] == "go: downloading helm.sh/helm/v3 v3.19.5"
    assert done.returncode == 1
    assert "connection refused" in done.stderr
    assert done.stdout == ""  # no path of a helm that does not exist
