"""``status --worker URL``: what the replicas did, read from their ``/metrics``.

Kafka knows offsets, not what the worker made of the records: how many users were deleted in
FullStory, how many records asked nothing of it (``fsus_records_skipped_total``), how many
deletes wait. Each ``--worker`` URL is a replica's health server (``HTTP_PORT``); its
``/metrics`` is read within ``TIMEOUT_S`` and ``ANSWER_MAX_BYTES`` (through the environment's
proxy, as the worker's calls: ``bounded_http.environment_proxies``), and the counters are summed
over the replicas. A replica that does not answer is named, never guessed at. ``parse`` and
``lines`` are pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from worker.bounded_http import AnswerTooLarge, client, environment_proxies, fetch

TIMEOUT_S = 5.0
ANSWER_MAX_BYTES = 4 * 1024 * 1024

# metric family -> its label, for the counters shown.
_COUNTERS = {
    "fsus_user_deletes": "result",
    "fsus_records_skipped": "reason",
    "fsus_records_acknowledged": "outcome",
}
_GAUGES = ("fsus_deletes_pending",)
# A label value shown (a replica's answer reaches the operator's terminal): the worker's own
# label values are snake_case words; anything else is not counted.
_LABEL = re.compile(r"[a-z][a-z_]{0,63}")


@dataclass
class Activity:
    """Counters summed over the replicas that answered; ``unreachable``: URL -> why."""

    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    replicas: int = 0
    unreachable: dict[str, str] = field(default_factory=dict)

    def add(self, other: Activity) -> None:
        for family, values in other.counters.items():
            mine = self.counters.setdefault(family, {})
            for label, value in values.items():
                mine[label] = mine.get(label, 0.0) + value
        for name, value in other.gauges.items():
            self.gauges[name] = self.gauges.get(name, 0.0) + value
        self.replicas += other.replicas


def parse(text: str) -> Activity:
    """One replica's ``/metrics`` (Prometheus text format) -> its ``Activity``."""
    activity = Activity(replicas=1)
    for family in text_string_to_metric_families(text):
        label = _COUNTERS.get(family.name)
        for sample in family.samples:
            if label is not None and sample.name == f"{family.name}_total":
                key = sample.labels.get(label, "")
                if not _LABEL.fullmatch(key):
                    continue
                values = activity.counters.setdefault(family.name, {})
                values[key] = values.get(key, 0.0) + sample.value
            elif sample.name in _GAUGES:
                activity.gauges[sample.name] = sample.value
    return activity


def read(urls: Iterable[str]) -> Activity:
    """Every replica's activity, summed; those that do not answer land in ``unreachable``."""
    total = Activity()
    proxies = environment_proxies()
    limits = httpx.Limits(max_connections=1)
    for url in urls:
        try:
            with client(url, deadline_s=TIMEOUT_S, limits=limits, proxies=proxies) as replica:
                answer = fetch(
                    replica, "GET", "/metrics", max_bytes=ANSWER_MAX_BYTES, deadline_s=TIMEOUT_S
                )
            if answer.status != 200:
                total.unreachable[url] = f"HTTP {answer.status}"
                continue
            total.add(parse(answer.body.decode("utf-8", "replace")))
        except (httpx.HTTPError, AnswerTooLarge) as exc:
            total.unreachable[url] = type(exc).__name__
        except ValueError as exc:  # not the Prometheus text format
            total.unreachable[url] = f"not metrics: {str(exc)[:80]}"
    return total


def _listed(values: dict[str, float]) -> str:
    return ", ".join(f"{label} {int(value):,}" for label, value in values.items()) or "-"


def lines(activity: Activity) -> list[str]:
    """The activity as ``status`` prints it, under the partitions' table."""
    counters, gauges = activity.counters, activity.gauges
    shown = [
        f"replicas read: {activity.replicas}",
        f"deletes: pending {int(gauges.get('fsus_deletes_pending', 0)):,}; "
        + _listed(counters.get("fsus_user_deletes", {})),
        "skipped: " + _listed(counters.get("fsus_records_skipped", {})),
        "acknowledged: " + _listed(counters.get("fsus_records_acknowledged", {})),
    ]
    shown += [f"unreachable: {url} ({why})" for url, why in activity.unreachable.items()]
    return shown


def as_json(activity: Activity) -> dict[str, object]:
    return {
        "replicas": activity.replicas,
        "deletes": counters_or_empty(activity, "fsus_user_deletes"),
        "deletes_pending": activity.gauges.get("fsus_deletes_pending", 0.0),
        "skipped": counters_or_empty(activity, "fsus_records_skipped"),
        "acknowledged": counters_or_empty(activity, "fsus_records_acknowledged"),
        "unreachable": dict(activity.unreachable),
    }


def counters_or_empty(activity: Activity, family: str) -> dict[str, float]:
    return dict(activity.counters.get(family, {}))
