"""Where a replay or a catch-up stands: lag per partition, rate, ETA and their rendering.

Pure: no I/O, times are arguments. ``worker.ops.status`` reads Kafka and feeds these.

A partition with nothing committed is counted from where the worker would start: the log
start under ``auto.offset.reset=earliest`` (the worker's default), the log end under
``latest``; its ``lag_from`` says which, so a reader never mistakes it for a commit.

Two positions per partition: *committed* (the acknowledged prefix, what a restart resumes
from and what KEDA's lag counts) and *read* (how far the owning replica read and merged,
published in its commit metadata: ``worker.loop.commit.ledger``). Users are merged on arrival
and committed only when their job ended, so during a catch-up the committed offset moves in
steps of jobs while the read position moves every commit interval: the rate and the ETA are
measured on the read position, which equals the committed one where nothing was published.
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
    published_read: int | None = None  # the read position in the commit metadata, if any
    jobs: tuple[tuple[str, int | None], ...] = ()  # in flight: (job id, its users or None)

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

    @property
    def read(self) -> int:
        """How far the group read and merged: the published read position, never behind the
        committed one (a stale or garbled one cannot make progress look worse than the
        commit), never past the log end."""
        if self.published_read is None:
            return self.position
        return min(max(self.published_read, self.position), self.log_end)

    @property
    def read_lag(self) -> int:
        return self.log_end - self.read


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

    @property
    def read(self) -> int:
        return sum(p.read for p in self.partitions)

    @property
    def read_lag(self) -> int:
        return sum(p.read_lag for p in self.partitions)

    def jobs(self) -> dict[str, tuple[int | None, list[tuple[str, int]]]]:
        """Jobs in flight: id -> (its users, None when not said; the partitions it holds)."""
        jobs: dict[str, tuple[int | None, list[tuple[str, int]]]] = {}
        for p in self.partitions:
            for job, users in p.jobs:
                known, where = jobs.setdefault(job, (users, []))
                where.append((p.topic, p.partition))
                if known is None and users is not None:
                    jobs[job] = (users, where)
        return jobs

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
    read: int | None = None  # sum of the read positions; None: the committed ones
    read_lag: int | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    lag: int  # committed
    rate: float  # read offsets advanced per second over the window
    eta_s: float | None  # until everything is read; None: not catching up
    done: float  # 0..1 committed of the work there was since the watch started, plus arrivals
    read_lag: int = 0
    read_done: float = 0.0  # 0..1 read, as ``done``
    committed_rate: float = 0.0  # committed offsets advanced per second over the window


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
        oldest, first = self.samples[0], self.first
        elapsed = sample.at - oldest.at
        committed_rate = _per_s(oldest.position, sample.position, elapsed)
        # Measured on the read position: the committed one stands still while jobs run.
        rate = _per_s(_read(oldest), _read(sample), elapsed)
        # The lag shrinks by consumption minus what producers add: the ETA divides by
        # that net drain, which equals the rate when nothing new arrives.
        read_lag = _read_lag(sample)
        drain = _per_s(read_lag, _read_lag(oldest), elapsed)
        eta = read_lag / drain if rate > 0 and drain > 0 else None
        if read_lag == 0:
            eta = 0.0
        return Progress(
            lag=sample.lag,
            rate=rate,
            eta_s=eta,
            done=_share(sample.position - first.position, sample.lag),
            read_lag=read_lag,
            read_done=_share(_read(sample) - _read(first), read_lag),
            committed_rate=committed_rate,
        )


def _read(sample: Sample) -> int:
    return sample.position if sample.read is None else sample.read


def _read_lag(sample: Sample) -> int:
    return sample.lag if sample.read_lag is None else sample.read_lag


def _per_s(before: int, after: int, elapsed: float) -> float:
    return (after - before) / elapsed if elapsed > 0 else 0.0


def _share(done_since: int, lag: int) -> float:
    """Of the work since the watch started plus what arrived, the share done (0..1)."""
    todo = done_since + lag
    return 1.0 if todo <= 0 else min(max(done_since / todo, 0.0), 1.0)


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
    """Two lines: read and merged (rate and ETA measured there), then committed."""
    return (
        f"read      {bar(progress.read_done)} lag {progress.read_lag:,}  "
        f"rate {progress.rate:,.1f}/s  eta {duration(progress.eta_s)}\n"
        f"committed {bar(progress.done)} lag {progress.lag:,}  "
        f"rate {progress.committed_rate:,.1f}/s"
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


_JOBS_SHOWN = 20  # the table lists this many jobs in flight; --json lists them all


def table(status: GroupStatus) -> str:
    """Per partition committed / log end / lag and read / read lag, a total per topic, the
    jobs in flight with their users, then the members."""
    rows = [["topic", "partition", "committed", "log end", "lag", "read", "read lag", "lag from"]]
    marked = False
    for topic, parts in status.topics().items():
        for p in parts:
            marked = marked or p.committed is None
            committed = "-" if p.committed is None else str(p.committed)
            note = "" if p.committed is not None else f"{p.lag_from} *"
            rows.append(
                [
                    shown(topic),
                    str(p.partition),
                    committed,
                    str(p.log_end),
                    str(p.lag),
                    str(p.read),
                    str(p.read_lag),
                    note,
                ]
            )
        end, lag = sum(p.log_end for p in parts), sum(p.lag for p in parts)
        read_lag = sum(p.read_lag for p in parts)
        rows.append([shown(topic), "total", "", str(end), str(lag), "", str(read_lag), ""])
    lines = [
        f"group {shown(status.group)}  state {shown(status.state)}  lag {status.lag:,}"
        f"  read lag {status.read_lag:,}",
        "",
    ]
    lines += _columns(rows, right={1, 2, 3, 4, 5, 6})
    if marked:
        lines.append("* nothing committed: lag counted from where the worker would start")
    lines += _job_lines(status)
    lines += ["", f"members ({len(status.members)})"]
    for m in status.members:
        assigned = ", ".join(f"{shown(t)}[{p}]" for t, p in m.assignment) or "(none)"
        lines.append(
            f"  {shown(m.member_id)}  client {shown(m.client_id)}  host {shown(m.host)}  {assigned}"
        )
    return "\n".join(lines)


def _job_lines(status: GroupStatus) -> list[str]:
    jobs = status.jobs()
    known = [n for n, _ in jobs.values() if n is not None]
    users = f", {sum(known):,} users" if known else ""
    lines = ["", f"jobs in flight ({len(jobs)}{users})"]
    for job, (count, where) in list(jobs.items())[:_JOBS_SHOWN]:
        held = ", ".join(f"{shown(t)}[{p}]" for t, p in where)
        lines.append(f"  {shown(job)}  users {'?' if count is None else f'{count:,}'}  {held}")
    if len(jobs) > _JOBS_SHOWN:
        lines.append(f"  ... {len(jobs) - _JOBS_SHOWN} more (--json lists them all)")
    return lines


def as_json(status: GroupStatus, progress: Progress | None = None) -> dict[str, Any]:
    topics = []
    for topic, parts in status.topics().items():
        topics.append(
            {
                "topic": topic,
                "lag": sum(p.lag for p in parts),
                "read_lag": sum(p.read_lag for p in parts),
                "log_end": sum(p.log_end for p in parts),
                "partitions": [
                    {
                        "partition": p.partition,
                        "committed": p.committed,
                        "log_start": p.log_start,
                        "log_end": p.log_end,
                        "lag": p.lag,
                        "lag_from": p.lag_from,
                        "read": p.read,
                        "read_published": p.published_read is not None,
                        "read_lag": p.read_lag,
                    }
                    for p in parts
                ],
            }
        )
    out: dict[str, Any] = {
        "group": status.group,
        "state": status.state,
        "lag": status.lag,
        "read_lag": status.read_lag,
        "topics": topics,
        "jobs": [
            {
                "job_id": job,
                "users": users,
                "partitions": [{"topic": t, "partition": p} for t, p in where],
            }
            for job, (users, where) in status.jobs().items()
        ],
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
            "read_lag": progress.read_lag,
            "read_done": round(progress.read_done, 4),
            "committed_rate": round(progress.committed_rate, 3),
        }
    return out
