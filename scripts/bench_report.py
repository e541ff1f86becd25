"""The benchmark's results file: one `Row` per scenario, kept in a JSON twin of the Markdown
file so a run can replace the rows of the scenarios it ran and keep the others; every row
carries the run (command, date, commit, scale, load, machine, versions) it came from."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One scenario's results (None: not measured or not reached). `complete` is False when
    the scenario did not drain, did not run or the worker did not exit 0."""

    scenario: str
    events: int
    uids: int
    seconds: float | None = None
    events_per_s: float | None = None
    decode_per_s: float | None = None
    upserts_per_uid: float | None = None
    jobs: int | None = None
    peak_rss_mib: float | None = None
    p50_s: float | None = None
    p99_s: float | None = None
    load: str = ""
    notes: list[str] = field(default_factory=list)
    complete: bool = True
    run: dict[str, Any] = field(default_factory=dict)

    def fail(self, note: str) -> None:
        self.complete = False
        self.notes.append(note)


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def save(out: Path, row: Row, order: list[str]) -> None:
    """Replaces `row`'s scenario in `out`'s JSON twin and rewrites `out` from it; rows are
    listed in `order` (scenario names)."""
    store = out.with_suffix(".json")
    rows = json.loads(store.read_text()) if store.exists() else []
    rows = [r for r in rows if r["scenario"] != row.scenario] + [asdict(row)]
    rows.sort(key=lambda r: order.index(r["scenario"]) if r["scenario"] in order else len(order))
    out.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(rows, indent=1) + "\n")
    out.write_text(render(rows))


_HEADER = """\
# Benchmark results

Written by `make bench` (`scripts/bench.py`, whose docstring says what each scenario measures
and how). Each row names the run it comes from (listed below); a run with `--scale` below 1 is
a smoke run, not a measurement. *load* is the 1-minute load average before -> after the
scenario, the worker's own load included; the machine is shared with other engineers' test
suites.

| scenario | run | scale | events / uids | worker time | events/s | fastavro decode/s | ratio \
| upserts/uid | jobs | peak RSS | p50 / p99 ack | load | notes |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
"""


def render(rows: list[dict[str, Any]]) -> str:
    runs: list[dict[str, Any]] = []
    for row in rows:
        if row["run"] not in runs:
            runs.append(row["run"])
    lines = [_HEADER.rstrip("\n")]
    lines += ["| " + " | ".join(_cells(row, runs.index(row["run"]) + 1)) + " |" for row in rows]
    lines += ["", "## Runs", ""]
    for number, run in enumerate(runs, 1):
        lines += [
            f"{number}. `{run['command']}` at {run['date']} on commit {run['commit']}; "
            f"load average (1 / 5 / 15 min) at its start: {run['load']}",
            f"   - machine: {run['machine']}",
            f"   - versions: {run['versions']}",
        ]
    return "\n".join(lines) + "\n"


def _cells(row: dict[str, Any], run: int) -> list[str]:
    latency = "-" if row["p50_s"] is None else f"{row['p50_s']:.2f} s / {row['p99_s']:.2f} s"
    return [
        row["scenario"],
        str(run),
        f"{row['run']['scale']:g}",
        f"{row['events']:,} / {row['uids']:,}",
        _num(row["seconds"], 1, " s"),
        _num(row["events_per_s"]),
        _num(row["decode_per_s"]),
        _ratio(row),
        _num(row["upserts_per_uid"], 2),
        _num(row["jobs"]),
        _num(row["peak_rss_mib"], 0, " MiB"),
        latency,
        row["load"],
        "; ".join(row["notes"]),
    ]


def _num(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def _ratio(row: dict[str, Any]) -> str:
    if row["events_per_s"] is None or row["decode_per_s"] is None:
        return "-"
    return f"{row['events_per_s'] / row['decode_per_s']:.2f}x"
