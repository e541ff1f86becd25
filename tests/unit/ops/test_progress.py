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
        PartitionStatus("users", 0, 70, 0, 100),
        PartitionStatus("users", 1, None, 20, 50),
        PartitionStatus("orders", 0, 5, 0, 5),
    ),
    (Member("rdkafka-1", "worker-a", "/10.0.0.7", (("users", 0), ("users", 1))),),
)


def test_table_shows_each_partition_a_total_per_topic_and_the_members():
    """Committed, log end and lag per partition; a marked row where nothing is committed;
    totals per topic; who holds which partition."""
    lines = table(STATUS).splitlines()
    assert lines[0] == "group sync  state STABLE  lag 60"
    assert lines[2].startswith("topic") and lines[2].endswith("lag  lag from")
    assert lines[3].split() == ["users", "0", "70", "100", "30"]
    assert lines[4].split() == ["users", "1", "-", "50", "30", "log_start", "*"]
    assert lines[5].split() == ["users", "total", "150", "60"]
    assert lines[7].split() == ["orders", "total", "5", "0"]
    assert lines[8].startswith("* nothing committed")
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
    }
    assert out["members"][0]["assignment"] == [
        {"topic": "users", "partition": 0},
        {"topic": "users", "partition": 1},
    ]
    assert out["progress"] == {"lag": 60, "rate": 20.0, "eta_s": 3.0, "done": 0.4}


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
