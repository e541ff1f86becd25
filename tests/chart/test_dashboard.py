"""The Grafana dashboard the chart ships (grafanaDashboard.enabled): every query is PromQL that
names only metrics the worker exports, scraped from the worker's own health server; the
committed JSON is what scripts/dashboard.py builds; the ConfigMap carries the sidecar's label.
The PrometheusRule's alerts are held to the same metric names."""

from __future__ import annotations

import importlib.util
import json
import re
import urllib.request
from collections.abc import Iterator
from types import ModuleType

import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.chart.conftest import CHART, FULL, MINIMAL, ROOT
from worker.runtime.health import Health
from worker.runtime.health_server import HealthServer
from worker.runtime.metrics import Metrics

DASHBOARD = CHART / "dashboards" / "fullstory-user-sync.json"
# Series the alerts read that Prometheus and kube-state-metrics export, not the worker.
NOT_THE_WORKERS = {"up", "kube_pod_status_ready"}
# What an operator looks at first (issue 19): each must be on the dashboard.
ESSENTIAL = {
    "fsus_consumer_lag",
    "fsus_records_consumed_total",
    "fsus_jobs_in_flight",
    "fsus_dead_letters_total",
    "fsus_fullstory_retries_total",
    "fsus_last_commit_timestamp_seconds",
    "fsus_org_budget_share",
    "fsus_health_connections_refused_total",
}
# Grafana's variables, as a value PromQL accepts in their place.
_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboard", ROOT / "scripts" / "dashboard.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exported() -> Iterator[set[str]]:
    """The series names a worker's /metrics answers with: its Metrics registry served by the
    real HealthServer on 127.0.0.1 and scraped over HTTP, as Prometheus does. A labelled
    family no code path has touched yet still has its TYPE line, so every family counts."""
    metrics = Metrics()
    server = HealthServer(Health(liveness_timeout_s=60), "127.0.0.1", 0, metrics.exposition)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    finally:
        server.close()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    assert "fsus_dead_letters_total" in names  # the scrape worked and was read
    yield names


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects; fails if it is not PromQL."""
    for variable, value in _VARIABLES.items():
        expr = expr.replace(variable, value)
    expr = re.sub(r"\$\{?(\w+)\}?", r"\1", expr)  # $namespace -> namespace: a label value
    parsed = promql_parser.parse(expr)
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)

    promql_parser.walk(parsed, visit)
    return names


def dashboard_queries(dashboard: dict) -> list[str]:
    """Every panel target's expression and every query variable's selector."""
    queries = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"])
            assert found, variable["query"]
            queries.append(found.group(1))
    return queries


def test_every_dashboard_query_is_promql_on_metrics_the_worker_exports(exported):
    """A panel on a renamed or misspelt metric shows "No data" forever without an error:
    each query parses and names only series the worker answers with, and the panels an
    operator looks at first (lag, throughput, jobs, dead letters, retries, commit age,
    budget share, health refusals) are there."""
    queries = dashboard_queries(json.loads(DASHBOARD.read_text()))
    assert len(queries) >= 20
    used: set[str] = set()
    for expr in queries:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)
        used |= names
    assert used >= ESSENTIAL, ESSENTIAL - used


def test_a_misspelt_metric_or_broken_query_is_caught(exported):
    """The checks above bite: a query with a name the worker does not export, or one
    that is not PromQL."""
    assert not metric_names('sum(fsus_dead_letter_total{job="$job"})') <= exported
    with pytest.raises(ValueError):
        metric_names("sum(rate(fsus_dead_letters_total[$__rate_interval])")


def test_committed_dashboard_is_what_the_script_builds():
    """Edit scripts/dashboard.py, then run it: the JSON is never edited by hand."""
    assert DASHBOARD.read_text() == load_script().render()


def test_chart_ships_the_dashboard_for_grafanas_sidecar(render):
    """Enabled, a ConfigMap with kube-prometheus-stack's sidecar label carries exactly the
    committed dashboard, with the annotations given (the sidecar's folder)."""
    rendered = render(FULL)
    configmaps = [
        d
        for d in rendered.docs
        if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"]
    ]
    assert len(configmaps) == 1, rendered.error
    configmap = configmaps[0]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Kafka"}
    shipped = json.loads(configmap["data"]["fullstory-user-sync.json"])
    assert shipped == json.loads(DASHBOARD.read_text())


def test_dashboard_is_off_by_default_and_its_label_and_namespace_follow_the_values(render):
    """Off unless asked for; a Grafana whose sidecar watches another label or namespace gets
    it there."""
    assert "ConfigMap" not in render(MINIMAL).kinds()
    rendered = render(
        MINIMAL,
        set={
            "grafanaDashboard.enabled": True,
            "grafanaDashboard.label": "my_dashboards",
            "grafanaDashboard.labelValue": "yes",
            "grafanaDashboard.namespace": "monitoring",
        },
    )
    configmap = rendered.one("ConfigMap")
    assert configmap["metadata"]["labels"]["my_dashboards"] == "yes"
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]
    assert configmap["metadata"]["namespace"] == "monitoring"


def test_every_alert_is_promql_on_metrics_the_worker_exports(render, exported):
    """An alert on a metric the worker does not export never fires: each rule names only
    the worker's series, besides Prometheus's up and kube-state-metrics' readiness."""
    rule = render(FULL).one("PrometheusRule")
    alerts = rule["spec"]["groups"][0]["rules"]
    assert alerts
    for alert in alerts:
        names = metric_names(alert["expr"])
        assert names - NOT_THE_WORKERS <= exported, (alert["alert"], names - exported)
