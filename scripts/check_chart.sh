#!/usr/bin/env bash
# Chart checks: build helm once (cached), lint and render the chart with each ci/ values file
# (minimal, full, debezium, static), validate the manifests offline against Kubernetes' JSON schemas,
# and run the chart's unit tests (tests/chart), which render it with helm and assert on the
# manifests.
#
#   bash scripts/check_chart.sh            # everything
#   bash scripts/check_chart.sh --helm     # only build (or find) helm and print its path
#
# HELM=/path/to/helm skips the build. KUBERNETES_VALIDATE overrides the validator
# (default: .venv/bin/kubernetes-validate, from the `test` extra).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CHART="$ROOT/helm/fullstory-user-sync"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
# The oldest Kubernetes the chart supports in full (PDB unhealthyPodEvictionPolicy) and the
# validator's newest.
KUBE_VERSIONS="${KUBE_VERSIONS:-1.27.0 1.37.0}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
KV="${KUBERNETES_VALIDATE:-$ROOT/.venv/bin/kubernetes-validate}"
# The ci/<name>-values.yaml files rendered: required values only, every option on, a Debezium
# source (its field mapping's ConfigMap and mount), static membership (a StatefulSet).
VALUES_FILES="minimal full debezium static"

# shellcheck source=scripts/go_tool.sh
source "$ROOT/scripts/go_tool.sh"

helm_bin() {
    if [[ -n "${HELM:-}" ]]; then
        echo "$HELM"
    else
        go_tool check_chart helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
    fi
}

HELM="$(helm_bin)"
export HELM
if [[ "${1:-}" == "--helm" ]]; then
    echo "$HELM"
    exit 0
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

echo "== helm lint ($VALUES_FILES values)"
for values in $VALUES_FILES; do
    "$HELM" lint --strict "$CHART" -f "$CHART/ci/$values-values.yaml"
done

# Helm's lint mode turns `fail` into an [INFO] line by design, so without the required
# values lint passes; `helm template` must fail, with the chart's message.
echo "== without the required values: the chart's message"
if "$HELM" template check "$CHART" >"$out/none.yaml" 2>"$out/none.err"; then
    echo "check_chart: helm template rendered without the required values" >&2
    exit 1
fi
grep -q "missing required values: kafka.bootstrapServers" "$out/none.err" || {
    cat "$out/none.err" >&2
    exit 1
}

echo "== helm template + Kubernetes schemas ($KUBE_VERSIONS)"
[[ -x "$KV" ]] || { echo "check_chart: $KV missing: install the test extra (make venv)" >&2; exit 1; }
for values in $VALUES_FILES; do
    "$HELM" template check "$CHART" -f "$CHART/ci/$values-values.yaml" >"$out/$values.yaml"
    for version in $KUBE_VERSIONS; do
        # --strict refuses unknown fields. Custom resources (ScaledObject, ServiceMonitor,
        # PrometheusRule) have no schema here: the validator warns and tests/chart checks them.
        "$KV" --strict --quiet -k "$version" "$out/$values.yaml"
    done
done

echo "== chart unit tests (tests/chart)"
"$PY" -m pytest -q -p no:cacheprovider "$ROOT/tests/chart"
