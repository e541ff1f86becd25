"""The worker's Grafana dashboard, built with Grafana's own SDK (grafana-foundation-sdk), written
where the chart ships it as a ConfigMap (``grafanaDashboard.enabled``).

    python scripts/dashboard.py            # write helm/fullstory-user-sync/dashboards/...json
    python scripts/dashboard.py --check    # exit 1 if the committed file differs

tests/chart/test_dashboard.py holds the committed JSON equal to what this builds, every query to
metrics the worker exports, and each query to PromQL. The queries select one release's series
with the ``namespace`` and ``job`` variables (a ServiceMonitor sets ``job`` to the Service's
name, as the chart's alerts assume).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "helm" / "fullstory-user-sync" / "dashboards" / "fullstory-user-sync.json"
UID = "fullstory-user-sync"

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'namespace="$namespace",job="$job"'
RATE = "$__rate_interval"


def query(expr: str, legend: str = "") -> Dataquery:
    q = Dataquery().expr(expr).datasource(DATASOURCE)
    return q.legend_format(legend) if legend else q


def series(title: str, description: str, unit: str, *queries: Dataquery) -> Timeseries:
    panel = Timeseries().title(title).description(description).unit(unit).datasource(DATASOURCE)
    panel = panel.height(8).span(12)
    for ref, q in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(q.ref_id(ref))
    return panel


def stat(title: str, description: str, unit: str, expr: str) -> Stat:
    return (
        Stat()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .height(4)
        .span(6)
        .with_target(query(expr).ref_id("A"))
    )


def build() -> Dashboard:
    return (
        Dashboard("fullstory-user-sync")
        .uid(UID)
        .description(
            "Kafka -> FullStory user sync: lag, throughput, import jobs, dead letters, retries,"
            " commits, the org budget and the health server."
        )
        .tags(["fullstory-user-sync", "kafka"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query("label_values(fsus_records_consumed_total, namespace)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
        .with_variable(
            QueryVariable("job")
            .label("Release (job)")
            .datasource(DATASOURCE)
            .query('label_values(fsus_records_consumed_total{namespace="$namespace"}, job)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
        .with_row(Row("Overview"))
        .with_panel(
            stat(
                "Consumer lag",
                "Records between the consumers' positions and the log ends, all partitions.",
                "short",
                f"sum(fsus_consumer_lag{{{SEL}}})",
            )
        )
        .with_panel(
            stat(
                "Since the last commit",
                "Offsets are committed only after FullStory acknowledged: a growing age with"
                " lag means nothing reaches FullStory.",
                "s",
                f"time() - max(fsus_last_commit_timestamp_seconds{{{SEL}}})",
            )
        )
        .with_panel(
            stat(
                "Jobs overdue",
                "Import jobs unfinished JOB_MAX_WAIT_S after the wait began.",
                "short",
                f"sum(fsus_jobs_overdue{{{SEL}}})",
            )
        )
        .with_panel(
            stat(
                "Topics missing",
                "Topics the worker reads or writes (the DLQ) that do not exist.",
                "short",
                f"count(max by (topic) (fsus_topic_missing{{{SEL}}}) == 1) or vector(0)",
            )
        )
        .with_row(Row("Flow"))
        .with_panel(
            series(
                "Consumer lag by topic",
                "Records behind the log end (librdkafka statistics).",
                "short",
                query(f"sum by (topic) (fsus_consumer_lag{{{SEL}}})", "{{topic}}"),
            )
        )
        .with_panel(
            series(
                "Throughput",
                "Records read, and acknowledged by outcome (imported, deleted, skipped,"
                " dead-lettered).",
                "rps",
                query(f"sum(rate(fsus_records_consumed_total{{{SEL}}}[{RATE}]))", "consumed"),
                query(
                    f"sum by (outcome) (rate(fsus_records_acknowledged_total{{{SEL}}}[{RATE}]))",
                    "{{outcome}}",
                ),
            )
        )
        .with_panel(
            series(
                "Commit age",
                "Seconds since each replica's last successful offset commit.",
                "s",
                query(
                    f"time() - max by (pod) (fsus_last_commit_timestamp_seconds{{{SEL}}})",
                    "{{pod}}",
                ),
            )
        )
        .with_panel(
            series(
                "Offset commits",
                "Commits by result.",
                "ops",
                query(
                    f"sum by (result) (rate(fsus_offset_commits_total{{{SEL}}}[{RATE}]))",
                    "{{result}}",
                ),
            )
        )
        .with_row(Row("FullStory"))
        .with_panel(
            series(
                "Jobs in flight",
                "Import jobs open, against the adaptive limit (halved on a 429); users waiting"
                " for a job on the right axis would dwarf them, so they have their own panel.",
                "short",
                query(f"sum(fsus_jobs_in_flight{{{SEL}}})", "open jobs"),
                query(f"sum(fsus_import_jobs_in_flight{{{SEL}}})", "import jobs (budget)"),
                query(f"sum(fsus_import_jobs_limit{{{SEL}}})", "limit"),
            )
        )
        .with_panel(
            series(
                "Users waiting",
                "Merged users waiting for an import job, and deletes waiting to be sent.",
                "short",
                query(f"sum(fsus_pending_users{{{SEL}}})", "users"),
                query(f"sum(fsus_deletes_pending{{{SEL}}})", "deletes"),
            )
        )
        .with_panel(
            series(
                "Import jobs ended",
                "Import jobs by terminal status.",
                "short",
                query(
                    f"sum by (status) (increase(fsus_import_jobs_total{{{SEL}}}[{RATE}]))",
                    "{{status}}",
                ),
            )
        )
        .with_panel(
            series(
                "Import job duration",
                "From job creation to its terminal status: median and 95th percentile.",
                "s",
                query(
                    "histogram_quantile(0.5, sum by (le)"
                    f" (rate(fsus_import_job_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
                    "p50",
                ),
                query(
                    "histogram_quantile(0.95, sum by (le)"
                    f" (rate(fsus_import_job_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
                    "p95",
                ),
            )
        )
        .with_panel(
            series(
                "Retries and 429s",
                "FullStory calls retried, by call and reason (rate_limited: a 429).",
                "ops",
                query(
                    f"sum by (call, reason) (rate(fsus_fullstory_retries_total{{{SEL}}}[{RATE}]))",
                    "{{call}} {{reason}}",
                ),
            )
        )
        .with_panel(
            series(
                "Org budget share",
                "Each replica's share of FULLSTORY_ORG_MAX_JOBS and FULLSTORY_ORG_MAX_OPERATIONS"
                " (its share of the partitions), and the operations it has in flight.",
                "short",
                query(f"sum by (pod, kind) (fsus_org_budget_share{{{SEL}}})", "{{pod}} {{kind}}"),
                query(
                    f"sum by (pod) (fsus_operations_in_flight{{{SEL}}})",
                    "{{pod}} operations in flight",
                ),
            )
        )
        .with_row(Row("Failures"))
        .with_panel(
            series(
                "Dead letters by code",
                "Records written to the DLQ, by code; read them with"
                " `fullstory-user-sync dlq inspect`.",
                "short",
                query(
                    f"sum by (code) (increase(fsus_dead_letters_total{{{SEL}}}[{RATE}]))",
                    "{{code}}",
                ),
            )
        )
        .with_panel(
            series(
                "Kafka errors",
                "Errors librdkafka reported, by client and code.",
                "ops",
                query(
                    f"sum by (client, code) (rate(fsus_kafka_errors_total{{{SEL}}}[{RATE}]))",
                    "{{client}} {{code}}",
                ),
            )
        )
        .with_panel(
            series(
                "Health server refusals",
                "Connections to the probes and /metrics ended without their answer, by reason.",
                "ops",
                query(
                    "sum by (reason)"
                    f" (rate(fsus_health_connections_refused_total{{{SEL}}}[{RATE}]))",
                    "{{reason}}",
                ),
            )
        )
        .with_panel(
            series(
                "Partitions",
                "Partitions owned, by state (paused: backpressure; fenced: lost mid-job).",
                "short",
                query(f"sum by (state) (fsus_partitions{{{SEL}}})", "{{state}}"),
            )
        )
    )


def render() -> str:
    dashboard = build().build()
    for number, panel in enumerate(dashboard.panels or [], start=1):
        panel.id_val = number  # stable ids: links to a panel (viewPanel=N) survive regenerating
    return json.dumps(dashboard, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(
                f"{OUT.relative_to(ROOT)} is stale: run python scripts/dashboard.py",
                file=sys.stderr,
            )
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
