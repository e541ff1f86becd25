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
#      from the image's build context with the locked backend, holding no sandbox and no tests;
#      `python -m worker --help` running from it. Every runtime pin must also have a hashed
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
WORK=$(mktemp -d "${TMPDIR:-/tmp}/image-check.XXXXXX")
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
grep -q '"${PYTHON_IMAGE}"' Dockerfile \
    || fail "Dockerfile: the build stage no longer refuses a PYTHON_IMAGE without a digest"
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

step "build the project wheel from the image's build context"
# What the Dockerfile COPYs, nothing else (worker/schemas stays a symlink to ../schemas).
mkdir "$WORK/src"
cp -a pyproject.toml README.md schemas worker "$WORK/src/"
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 315532800) \
    "$WORK/build/bin/pip" wheel -q --no-index --no-deps --no-build-isolation \
    --wheel-dir "$WORK/wheels" "$WORK/src"
"$WORK/build/bin/python" - "$WORK"/wheels/*.whl <<'EOF' || fail "the project wheel holds what the image must not ship"
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
problems = [n for n in names if n.split("/")[0] in ("fullstory_sandbox", "tests", "sandbox", "scripts")]
if not any(n.startswith("worker/schemas/") and n.endswith(".avsc") for n in names):
    problems.append("worker/schemas/*.avsc missing")
entry_points = "".join(
    zipfile.ZipFile(sys.argv[1]).read(n).decode() for n in names if n.endswith("entry_points.txt")
)
if "fullstory-sandbox" in entry_points:
    problems.append("entry point fullstory-sandbox")
for p in problems:
    print(f"image-check: wheel: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

step "install the wheel offline and run the worker from it"
"$WORK/build/bin/pip" --python "$WORK/venv/bin/python" install -q --no-index --no-deps "$WORK"/wheels/*.whl
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

step "ok"
