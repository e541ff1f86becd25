#!/usr/bin/env bash
# Build the image where a container engine runs (this project's machines have none):
#
#   scripts/build_image.sh [--print] [TAG]       # TAG: fullstory-user-sync:<version>
#
# ENGINE picks docker, podman or buildah (default: the first one found); PYTHON_IMAGE, a
# reference pinned by digest, replaces the Dockerfile's default base image. Every OCI label
# comes from the checkout: version from pyproject.toml, revision the commit, created the
# commit's time (not the build's, so that two builds of one commit agree), source the
# `origin` remote. --print shows the command instead of running it.
set -euo pipefail
cd "$(dirname "$0")/.."

print=false
if [[ ${1:-} == --print ]]; then print=true; shift; fi

version=$(sed -nE 's/^version = "(.*)"$/\1/p' pyproject.toml | head -n1)
tag=${1:-fullstory-user-sync:$version}
revision=$(git rev-parse HEAD)
epoch=$(git log -1 --format=%ct)
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
source=$(git remote get-url origin 2>/dev/null || true)
if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
    echo "build_image: the work tree has uncommitted changes; the revision label names $revision" >&2
fi

engine=${ENGINE:-}
if [[ -z $engine ]]; then
    for candidate in docker podman buildah; do
        if command -v "$candidate" >/dev/null; then engine=$candidate; break; fi
    done
fi

args=(build
    --build-arg "VERSION=$version"
    --build-arg "REVISION=$revision"
    --build-arg "CREATED=$created"
    --build-arg "SOURCE=$source"
    --build-arg "SOURCE_DATE_EPOCH=$epoch")
if [[ -n ${PYTHON_IMAGE:-} ]]; then
    [[ $PYTHON_IMAGE =~ ^[^@[:space:]]+@sha256:[0-9a-f]{64}$ ]] || {
        echo "build_image: PYTHON_IMAGE must be pinned by digest (NAME:TAG@sha256:<64 hex>), got '$PYTHON_IMAGE'" >&2
        exit 2
    }
    args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
fi
args+=(--tag "$tag" .)

if $print; then
    printf '%q ' "${engine:-docker}" "${args[@]}"
    echo
    exit 0
fi
[[ -n $engine ]] || { echo "build_image: no docker, podman or buildah here; --print shows the command" >&2; exit 2; }
exec "$engine" "${args[@]}"
