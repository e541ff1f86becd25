"""Scenario 5: FullStory fails jobs with per-user errors; those users go to the DLQ."""

from __future__ import annotations

import random

import pytest

from tests.fakes.avro import event
from tests.integration.faults.checker import check, publish
from tests.integration.faults.commits import CommitWatcher, wait_for_commits
from tests.integration.faults.jobs import job_errors
from tests.integration.faults.topics import Record, StreamProducer, read_topic
from tests.integration.oracle import random_events

pytestmark = pytest.mark.integration

# uid prefix -> (what breaks FullStory's rules, the error code, users); "bad" users are
# refused by FullStory itself (the sandbox's reject_uids fault): their letters are
# `fullstory_rejected`, carry FullStory's own code (`invalid_user`) in `dlq.fullstory.code` and
# name the failed job. The others break a published rule, so the worker refuses each such event
# before it is merged: its letter names no job, and the user's other events still go.
BAD_USERS = {
    "bad": ({}, "fullstory_rejected", 24),
    "numeric": ({"9lives": 9}, "invalid_property_name", 8),  # not ^[A-Za-z][A-Za-z0-9_]*$
    "huge": ({"bio": "x" * 9_000}, "property_too_large", 8),  # a value over 8192 bytes
}
POISONED = [f"user-{n:05d}" for n in (3, 17, 42, 99, 123)]  # good users with one bad event


def _made_bad(record: Record, code: str) -> bool:
    """The records this scenario makes bad, with the code they are dead-lettered with."""
    uid = record.uid or ""
    if uid in POISONED:
        return code == "invalid_property_name" and "9lives" in record.event["properties"]  # type: ignore[index]
    prefix = uid.split("-")[0]
    return prefix in BAD_USERS and code == BAD_USERS[prefix][1]


def _stream(seed: int) -> list[dict]:
    """Good changes with bad users' changes and a few poisoned changes of good users mixed in."""
    rng = random.Random(seed)
    events = random_events(3_000, uids=400, seed=seed)
    bad = []
    for prefix, (properties, _code, users) in BAD_USERS.items():
        for n in range(users):
            for _ in range(2):
                bad.append(
                    event(f"{prefix}-{n}", display_name=f"{prefix} {n}", properties=properties)
                )
    bad += [event(uid, properties={"9lives": 1, "visits": 5}) for uid in POISONED]
    for change in bad:
        events.insert(rng.randrange(len(events)), change)
    return events


def test_users_fullstory_rejects_go_to_the_dlq_with_its_error_and_the_rest_is_applied(
    broker, sandbox, stream, start_worker, capsys, record_property
):
    """Jobs end FAILED for some users (FullStory rejects them; errors read over several
    pages): exactly those users' records land in the DLQ as `fullstory_rejected` with
    FullStory's code (`dlq.fullstory.code`), message and job id. Events that break a published
    rule (a property name FullStory refuses, a value over 8192 bytes) are dead-lettered by the
    worker before merging, alone and without a job. Nothing else lands there, every other change
    is applied in order, and the offsets reach the log end."""
    topic, dlq, group = stream(2)
    sandbox.set_faults(reject_uids="^bad-", page_size=3, job_delay_ms=200)
    events = _stream(seed=51)
    producer = StreamProducer(broker.bootstrap, topic)
    with CommitWatcher(broker.bootstrap, group, topic) as watcher:
        producer.send(events)
        worker = start_worker(topic, dlq, group, BATCH_MAX_USERS="60", MAX_JOBS_IN_FLIGHT="3")
        wait_for_commits(watcher, broker.end_offsets(topic), 120, "the stream to drain")
        verdict = check(
            bootstrap=broker.bootstrap,
            sandbox=sandbox,
            topic=topic,
            dlq=dlq,
            group=group,
            watcher=watcher,
            workers=[worker],
            started_s=producer.started_s,
            expected_dead_letters=_made_bad,
        )
    assert worker.terminate() == 0
    assert verdict.problems == []

    errors = {
        (job_id, error["user"]["uid"]): error
        for job_id, found in job_errors(sandbox, sandbox.jobs()).items()
        for error in found
    }
    letters = read_topic(broker.bootstrap, dlq)  # to its end: every letter there is
    by_uid: dict[str, list[dict[str, bytes]]] = {}
    for letter in letters:
        headers = dict(letter.headers())
        uid = letter.key().decode()
        by_uid.setdefault(uid, []).append(headers)
        assert headers["dlq.source.topic"] == topic.encode()
        if not uid.startswith("bad-"):  # refused by the worker, before any job
            assert "dlq.job.id" not in headers, headers
            assert "dlq.fullstory.code" not in headers, headers
            continue
        error = errors.get((headers["dlq.job.id"].decode(), uid))
        assert error is not None, f"a dead letter names no failed user of its job: {headers}"
        assert headers["dlq.error.code"] == b"fullstory_rejected"
        assert headers["dlq.fullstory.code"].decode() == error["code"]
        assert headers["dlq.error.message"].decode() == error["message"]
    for prefix, (_properties, code, users) in BAD_USERS.items():
        for n in range(users):
            uid = f"{prefix}-{n}"
            assert [h["dlq.error.code"].decode() for h in by_uid[uid]] == [code, code], uid
            assert uid not in sandbox.users()  # every event of theirs is bad
    for uid in POISONED:  # one bad event each: only it is dead-lettered, the rest went
        assert [h["dlq.error.code"].decode() for h in by_uid[uid]] == ["invalid_property_name"]
        assert "9lives" not in sandbox.users()[uid].get("properties", {})
    assert set(by_uid) == {
        f"{p}-{n}" for p, (_, _, users) in BAD_USERS.items() for n in range(users)
    } | set(POISONED)

    error_pages = max(len(found) for found in job_errors(sandbox, sandbox.jobs()).values())
    publish(
        capsys,
        record_property,
        "rejected users",
        {**verdict.numbers, "failed_jobs": len({j for j, _ in errors}), "most_errors": error_pages},
    )
    assert error_pages > 3, "no failed job had more than one page of errors"
    assert verdict.numbers["duplicates"] == 0
