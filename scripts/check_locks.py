"""Check requirements/*.lock against the pyproject files they were compiled from.

    python scripts/check_locks.py            # structure only, no network
    python scripts/check_locks.py --rerun    # also re-run each lock's header command

Structure: every pin carries a hash; every requirement of its sources (the worker's
dependencies, the test extra, the sandbox's, the build backend) is pinned in the lock with a
version it accepts; and the runtime pins are the same in test.lock, so the tests run on the
versions the image ships. --rerun compiles each lock again with the command in its header
(uv keeps the pins of the existing lock it is handed) and fails on any difference: a lock
that was edited by hand, or a pyproject change that `make lock` did not follow.
Exits 1 naming every problem.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def read_pins(lock: Path) -> tuple[dict[str, str], list[str]]:
    """name -> version of every pin in `lock`, and the pins that have no --hash."""
    pins: dict[str, str] = {}
    unhashed: list[str] = []
    current: str | None = None
    hashed = False
    for line in [*lock.read_text().splitlines(), ""]:
        match = PIN.match(line)
        if match or not line.startswith(" "):
            if current is not None and not hashed:
                unhashed.append(current)
            current, hashed = None, False
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = match.group(2)
        if current is not None and "--hash=sha256:" in line:
            hashed = True
    return pins, unhashed


def requirements_of() -> dict[str, list[Requirement]]:
    """What each lock must pin, read from the pyproject files and requirements/build.in."""
    worker = tomllib.loads((ROOT / "pyproject.toml").read_text())
    sandbox = tomllib.loads((ROOT / "sandbox" / "pyproject.toml").read_text())
    build = [
        Requirement(line)
        for line in (LOCKS / "build.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    backend = [Requirement(r) for r in worker["build-system"]["requires"]]
    runtime = [Requirement(r) for r in worker["project"]["dependencies"]]
    test = [Requirement(r) for r in worker["project"]["optional-dependencies"]["test"]]
    sandbox_deps = [Requirement(r) for r in sandbox["project"]["dependencies"]]
    return {
        "build.lock": backend + build,
        "runtime.lock": runtime,
        "test.lock": runtime + test + sandbox_deps + backend,
    }


def check_structure() -> list[str]:
    problems: list[str] = []
    pins_by_lock: dict[str, dict[str, str]] = {}
    for name, wanted in requirements_of().items():
        lock = LOCKS / name
        if not lock.exists():
            problems.append(f"{name}: missing (make lock)")
            continue
        pins, unhashed = read_pins(lock)
        pins_by_lock[name] = pins
        problems += [f"{name}: {pin} has no --hash" for pin in unhashed]
        for req in wanted:
            version = pins.get(canonicalize_name(req.name))
            if version is None:
                problems.append(f"{name}: {req} is not pinned (make lock)")
            elif not req.specifier.contains(version, prereleases=True):
                problems.append(f"{name}: {req.name}=={version} does not satisfy {req}")
    runtime, test = pins_by_lock.get("runtime.lock", {}), pins_by_lock.get("test.lock", {})
    for pkg, version in sorted(runtime.items()):
        if pkg in test and test[pkg] != version:
            problems.append(f"test.lock: {pkg}=={test[pkg]} but runtime.lock pins {version}")
    return problems


def header_command(lock: Path) -> list[str]:
    lines = lock.read_text().splitlines()
    if len(lines) < 2 or not lines[1].lstrip("# ").startswith("uv pip compile"):
        raise ValueError(f"{lock.name}: line 2 is not the `uv pip compile` command that made it")
    return shlex.split(lines[1].lstrip("# "))


def check_rerun(uv: str) -> list[str]:
    """Compile each lock again with its header command into a copy of it, and diff."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="check-locks-") as tmp:
        for lock in sorted(LOCKS.glob("*.lock")):
            try:
                argv = header_command(lock)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            out = Path(tmp) / lock.name
            shutil.copy(lock, out)  # uv keeps the pins of the lock it writes over
            argv = [a if a != f"requirements/{lock.name}" else str(out) for a in argv]
            argv = [uv, *argv[1:], "--quiet"]
            run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
            if run.returncode != 0:
                problems.append(f"{lock.name}: its header command failed:\n{run.stderr}")
                continue
            diff = list(
                difflib.unified_diff(
                    lock.read_text().splitlines()[2:],
                    out.read_text().splitlines()[2:],
                    f"requirements/{lock.name}",
                    "regenerated",
                    lineterm="",
                )
            )
            if diff:
                problems.append(
                    f"{lock.name}: differs from what its header command makes (make lock):\n"
                    + "\n".join(diff[:40])
                )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rerun", action="store_true", help="re-run each lock's header command")
    parser.add_argument("--uv", default=shutil.which("uv") or "uv", help="the uv to run")
    args = parser.parse_args()
    problems = check_structure()
    if args.rerun and not problems:
        problems += check_rerun(args.uv)
    for problem in problems:
        print(f"check_locks: {problem}", file=sys.stderr)
    if not problems:
        print("check_locks: requirements/*.lock match their sources")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
