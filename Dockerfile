#
# fullstory-user-sync worker image.
#
#   scripts/build_image.sh            # docker/podman/buildah build with every build arg below
#   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=... -e KAFKA_TOPICS=... \
#     -e FULLSTORY_API_KEY=... -p 8080:8080 fullstory-user-sync:0.1.0
#
# Reproducible: the base image is pinned by digest (PYTHON_IMAGE, refused otherwise), every
# Python package comes from requirements/*.lock by hash (--require-hashes --no-deps: nothing
# is resolved at build time, and the only network used is the package index), and with
# SOURCE_DATE_EPOCH set the wheel and the .pyc files carry no build time. No `# syntax=`
# line: it would make BuildKit pull a frontend image; the built-in frontend reads this file.
#
# Stage `build` installs the runtime lock into /opt/venv (a venv without pip), builds the
# project wheel with the locked build backend and installs it there. Stage `final` copies
# /opt/venv alone onto the same base, less pip and setuptools. confluent-kafka's manylinux
# wheel bundles librdkafka, so the final stage needs no apt packages; the build stage installs
# a C compiler for the worker's compiled Avro reader (worker/events/_user_change.c), which stays behind.

# Bump by digest (`docker buildx imagetools inspect python:3.11-slim` prints the index digest,
# valid for amd64 and arm64); a tag alone moves under you and is refused below.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# ---------------------------------------------------------------- build --
FROM ${PYTHON_IMAGE} AS build
ARG PYTHON_IMAGE
# Set it (`git log -1 --format=%ct`) and the wheel's zip entries and the .pyc files (checked
# hashes instead of mtimes) come out the same on every build of one commit.
ARG SOURCE_DATE_EPOCH

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

RUN python -c "import re, sys; ref = sys.argv[1]; \
re.fullmatch(r'[^@\s]+@sha256:[0-9a-f]{64}', ref) or sys.exit( \
f'PYTHON_IMAGE must be pinned by digest (python:3.11-slim@sha256:<64 hex>), got {ref!r}')" \
    "${PYTHON_IMAGE}"

# gcc for worker/events/_user_change.c. Not pinned to a version: the Debian release is fixed by the
# base image's digest, and its point releases replace old package versions on the mirrors.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# The locks first, so that a change to the code alone reuses the dependency layer.
COPY requirements/build.lock requirements/runtime.lock requirements/
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes --no-deps -r requirements/build.lock \
 && python -m venv --without-pip /opt/venv \
 && /opt/build/bin/pip --python /opt/venv/bin/python install \
      --require-hashes --no-deps -r requirements/runtime.lock

COPY pyproject.toml README.md ./
# worker/schemas is a symlink to ../schemas: copy the real directory too, to the same relative
# place, so that the *.avsc package data resolves and lands inside the wheel.
COPY schemas/ schemas/
COPY worker/ worker/

# The wheel's own dependencies are all in the runtime lock (pip check proves it), so it goes
# in with --no-deps from the local file only. The checks after it run with -P, so that they
# import the installed wheel, not the source tree in /src: the package data is in it, and so
# is the compiled Avro reader, which the worker uses.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/build/bin/pip --python /opt/venv/bin/python install --no-deps --no-index /wheels/*.whl \
 && /opt/build/bin/pip --python /opt/venv/bin/python check \
 && /opt/venv/bin/python -P -c "import importlib.resources as r, importlib.util as u; \
assert any(f.name.endswith('.avsc') for f in r.files('worker').joinpath('schemas').iterdir()), \
'worker/schemas/*.avsc missing from the wheel'; \
stray = [m for m in ('fullstory_sandbox', 'tests', 'pip', 'setuptools') if u.find_spec(m)]; \
assert not stray, f'not for the runtime venv: {stray}'; \
from worker.events.decode import Decoder, load_reader_schema; \
assert Decoder(load_reader_schema()).reader == 'compiled', 'worker/events/_user_change.c not built'"

# ---------------------------------------------------------------- final --
FROM ${PYTHON_IMAGE} AS final
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=
ARG CREATED=
ARG SOURCE=

LABEL org.opencontainers.image.title="fullstory-user-sync" \
      org.opencontainers.image.description="Kafka consumer-group worker that imports user changes into FullStory, committing offsets only after FullStory acknowledged them" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The base image's pip, setuptools and wheel (and ensurepip's copies of them) go: the worker
# needs none of them at run time, and an installer in the image is one more thing to patch.
RUN python -m pip uninstall --yes --no-input --disable-pip-version-check pip setuptools wheel \
 && rm -f /usr/local/lib/python3*/ensurepip/_bundled/*.whl \
 && python -c "import importlib.util as u; \
assert not [m for m in ('pip', 'setuptools', 'wheel') if u.find_spec(m)]" \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin app

# /opt/venv's scripts name /usr/local/bin/python, which is the same base image here.
COPY --from=build /opt/venv /opt/venv

USER 10001:10001

EXPOSE 8080

# Exec form: the worker is PID 1 and receives SIGTERM itself. worker/cli.py handles SIGTERM and
# SIGINT (drain, commit, leave the group, exit 0) and starts no child processes, so there are no
# zombies to reap and no init (tini) is needed.
ENTRYPOINT ["/opt/venv/bin/fullstory-user-sync"]
CMD ["run"]
