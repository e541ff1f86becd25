"""Render the Helm chart with the real helm: ``$HELM``, else the binary that
``scripts/check_chart.sh`` builds into ``.tools/``. A missing helm fails these tests rather
than skipping them: ``make test`` builds it first, so its absence is a broken setup."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "fullstory-user-sync"
MINIMAL = CHART / "ci" / "minimal-values.yaml"
FULL = CHART / "ci" / "full-values.yaml"
DEBEZIUM = CHART / "ci" / "debezium-values.yaml"
STATIC = CHART / "ci" / "static-values.yaml"


def helm_path() -> Path:
    if os.environ.get("HELM"):
        return Path(os.environ["HELM"])
    built = sorted((ROOT / ".tools").glob("helm-*/helm"))
    return built[-1] if built else ROOT / ".tools" / "helm-missing" / "helm"


class Rendered:
    """One ``helm template`` run: its exit status, stderr and the manifests by kind/name."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.ok = proc.returncode == 0
        self.error = proc.stderr
        self.docs = [d for d in yaml.safe_load_all(proc.stdout) if d] if self.ok else []

    def kinds(self) -> set[str]:
        return {d["kind"] for d in self.docs}

    def one(self, kind: str) -> dict:
        found = [d for d in self.docs if d["kind"] == kind]
        assert len(found) == 1, (kind, self.error or sorted(self.kinds()))
        return found[0]

    def workload(self) -> dict:
        """The worker's Deployment, or its StatefulSet (staticMembership.enabled): one of them."""
        found = [d for d in self.docs if d["kind"] in ("Deployment", "StatefulSet")]
        assert len(found) == 1, self.error or sorted(self.kinds())
        return found[0]

    def env(self) -> dict[str, dict]:
        """The worker container's env, by name."""
        container = self.workload()["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e for e in container.get("env", [])}


Render = Callable[..., Rendered]


@pytest.fixture(scope="session")
def helm() -> Path:
    path = helm_path()
    if not path.is_file():
        pytest.fail(f"helm not found at {path}: run `make chart-check` (builds it) or set HELM")
    return path


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """``render(*values_files, set={"a.b": "v"}, set_json={...})`` -> Rendered."""

    def run(*files: Path, set: dict[str, str] | None = None, set_json=None) -> Rendered:
        cmd = [str(helm), "template", "rel", str(CHART)]
        for f in files:
            cmd += ["-f", str(f)]
        for key, value in (set or {}).items():
            cmd += ["--set-string" if isinstance(value, str) else "--set", f"{key}={value}"]
        for key, value in (set_json or {}).items():
            cmd += ["--set-json", f"{key}={value}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        return Rendered(proc)

    return run
