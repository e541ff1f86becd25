import json

import pytest

from worker.loop.commit.ledger import (
    MAX_METADATA_BYTES,
    JobLedger,
    Published,
    decode,
    decode_jobs,
    encode,
    encode_jobs,
)

TP = ("users", 0)


def test_metadata_round_trip_names_the_jobs():
    """What one owner commits, the next owner reads back as the same job ids."""
    assert decode_jobs(encode_jobs(["j2", "j1"])) == ["j1", "j2"]
    assert encode_jobs([]) == ""


def test_foreign_or_broken_metadata_means_no_jobs():
    """Metadata written by another tool never fences a partition."""
    assert decode_jobs("") == decode_jobs(None) == []
    assert decode_jobs("hello") == decode_jobs('{"jobs": ["x"]}') == []


def test_metadata_stays_under_kafkas_limit():
    """An oversized commit would be refused by Kafka; the list is cut to fit."""
    text = encode_jobs([f"job-{i:040d}" for i in range(200)])
    assert 0 < len(text.encode()) <= MAX_METADATA_BYTES


def test_ledger_marks_partitions_whose_job_list_changed():
    """A started or ended job makes its partitions due for a commit with new metadata."""
    ledger = JobLedger()
    ledger.started([TP], "j1")
    assert ledger.dirty() == {TP}
    assert decode_jobs(ledger.metadata(TP)) == ["j1"]
    ledger.committed([TP])
    assert ledger.dirty() == set()
    ledger.ended(["j1"])
    assert ledger.dirty() == {TP} and ledger.metadata(TP) == ""


P1 = ("users", 1)


def test_metadata_format_is_stable():
    """The metadata outlives the worker that wrote it: a new owner, maybe of another version,
    must read the same compact text back."""
    assert encode_jobs(["j2", "j1"]) == '{"fsus":1,"jobs":["j1","j2"]}'


def _ids_filling(size: int, count: int = 10) -> list[str]:
    """``count`` job ids whose metadata is exactly ``size`` bytes (the last id sorts last)."""
    ids = [f"job-{i:02d}" for i in range(count - 1)]
    # Measured on the format pinned above, not with encode_jobs: it is what is under test.
    overhead = len(json.dumps({"fsus": 1, "jobs": [*ids, ""]}, separators=(",", ":")))
    return [*ids, "z" * (size - overhead)]


@pytest.mark.parametrize(
    ("ids", "kept"),
    [
        (_ids_filling(MAX_METADATA_BYTES), 10),
        (_ids_filling(MAX_METADATA_BYTES + 1), 9),
        # 44-byte ids take 47 bytes each ('"id",') after 19 bytes of frame: 84 fit in 4000.
        ([f"job-{i:040d}" for i in range(200)], 84),
    ],
    ids=["exactly-at-the-limit", "one-byte-over", "far-over"],
)
def test_over_the_limit_the_metadata_keeps_as_many_jobs_as_fit(ids, kept):
    """A commit over Kafka's metadata limit would fail, so the list is cut, but only as far as
    needed: every job that fits still fences the partition for its next owner."""
    text = encode_jobs(ids)
    assert len(text.encode()) <= MAX_METADATA_BYTES
    assert decode_jobs(text) == sorted(ids)[:kept]


@pytest.mark.parametrize(
    ("metadata", "jobs"),
    [
        ('{"fsus":1}', []),
        ('{"fsus":1,"jobs":["a",2,null]}', ["a"]),
        ('{"fsus":2,"jobs":["a"]}', []),
        ('["a"]', []),
    ],
    ids=["no-job-list", "non-string-ids", "other-format-version", "not-an-object"],
)
def test_unexpected_metadata_shapes_name_no_other_jobs(metadata, jobs):
    """Metadata of an unexpected shape never crashes the assignment and only string job ids
    of format 1 fence a partition."""
    assert decode_jobs(metadata) == jobs


def test_a_job_ending_makes_only_its_own_partitions_due():
    """A job's end rewrites the metadata of the partitions it carried records of, and causes
    no commit for the others."""
    ledger = JobLedger()
    ledger.started([TP], "j1")
    ledger.started([P1], "j2")
    ledger.committed([TP, P1])
    ledger.ended(["j2"])
    assert ledger.dirty() == {P1}
    assert decode_jobs(ledger.metadata(TP)) == ["j1"]


def test_a_failed_commit_makes_the_partitions_naming_jobs_due_again():
    """When the commit naming a new job fails, that job is named again in the next commit, so
    a new owner still learns about it."""
    ledger = JobLedger()
    ledger.started([TP], "j1")
    ledger.committed([TP, P1])
    ledger.recommit([TP, P1])
    assert ledger.dirty() == {TP}
    assert decode_jobs(ledger.metadata(TP)) == ["j1"]


def test_a_forgotten_partition_names_no_jobs_and_is_never_due():
    """After a partition moved away, this replica neither commits for it nor names its jobs
    (the next owner fences them from the metadata it reads)."""
    ledger = JobLedger()
    ledger.started([TP, P1], "j1")
    ledger.forget([TP])
    assert ledger.dirty() == {P1}
    assert ledger.metadata(TP) == ""
    assert decode_jobs(ledger.metadata(P1)) == ["j1"]


def test_the_read_position_and_the_users_travel_with_the_jobs():
    """``status`` reads how far a partition was read and how many users each job carries
    from the same metadata the next owner reads its fence from."""
    text = encode(["j2", "j1"], read=1234, users={"j1": 5, "j2": 7})
    assert decode(text) == Published(1234, {"j1": 5, "j2": 7})
    assert decode_jobs(text) == ["j1", "j2"]
    assert decode(encode([], read=0)) == Published(0, {})


@pytest.mark.parametrize("jobs", [200, 2000], ids=["jobs-fill-it", "jobs-overflow-it"])
def test_metadata_with_a_read_position_stays_within_kafkas_limit(jobs):
    """Over the broker's offset.metadata.max.bytes the commit itself would fail: the users go
    first, then the last jobs; the read position always stays."""
    ids = [f"job-{i:040d}" for i in range(jobs)]
    text = encode(ids, read=10**15, users={job: 50_000 for job in ids})
    assert len(text.encode()) <= MAX_METADATA_BYTES
    shown = decode(text)
    assert shown.read == 10**15
    assert len(shown.jobs) > 0 and list(shown.jobs) == sorted(ids)[: len(shown.jobs)]


@pytest.mark.parametrize(
    "metadata",
    [
        '{"fsus":1,"jobs":["j1"],"read":-4,"users":[3,4]}',
        '{"fsus":1,"jobs":["j1"],"read":"12","users":["3"]}',
        '{"fsus":1,"jobs":["j1"],"read":true,"users":[true]}',
    ],
    ids=["negative-and-misaligned", "strings", "booleans"],
)
def test_a_read_position_or_users_not_as_written_are_absent(metadata):
    """Metadata is a peer's word: what is not a count is not shown, never guessed at."""
    assert decode(metadata) == Published(None, {"j1": None})
