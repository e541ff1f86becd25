"""The Makefile's targets against what it declares and what the docs tell people to run.

A target declared ``.PHONY`` without a rule is worse than a missing one: ``make`` prints
"Nothing to be done" and exits 0, so a user (or CI) believes the tests ran.
"""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "ARCHITECTURE.md", "helm/fullstory-user-sync/README.md")


def _makefile() -> str:
    return (ROOT / "Makefile").read_text()


def _phony() -> set[str]:
    return {
        name
        for line in re.findall(r"^\.PHONY:(.*)$", _makefile(), flags=re.MULTILINE)
        for name in line.split()
    }


def _rules() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):(?!=)", _makefile(), flags=re.MULTILINE))


def test_every_declared_target_has_a_rule():
    assert _phony(), "the Makefile declares no .PHONY targets"
    assert _phony() - _rules() == set(), "declared .PHONY but without a rule"


def test_every_make_command_the_docs_name_has_a_rule():
    named = {
        (doc, target)
        for doc in DOCS
        for target in re.findall(r"`make ([a-z][a-z-]*)", (ROOT / doc).read_text())
    }
    assert named, "the docs name no make command"
    assert {(doc, target) for doc, target in named if target not in _rules()} == set()


def test_make_test_integration_runs_the_integration_tier_as_make_test_runs_the_suite():
    """`make test-integration` starts the broker and runs tests/integration with the command
    `make test` runs the whole suite with (the same reader, the same pytest options)."""

    def dry_run(target: str) -> list[str]:
        done = subprocess.run(
            ["make", "-n", "-s", target],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.splitlines()

    integration = dry_run("test-integration")
    assert "bash scripts/kafka.sh start" in integration
    suite = dry_run("test")[-1]  # the whole suite, after lint and the checks
    assert suite.endswith(" tests"), suite
    assert suite.removesuffix(" tests") + " tests/integration" in integration
