from worker.ledger import MAX_METADATA_BYTES, JobLedger, decode_jobs, encode_jobs

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
