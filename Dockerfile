# syntax=docker/dockerfile:1
#
# fullstory-user-sync worker image.
#
#   docker build -t fullstory-user-sync:0.1.0 .
#   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=... -e KAFKA_TOPICS=... \
#     -e FULLSTORY_API_KEY=... -p 8080:8080 fullstory-user-sync:0.1.0
#
# Stage 1 builds the project wheel and the wheels of its dependencies.
# Stage 2 installs them into a virtualenv from those local wheels only
# (--no-index), so the final image gets no compiler, no source tree and
# no wheel files. confluent-kafka's manylinux wheel bundles librdkafka,
# so no apt packages are needed.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build --
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

COPY pyproject.toml README.md ./
# worker/schemas is a symlink to ../schemas: copy the real directory too,
# to the same relative place, before the wheel is built so that the
# *.avsc package data resolves and lands inside the wheel.
COPY schemas/ schemas/
COPY worker/ worker/
COPY fullstory_sandbox/ fullstory_sandbox/

# `pip wheel .` builds in-tree (no sdist step), so the symlink is followed.
RUN pip wheel --wheel-dir /wheels .

# ---------------------------------------------------------------- final --
FROM ${PYTHON_IMAGE} AS final

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin app

# The wheels are bind-mounted from the build stage for this one step, so
# they never become a layer of the final image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links=/wheels fullstory-user-sync \
 && /opt/venv/bin/python -c "import importlib.resources as r, worker, fullstory_sandbox; \
assert any(f.name.endswith('.avsc') for f in r.files('worker').joinpath('schemas').iterdir()), \
'worker/schemas/*.avsc missing from the wheel'"

USER 10001:10001

EXPOSE 8080

ENTRYPOINT ["fullstory-user-sync"]
CMD ["run"]
