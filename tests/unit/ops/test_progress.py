"""Where a replay stands (``worker.ops.progress``, ``worker.ops.status.watch``): pure, no broker."""

import pytest

from tests.fakes.clock import FakeClock
from worker.ops.progress import (
    GroupStatus,
    Member,
    Meter,
    PartitionStatus,
    Sample,
    as_json,
    bar,
    duration,
    progress_line,
    table,
)
from worker.ops.status import watch


@pytest.mark.parametrize(
    ("committed", "reset", "lag", "lag_from"),
    [
        (70, "earliest", 30, "committed"),
        (100, "earliest", 0, "committed"),
        (None, "earliest", 90, "log_start"),
        (None, "latest", 0, "log_end"),
        (None, "largest", 0, "log_end"),
        (5, "earliest", 90, "committed"),
    ],
    ids=[
        "committed",
        "caught-up",
        "nothing-committed-starts-at-log-start",
        "nothing-committed-latest",
        "nothing-committed-largest",
        "commit-below-log-start-reads-from-log-start",
    ],
)
def test_lag_counts_from_where_the_group_reads_next(committed, reset, lag, lag_from):
    """Lag is log end minus the commit, or minus where the worker starts without one
    (log start 10, log end 100), and says which."""
    status = PartitionStatus("users", 0, committed, 10, 100, reset)
    assert (status.lag, status.lag_from) == (lag, lag_from)


def _meter_of(*samples: tuple[float, int, int], window: int = 5):
    meter = Meter(window=window)
    return [meter.add(Sample(at, position, lag)) for at, position, lag in samples][-1]


def test_rate_and_eta_while_catching_up():
    """1,000 offsets committed in 2 s with nothing produced: 500/s, 10,000 left is 20 s."""
    progress = _meter_of((0.0, 0, 11_000), (2.0, 1_000, 10_000))
    assert progress.rate == 500.0
    assert progress.eta_s == 20.0
    assert progress.lag == 10_000


def test_the_rate_is_smoothed_over_the_window():
    """A refresh that saw no commit does not drop the rate to 0 while the window still
    holds earlier progress; samples older than the window no longer count."""
    progress = _meter_of((0.0, 0, 400), (2.0, 200, 200), (4.0, 200, 200), window=3)
    assert progress.rate == 50.0 and progress.eta_s == 4.0
    progress = _meter_of((0.0, 0, 400), (2.0, 200, 200), (4.0, 200, 200), (6.0, 200, 200), window=3)
    assert progress.rate == 0.0 and progress.eta_s is None


def test_the_eta_counts_what_producers_add_meanwhile():
    """Consuming 500/s while producers add 250/s drains the lag at 250/s."""
    progress = _meter_of((0.0, 0, 10_000), (2.0, 1_000, 9_500))
    assert progress.rate == 500.0
    assert progress.eta_s == 38.0


@pytest.mark.parametrize(
    "samples",
    [
        [(0.0, 0, 100), (2.0, 0, 100)],
        [(0.0, 0, 100), (2.0, 100, 300)],
        [(0.0, 0, 100)],
    ],
    ids=["no-commits", "lag-grows-faster-than-commits", "one-sample"],
)
def test_no_eta_when_not_catching_up(samples):
    """No estimate (shown ``-``) while nothing is committed or the lag grows."""
    progress = _meter_of(*samples)
    assert progress.eta_s is None
    assert "eta -" in progress_line(progress)


def test_done_is_the_share_of_the_work_since_the_watch_started():
    """Started 1,000 behind, 600 committed, 100 more produced meanwhile: 600 of 1,100."""
    progress = _meter_of((0.0, 0, 1_000), (2.0, 300, 800), (4.0, 600, 500))
    assert progress.done == pytest.approx(600 / 1_100)
    assert _meter_of((0.0, 50, 0), (2.0, 50, 0)).done == 1.0
    assert _meter_of((0.0, 50, 10), (2.0, 0, 60)).done == 0.0  # a replay moved back


@pytest.mark.parametrize(
    ("done", "shown"),
    [
        (0.0, "[..........]   0%"),
        (0.5, "[#####.....]  50%"),
        (0.999, "[#########.]  99%"),
        (1.0, "[##########] 100%"),
        (1.5, "[##########] 100%"),
        (-0.2, "[..........]   0%"),
    ],
    ids=["empty", "half", "not-quite-done", "done", "over", "under"],
)
def test_bar(done, shown):
    """The bar shows 100% only when everything is done."""
    assert bar(done, width=10) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.0, "0s"), (59.4, "59s"), (185, "3m05s"), (7_620, "2h07m")],
    ids=["none", "zero", "seconds", "minutes", "hours"],
)
def test_duration(seconds, shown):
    """ETAs read at a glance."""
    assert duration(seconds) == shown


STATUS = GroupStatus(
    "sync",
    "STABLE",
    (
        PartitionStatus("users", 0, 70, 0, 100, published_read=95, jobs=(("job-a", 12),)),
        PartitionStatus("users", 1, None, 20, 50, jobs=(("job-a", 12), ("job-b", None))),
        PartitionStatus("orders", 0, 5, 0, 5),
    ),
    (Member("rdkafka-1", "worker-a", "/10.0.0.7", (("users", 0), ("users", 1))),),
)


def test_table_shows_each_partition_a_total_per_topic_and_the_members():
    """Committed, log end and lag per partition, then how far it was read and what is left
    to read; a marked row where nothing is committed; totals per topic; the jobs in flight
    with their users and partitions; who holds which partition."""
    lines = table(STATUS).splitlines()
    assert lines[0] == "group sync  state STABLE  lag 60  read lag 35"
    header = "topic  partition  committed  log end  lag  read  read lag  lag from"
    assert " ".join(lines[2].split()) == " ".join(header.split())
    assert lines[3].split() == ["users", "0", "70", "100", "30", "95", "5"]
    assert lines[4].split() == ["users", "1", "-", "50", "30", "20", "30", "log_start", "*"]
    assert lines[5].split() == ["users", "total", "150", "60", "35"]
    assert lines[7].split() == ["orders", "total", "5", "0", "0"]
    assert lines[8].startswith("* nothing committed")
    assert lines[10:13] == [
        "jobs in flight (2, 12 users)",
        "  job-a  users 12  users[0], users[1]",
        "  job-b  users ?  users[1]",
    ]
    assert "rdkafka-1  client worker-a  host /10.0.0.7  users[0], users[1]" in lines[-1]


def test_no_marker_when_every_partition_has_a_commit():
    """The footnote appears only when a row carries its marker."""
    committed = GroupStatus("sync", "EMPTY", (PartitionStatus("users", 0, 3, 0, 5),))
    assert "*" not in table(committed)
    assert table(committed).endswith("members (0)")


def test_json_has_the_same_numbers():
    """Machine-readable: per partition committed (null when none), ends, lag and its origin."""
    out = as_json(STATUS, _meter_of((0.0, 0, 100), (2.0, 40, 60)))
    users = out["topics"][0]
    assert (out["lag"], users["topic"], users["lag"], users["log_end"]) == (60, "users", 60, 150)
    assert users["partitions"][1] == {
        "partition": 1,
        "committed": None,
        "log_start": 20,
        "log_end": 50,
        "lag": 30,
        "lag_from": "log_start",
        "read": 20,
        "read_published": False,
        "read_lag": 30,
    }
    assert users["partitions"][0]["read"] == 95 and users["partitions"][0]["read_published"]
    assert (out["read_lag"], users["read_lag"]) == (35, 35)
    assert out["jobs"][1] == {
        "job_id": "job-b",
        "users": None,
        "partitions": [{"topic": "users", "partition": 1}],
    }
    assert out["members"][0]["assignment"] == [
        {"topic": "users", "partition": 0},
        {"topic": "users", "partition": 1},
    ]
    assert out["progress"] == {
        "lag": 60,
        "rate": 20.0,
        "eta_s": 3.0,
        "done": 0.4,
        "read_lag": 60,
        "read_done": 0.4,
        "committed_rate": 20.0,
    }


@pytest.mark.parametrize(
    ("committed", "published", "read", "read_lag"),
    [
        (70, None, 70, 30),
        (70, 90, 90, 10),
        (70, 40, 70, 30),
        (70, 500, 100, 0),
        (None, 35, 35, 65),
        (None, None, 10, 90),
    ],
    ids=[
        "nothing-published-reads-from-the-commit",
        "published-ahead",
        "stale-behind-the-commit",
        "past-the-log-end",
        "nothing-committed-yet",
        "neither",
    ],
)
def test_the_read_position_is_never_behind_the_commit_nor_past_the_log_end(
    committed, published, read, read_lag
):
    """What a replica published (log start 10, log end 100) is shown within what it can
    mean: a stale one from before a hand-over never shows less than the commit."""
    status = PartitionStatus("users", 0, committed, 10, 100, published_read=published)
    assert (status.read, status.read_lag) == (read, read_lag)
    assert status.position == (committed if committed is not None else 10)


def test_a_catch_up_moves_on_the_read_position_while_nothing_is_committed():
    """Jobs still running, nothing committed since the watch started: the read position
    gives the rate and the ETA (1,000 read in 2 s, 2,000 left to read: 4 s), and the
    committed line stays at 0% with its own rate of 0."""
    meter = Meter()
    meter.add(Sample(0.0, 0, 5_000, read=2_000, read_lag=3_000))
    progress = meter.add(Sample(2.0, 0, 5_000, read=3_000, read_lag=2_000))
    assert (progress.rate, progress.eta_s, progress.committed_rate) == (500.0, 4.0, 0.0)
    assert (progress.lag, progress.done) == (5_000, 0.0)
    assert (progress.read_lag, progress.read_done) == (2_000, pytest.approx(1_000 / 3_000))
    read, committed = progress_line(progress).splitlines()
    assert read.startswith("read      [") and "lag 2,000  rate 500.0/s  eta 4s" in read
    assert committed.startswith("committed [") and "  0% lag 5,000  rate 0.0/s" in committed


def test_watch_measures_on_the_read_position_it_reads():
    """``watch`` feeds each status's read position to the meter, not its committed one."""
    clock = FakeClock(0.0)
    reads = iter([10, 50])
    shown = []

    def read() -> GroupStatus:
        part = PartitionStatus("t", 0, 0, 0, 100, published_read=next(reads))
        return GroupStatus("g", "STABLE", (part,))

    watch(read, lambda s, p: shown.append(p), 2.0, 2, clock, clock.advance)
    assert (shown[-1].rate, shown[-1].committed_rate, shown[-1].read_lag) == (20.0, 0.0, 50)
    assert shown[-1].eta_s == 2.5


def test_watch_refreshes_count_times_on_its_interval():
    """Each refresh starts ``every_s`` after the previous one started (a slow read is not
    added to the interval), and ``count`` refreshes end the watch."""
    clock = FakeClock(0.0)
    positions = iter([0, 100, 300])
    slept: list[float] = []
    shown = []

    def read() -> GroupStatus:
        clock.advance(0.5)  # the read takes half a second
        position = next(positions)
        return GroupStatus("g", "STABLE", (PartitionStatus("t", 0, position, 0, 400),))

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    watch(read, lambda s, p: shown.append(p), 2.0, 3, clock, sleep)
    assert slept == [1.5, 1.5]
    assert [p.lag for p in shown] == [400, 300, 100]
    assert shown[-1].rate == 75.0  # 300 offsets over the 4 s between first and last sample


def test_whatever_joins_the_group_is_shown_escaped():
    """Member and client ids and hosts are chosen by whatever joins the group: an escape
    sequence or a carriage return in them never reaches the terminal raw."""
    hostile = "\x1b[2J\x1b]52;c;eA==\x07\rfine\u202e"
    status = GroupStatus(
        "sync", "STABLE", STATUS.partitions, (Member(hostile, hostile, hostile, (("users", 0),)),)
    )
    text = table(status)
    assert all(line.isprintable() for line in text.splitlines()) and "\r" not in text
    assert text.count("\\x1b[2J") == 3
    # A job id comes from the commit metadata, which any group member may write.
    jobs = GroupStatus(
        "sync", "STABLE", (PartitionStatus("users", 0, 1, 0, 5, jobs=((hostile, 1),)),)
    )
    text = table(jobs)
    assert all(line.isprintable() for line in text.splitlines()) and "\x1b" not in text
