#!/usr/bin/env bash
# make image-check: what can be proven about the image without a container engine.
#
#   1. the Dockerfile: hadolint, no `# syntax=` line (BuildKit would pull a frontend image for
#      it), a base image pinned by digest, a non-root last USER;
#   2. the locks: in step with the pyproject files, and remade by their header command
#      (scripts/check_locks.py --rerun);
#   3. the runtime install, done the Dockerfile's way in a throwaway venv: the locks'
#      packages downloaded by hash (cached between runs in $IMAGE_CHECK_CACHE), then installed
#      offline with --require-hashes --no-deps into a venv without pip; the project wheel built
#      with the locked backend from what the Dockerfile COPYs and from the whole checkout (what
#      `pip install .` ships), holding no sandbox and no tests; `python -m worker --help`
#      running from the venv. Every runtime pin must also have a hashed
#      linux aarch64 wheel for CPython 3.11 (the lock serves both architectures).
#
# PY is the dev venv's python (hadolint, uv and packaging come from test.lock); PYTHON the
# interpreter the throwaway venvs are made from.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
PYTHON=${PYTHON:-python3}
BIN=$(dirname "$PY")
CACHE=${IMAGE_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fullstory-user-sync/image-check}
export WORK; WORK=$(mktemp -d "${TMPDIR:-/tmp}/image-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

step() { printf 'image-check: %s\n' "$*"; }
fail() { printf 'image-check: FAILED: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------ Dockerfile --
step "hadolint Dockerfile"
"$BIN/hadolint" --failure-threshold style Dockerfile || fail "hadolint found problems in Dockerfile"
if grep -nEi '^#[[:space:]]*syntax[[:space:]]*=' Dockerfile; then
    fail "Dockerfile: drop the '# syntax=' line (it makes BuildKit pull a frontend image)"
fi
default=$(sed -nE 's/^ARG PYTHON_IMAGE=(.*)$/\1/p' Dockerfile)
[[ $default =~ ^[^@[:space:]]+@sha256:[0-9a-f]{64}$ ]] \
    || fail "Dockerfile: ARG PYTHON_IMAGE default '$default' is not pinned by digest (NAME:TAG@sha256:<64 hex>)"
# The build stage's refusal of a tag, run here as the build would run it (continuation lines
# joined, PYTHON_IMAGE from the environment): a tag must fail, the default must pass.
mkdir -p "$WORK/pybin" && ln -s "$(command -v "$PYTHON")" "$WORK/pybin/python"
"$PYTHON" - "$default" <<'EOF' || fail "Dockerfile: the build stage must refuse a PYTHON_IMAGE without a digest"
import os, subprocess, sys
text = open("Dockerfile").read().replace("\\\n", "")
runs = [line[4:] for line in text.splitlines() if line.startswith("RUN ") and "${PYTHON_IMAGE}" in line]
if len(runs) != 1:
    sys.exit(f"image-check: Dockerfile: {len(runs)} RUN steps read PYTHON_IMAGE; one must check it")
env = {"PATH": os.environ["WORK"] + "/pybin:/usr/bin:/bin"}
def passes(ref: str) -> bool:
    return subprocess.run(["sh", "-c", runs[0]], env={**env, "PYTHON_IMAGE": ref},
                          capture_output=True).returncode == 0
bad = [ref for ref in ("python:3.11-slim", "python@sha256:abc", sys.argv[1] + " ") if passes(ref)]
if bad or not passes(sys.argv[1]):
    sys.exit(f"image-check: Dockerfile: the digest check accepts {bad} or refuses {sys.argv[1]!r}")
EOF
last_user=$(sed -nE 's/^USER[[:space:]]+([^[:space:]]+).*/\1/p' Dockerfile | tail -n1)
[[ -n $last_user && ${last_user%%:*} != root && ${last_user%%:*} != 0 ]] \
    || fail "Dockerfile: the final stage must run as a non-root USER (last USER: '${last_user:-none}')"

# ----------------------------------------------------------------- locks --
step "requirements/*.lock against pyproject.toml, sandbox/pyproject.toml, requirements/build.in"
"$PY" scripts/check_locks.py --rerun --uv "$BIN/uv" || fail "the locks are out of step (make lock)"

# ------------------------------------------------------- runtime install --
step "download the locked runtime and build packages by hash (cache: $CACHE)"
mkdir -p "$CACHE/native" "$CACHE/aarch64"
"$PYTHON" -m pip download -q --require-hashes --no-deps --only-binary=:all: \
    -d "$CACHE/native" -r requirements/runtime.lock -r requirements/build.lock \
    || fail "a locked package could not be downloaded with its hash"
"$PYTHON" -m pip download -q --require-hashes --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --platform any \
    -d "$CACHE/aarch64" -r requirements/runtime.lock \
    || fail "runtime.lock has no hashed linux aarch64 wheel for a pin (CPython 3.11)"

step "install them offline, the Dockerfile's way"
"$PYTHON" -m venv "$WORK/build"
"$PYTHON" -m venv --without-pip "$WORK/venv"
offline=(--no-index --find-links "$CACHE/native")
"$WORK/build/bin/pip" install -q "${offline[@]}" --require-hashes --no-deps -r requirements/build.lock
"$WORK/build/bin/pip" --python "$WORK/venv/bin/python" install -q "${offline[@]}" \
    --require-hashes --no-deps -r requirements/runtime.lock

step "build the project wheel from the image's build context, and from the whole checkout"
# The image's context: what the build stage COPYs, each to its own relative path (worker/schemas
# stays a symlink to ../schemas), less the compiled modules .dockerignore leaves out. The
# checkout's: every tracked file, as `pip install .` sees it.
mkdir -p "$WORK/context" "$WORK/checkout"
sed -nE '/^COPY /{/--from/d;s/^COPY[[:space:]]+//;s/[[:space:]]+[^[:space:]]+$//;p}' Dockerfile \
    | tr ' ' '\n' | sed 's:/$::' | grep . | tar -cf - --exclude='*.so' --exclude=__pycache__ -T - \
    | tar -xf - -C "$WORK/context"
git ls-files -z | tar --null -cf - -T - | tar -xf - -C "$WORK/checkout"
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 315532800)
for tree in context checkout; do
    SOURCE_DATE_EPOCH=$epoch "$WORK/build/bin/pip" wheel -q --no-index --no-deps \
        --no-build-isolation --wheel-dir "$WORK/wheels-$tree" "$WORK/$tree"
    "$WORK/build/bin/python" - "$tree" "$WORK/wheels-$tree"/*.whl <<'EOF' \
        || fail "the project wheel holds what the image must not ship"
import sys, zipfile
tree, wheel = sys.argv[1], zipfile.ZipFile(sys.argv[2])
names = wheel.namelist()
top = ("fullstory_sandbox", "tests", "sandbox", "scripts")
problems = sorted({n.split("/")[0] + "/" for n in names if n.split("/")[0] in top})
if not any(n.startswith("worker/schemas/") and n.endswith(".avsc") for n in names):
    problems.append("worker/schemas/*.avsc missing")
if any("fullstory-sandbox" in wheel.read(n).decode() for n in names if n.endswith("entry_points.txt")):
    problems.append("the fullstory-sandbox entry point")
for p in problems:
    print(f"image-check: wheel built from the {tree}: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
done

step "install the wheel offline and run the worker from it"
"$WORK/build/bin/pip" --python "$WORK/venv/bin/python" install -q --no-index --no-deps "$WORK"/wheels-context/*.whl
"$WORK/build/bin/pip" --python "$WORK/venv/bin/python" check \
    || fail "the runtime venv misses a dependency of the wheel: runtime.lock is incomplete"
# From $WORK, so that the checkout's own packages are not importable from the working directory.
(cd "$WORK" && venv/bin/python -c "
import importlib.util as u, sys
stray = [m for m in ('fullstory_sandbox', 'tests', 'pip', 'setuptools', 'wheel') if u.find_spec(m)]
sys.exit(f'image-check: runtime venv holds {stray}' if stray else 0)") \
    || fail "the runtime venv holds packages the image must not ship"
(cd "$WORK" && venv/bin/python -m worker --help >/dev/null && venv/bin/fullstory-user-sync --help >/dev/null) \
    || fail "python -m worker --help does not run from the runtime venv"
# The wheel carries the compiled Avro reader (worker/events/_user_change.c), and the worker uses it:
# the build stage asserts the same. environ={}: whatever FSUS_NO_EXTENSIONS says in this shell.
(cd "$WORK" && venv/bin/python -c "
from worker.events.decode import Decoder, load_reader_schema
assert Decoder(load_reader_schema(), environ={}).reader == 'compiled'") \
    || fail "the wheel lacks worker/events/_user_change.c compiled, or the worker does not use it"

step "ok"
