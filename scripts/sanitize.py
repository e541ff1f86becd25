"""``make sanitize``: the compiled reader built with AddressSanitizer and UBSan, under its tests.

    python scripts/sanitize.py                  # the tests below
    python scripts/sanitize.py -- PYTEST_ARGS   # other tests, on the same build

Builds each C extension ``pyproject.toml`` declares with ``-fsanitize=address,undefined`` into a
scratch directory outside the checkout (the in-place build the other tests import is never
touched), then runs pytest on the reader's differential tests and the decoder's tests with:

- ``LD_PRELOAD`` of the compiler's libasan: CPython is not built with ASan, and its runtime must
  be loaded before anything else;
- ``PYTHONMALLOC=malloc``: pymalloc hands out small objects (a short value's bytes) from its own
  arenas, inside which ASan sees no bounds; with malloc, a read past a value's trailing NUL
  (which CPython allocates with it) is a reported overflow;
- ``detect_leaks=0``: CPython leaves memory allocated at exit by design;
- ``-fno-sanitize-recover=undefined``: undefined behaviour aborts the run instead of printing;
- ``FSUS_NO_EXTENSIONS`` unset (the decoder would not use the module).

In that run this file is also a pytest plugin (``-p sanitize``): it puts the scratch build
first on ``worker.events``' package path and stops the run before any test unless
``worker.events._user_change`` then imports from there and carries ASan's instrumentation; the
header of the run names the file. Any memory error or undefined behaviour ends the run with a
report and a non-zero status, and so does a failing test.

What it sees: the reader's own loads and stores, and the libc copies ASan intercepts (a string
copied past the value's end). Not reads inside CPython's functions, which are not instrumented
(``PyFloat_Unpack8``, UTF-8 decoding of ASCII text): a wrong length check before one of those
shows only where a test's outcome changes, so a truncated string and a truncated double each
have a test of their own in test_user_change_reader.py.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/unit/events/test_user_change_reader.py", "tests/unit/events/test_decode.py"]
FLAGS = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=undefined",
    "-fno-omit-frame-pointer",
    "-O1",
    "-g",
]
MODULE = "worker.events._user_change"
# Set for the pytest run: the scratch directory the plugin takes the module from.
BUILD_DIR = "FSUS_SANITIZED_BUILD"
# In that run, once the plugin checked it: the sanitized module's file.
_sanitized: str | None = None


def build(scratch: Path) -> None:
    """Every extension of pyproject.toml, sanitized, under ``scratch`` (as its package path)."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    extensions = [
        Extension(
            ext["name"],
            ext["sources"],
            extra_compile_args=[*ext.get("extra-compile-args", []), *FLAGS],  # -O1 last wins
            extra_link_args=FLAGS,
        )
        for ext in declared["ext-modules"]
    ]
    command = build_ext(Distribution({"ext_modules": extensions}))
    command.build_lib = str(scratch)
    command.build_temp = str(scratch / "objects")
    command.ensure_finalized()
    command.run()


def libasan() -> str:
    """The ASan runtime of the compiler setuptools uses."""
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")[0]
    path = subprocess.run(
        [compiler, "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not Path(path).is_file():
        sys.exit(f"sanitize: {compiler} has no libasan.so (it printed {path!r})")
    return str(Path(path).resolve())


def main(argv: list[str]) -> int:
    tests = argv[argv.index("--") + 1 :] if "--" in argv else TESTS
    os.chdir(ROOT)  # pyproject's sources are relative to it
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fsus-sanitize-") as scratch:
        build(Path(scratch))
        env = {key: value for key, value in os.environ.items() if key != "FSUS_NO_EXTENSIONS"}
        env |= {
            "LD_PRELOAD": libasan(),
            "PYTHONMALLOC": "malloc",
            "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "scripts"), env.get("PYTHONPATH", "")]),
            BUILD_DIR: scratch,
        }
        # --capture=sys: a report goes to file descriptor 2, which pytest's default capture
        # would hold in a temporary file the aborted process never prints.
        pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "sanitize"]
        pytest += ["--capture=sys"]
        code = subprocess.run([*pytest, *tests], env=env, check=False).returncode
    verdict = "passed" if code == 0 else f"FAILED (exit status {code})"
    print(f"sanitize: {verdict} in {time.monotonic() - started:.0f} s")
    return code


# The pytest plugin, active only in the run main() starts.


def _sanitized_file() -> str:
    """Import the module from the scratch build, and check that it is the sanitized one."""
    import importlib

    import worker.events

    package_dir = Path(os.environ[BUILD_DIR], *MODULE.split(".")[:-1])
    worker.events.__path__.insert(0, str(package_dir))
    module = importlib.import_module(MODULE)
    where = Path(module.__file__ or "")
    if where.parent != package_dir:
        raise pytest.UsageError(f"{MODULE} was imported from {where}, not the sanitized build")
    if b"__asan_init" not in where.read_bytes():
        raise pytest.UsageError(f"{where} is not instrumented by AddressSanitizer")
    return str(where)


def pytest_configure(config: pytest.Config) -> None:
    global _sanitized
    if BUILD_DIR in os.environ:
        _sanitized = _sanitized_file()


def pytest_report_header() -> str | None:
    return f"sanitized reader: {_sanitized}" if _sanitized else None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A module imported again from elsewhere during the run would make its tests prove
    nothing about the sanitized build: the run fails."""
    if _sanitized is None:
        return
    now = getattr(sys.modules.get(MODULE), "__file__", None)
    if now != _sanitized:
        print(f"sanitize: {MODULE} is now {now}, not the sanitized {_sanitized}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
