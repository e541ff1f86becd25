"""Where a replay or a catch-up stands: lag per partition, rate, ETA and their rendering.

Pure: no I/O, times are arguments. ``worker.ops.status`` reads Kafka and feeds these.

A partition with nothing committed is counted from where the worker would start: the log
start under ``auto.offset.reset=earliest`` (the worker's default), the log end under
``latest``; its ``lag_from`` says which, so a reader never mistakes it for a commit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from worker.ops.printable import shown

# auto.offset.reset values librdkafka reads as "start at the log end".
_LATEST = ("latest", "largest", "end")


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    topic: str
    partition: int
    committed: int | None  # None: the group committed nothing here
    log_start: int
    log_end: int
    reset: str = "earliest"  # the group's auto.offset.reset

    @property
    def lag_from(self) -> str:
        """``committed``, or where the worker starts without a commit (``log_start`` /
        ``log_end``)."""
        if self.committed is not None:
            return "committed"
        return "log_end" if self.reset in _LATEST else "log_start"

    @property
    def position(self) -> int:
        """The offset the group reads next. A commit below the log start (retention removed
        those records) reads from the log start, as the consumer would."""
        if self.committed is None:
            return self.log_end if self.lag_from == "log_end" else self.log_start
        return min(max(self.committed, self.log_start), self.log_end)

    @property
    def lag(self) -> int:
        return self.log_end - self.position


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    client_id: str
    host: str
    assignment: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class GroupStatus:
    group: str
    state: str
    partitions: tuple[PartitionStatus, ...]
    members: tuple[Member, ...] = ()

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def position(self) -> int:
        return sum(p.position for p in self.partitions)

    def topics(self) -> dict[str, tuple[PartitionStatus, ...]]:
        by_topic: dict[str, list[PartitionStatus]] = {}
        for p in self.partitions:
            by_topic.setdefault(p.topic, []).append(p)
        return {t: tuple(ps) for t, ps in by_topic.items()}


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # monotonic seconds
    position: int  # sum over partitions of the offset the group reads next
    lag: int


@dataclass(frozen=True, slots=True)
class Progress:
    lag: int
    rate: float  # committed offsets advanced per second over the window
    eta_s: float | None  # None: not catching up (no rate, or the lag grows)
    done: float  # 0..1 of the work there was since the watch started, plus what arrived


@dataclass(slots=True)
class Meter:
    """Keeps the last ``window`` samples; rate and ETA are measured across them, so one
    slow refresh or a commit landing between two samples does not swing the estimate."""

    window: int = 5
    first: Sample | None = None
    samples: deque[Sample] = field(default_factory=deque)

    def add(self, sample: Sample) -> Progress:
        if self.first is None:
            self.first = sample
        self.samples.append(sample)
        while len(self.samples) > max(self.window, 2):
            self.samples.popleft()
        oldest = self.samples[0]
        elapsed = sample.at - oldest.at
        rate = (sample.position - oldest.position) / elapsed if elapsed > 0 else 0.0
        # The lag shrinks by consumption minus what producers add: the ETA divides by
        # that net drain, which equals the rate when nothing new arrives.
        drain = (oldest.lag - sample.lag) / elapsed if elapsed > 0 else 0.0
        eta = sample.lag / drain if rate > 0 and drain > 0 else None
        if sample.lag == 0:
            eta = 0.0
        done_since = sample.position - self.first.position
        todo = done_since + sample.lag
        done = 1.0 if todo <= 0 else min(max(done_since / todo, 0.0), 1.0)
        return Progress(lag=sample.lag, rate=rate, eta_s=eta, done=done)


def duration(seconds: float | None) -> str:
    """``-`` for no estimate; else ``42s``, ``3m05s``, ``2h07m``."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def bar(done: float, width: int = 30) -> str:
    """``[#########.....]  60%``: the share of ``width`` cells, rounded down, so 100% shows
    only when everything is done."""
    done = min(max(done, 0.0), 1.0)
    filled = int(done * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {int(done * 100):3d}%"


def progress_line(progress: Progress) -> str:
    return (
        f"{bar(progress.done)} lag {progress.lag:,}  "
        f"rate {progress.rate:,.1f}/s  eta {duration(progress.eta_s)}"
    )


def _columns(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def table(status: GroupStatus) -> str:
    """Per partition committed / log end / lag, a total per topic, then the members."""
    rows = [["topic", "partition", "committed", "log end", "lag", "lag from"]]
    marked = False
    for topic, parts in status.topics().items():
        for p in parts:
            marked = marked or p.committed is None
            committed = "-" if p.committed is None else str(p.committed)
            note = "" if p.committed is not None else f"{p.lag_from} *"
            rows.append(
                [shown(topic), str(p.partition), committed, str(p.log_end), str(p.lag), note]
            )
        end, lag = sum(p.log_end for p in parts), sum(p.lag for p in parts)
        rows.append([shown(topic), "total", "", str(end), str(lag), ""])
    lines = [f"group {shown(status.group)}  state {shown(status.state)}  lag {status.lag:,}", ""]
    lines += _columns(rows, right={1, 2, 3, 4})
    if marked:
        lines.append("* nothing committed: lag counted from where the worker would start")
    lines += ["", f"members ({len(status.members)})"]
    for m in status.members:
        assigned = ", ".join(f"{shown(t)}[{p}]" for t, p in m.assignment) or "(none)"
        lines.append(
            f"  {shown(m.member_id)}  client {shown(m.client_id)}  host {shown(m.host)}  {assigned}"
        )
    return "\n".join(lines)


def as_json(status: GroupStatus, progress: Progress | None = None) -> dict[str, Any]:
    topics = []
    for topic, parts in status.topics().items():
        topics.append(
            {
                "topic": topic,
                "lag": sum(p.lag for p in parts),
                "log_end": sum(p.log_end for p in parts),
                "partitions": [
                    {
                        "partition": p.partition,
                        "committed": p.committed,
                        "log_start": p.log_start,
                        "log_end": p.log_end,
                        "lag": p.lag,
                        "lag_from": p.lag_from,
                    }
                    for p in parts
                ],
            }
        )
    out: dict[str, Any] = {
        "group": status.group,
        "state": status.state,
        "lag": status.lag,
        "topics": topics,
        "members": [
            {
                "member_id": m.member_id,
                "client_id": m.client_id,
                "host": m.host,
                "assignment": [{"topic": t, "partition": p} for t, p in m.assignment],
            }
            for m in status.members
        ],
    }
    if progress is not None:
        out["progress"] = {
            "lag": progress.lag,
            "rate": round(progress.rate, 3),
            "eta_s": None if progress.eta_s is None else round(progress.eta_s, 1),
            "done": round(progress.done, 4),
        }
    return out
