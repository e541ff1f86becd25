#!/usr/bin/env bash
# The chart's alerts under `promtool test rules`: build promtool once (cached in .tools/, as
# scripts/check_chart.sh builds helm), render the chart's PrometheusRule with ci/full-values.yaml
# (namespace default, job fs-sync, alert label team: data-platform) into a rules file, and run
# the unit tests in tests/chart/alerts/*.yaml against it: each alert fires on synthetic series
# that should fire it and stays quiet on healthy ones.
#
#   bash scripts/check_alerts.sh              # everything
#   bash scripts/check_alerts.sh --promtool   # only build (or find) promtool and print its path
#
# PROMTOOL=/path/to/promtool skips the build; HELM likewise (else check_chart.sh --helm).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CHART="$ROOT/helm/fullstory-user-sync"
# Prometheus 3.x's Go module versions are v0.3MM.P for Prometheus 3.MM.P.
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"

# shellcheck source=scripts/go_tool.sh
source "$ROOT/scripts/go_tool.sh"

promtool_bin() {
    if [[ -n "${PROMTOOL:-}" ]]; then
        echo "$PROMTOOL"
    else
        go_tool check_alerts promtool github.com/prometheus/prometheus/cmd/promtool \
            "$PROMETHEUS_VERSION"
    fi
}

PROMTOOL="$(promtool_bin)"
if [[ "${1:-}" == "--promtool" ]]; then
    echo "$PROMTOOL"
    exit 0
fi
HELM="${HELM:-$(bash "$ROOT/scripts/check_chart.sh" --helm)}"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

echo "== the chart's PrometheusRule, rendered (ci/full-values.yaml)"
"$HELM" template check "$CHART" -f "$CHART/ci/full-values.yaml" \
    --show-only templates/prometheusrule.yaml >"$out/prometheusrule.yaml"
# promtool reads a Prometheus rules file: the PrometheusRule's spec ({groups: [...]}).
"$PY" -c 'import sys, yaml; yaml.safe_dump(yaml.safe_load(open(sys.argv[1]))["spec"], open(sys.argv[2], "w"))' \
    "$out/prometheusrule.yaml" "$out/rules.yaml"
"$PROMTOOL" check rules "$out/rules.yaml"

echo "== promtool test rules (tests/chart/alerts)"
cp "$ROOT"/tests/chart/alerts/*.yaml "$out/"
cd "$out"
tests=()
for file in "$ROOT"/tests/chart/alerts/*.yaml; do
    tests+=("$(basename "$file")")
done
"$PROMTOOL" test rules "${tests[@]}"
