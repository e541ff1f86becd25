"""Job lifecycle: asynchronous completion, upsert/merge, completion order, queueing."""

from __future__ import annotations

import httpx

from fullstory_sandbox import Sandbox

from .helpers import API_KEY, batch, finished_status, job_status, make_client


def submit(client: httpx.Client, *users: dict[str, object]) -> str:
    response = client.post("/v2/users/batch", json=batch(*users))
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job"]["id"]
    return job_id


def test_job_completes_after_the_delay_and_only_then_applies(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    """A job is PROCESSING with nothing applied, then COMPLETED with its users stored."""
    job_id = submit(client, {"uid": "a", "display_name": "Ann"})
    processing = job_status(client, job_id)
    assert processing["job"]["status"] == "PROCESSING"
    assert "finished" not in processing["job"]
    assert "errors" not in processing
    assert sandbox.users() == {}

    done = finished_status(client, job_id)
    assert done["job"]["status"] == "COMPLETED"
    assert done["imports"] == 1
    assert "errors" not in done
    assert done["job"]["finished"] >= done["job"]["created"]
    assert sandbox.users()["a"]["display_name"] == "Ann"


def test_upsert_overwrites_present_fields_and_merges_properties(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    """Present fields overwrite, absent ones stay; properties merge key by key."""
    first = submit(
        client,
        {
            "uid": "a",
            "display_name": "Ann",
            "email": "ann@example.com",
            "properties": {"plan": "free", "seats": 1, "address": {"city": "Oslo", "zip": "0150"}},
        },
    )
    finished_status(client, first)
    second = submit(
        client,
        {
            "uid": "a",
            "display_name": "Ann B",
            "properties": {"plan": "paid", "address": {"city": "Bergen"}},
        },
    )
    finished_status(client, second)

    user = sandbox.users()["a"]
    assert user["display_name"] == "Ann B"
    assert user["email"] == "ann@example.com"
    assert user["properties"] == {"plan": "paid", "seats": 1, "address": {"city": "Bergen"}}
    assert user["types"] == {"plan": "str", "seats": "real", "address.city": "str"}
    assert sandbox.stats()["duplicates"] == 1


def test_a_property_set_to_null_loses_its_type(client: httpx.Client, sandbox: Sandbox) -> None:
    """null clears a property's value and the type recorded for it; the others keep theirs
    (flat properties: no nested path anywhere on the user)."""
    finished_status(client, submit(client, {"uid": "a", "properties": {"plan": "free", "n": 2}}))
    finished_status(client, submit(client, {"uid": "a", "properties": {"plan": None}}))

    user = sandbox.users()["a"]
    assert user["properties"] == {"plan": None, "n": 2}
    assert user["types"] == {"n": "real"}


def test_user_keeps_its_fullstory_id_across_upserts(client: httpx.Client) -> None:
    """Re-importing a uid updates the same FullStory user (same `id` in the imports)."""
    ids = []
    for name in ("one", "two"):
        job_id = submit(client, {"uid": "a", "display_name": name})
        finished_status(client, job_id)
        imports = client.get(f"/v2/users/batch/{job_id}/imports").json()
        assert imports["total_records"] == "1"
        ids.append(imports["results"][0]["id"])
        assert imports["results"][0]["uid"] == "a"
    assert ids[0] == ids[1]


def test_jobs_apply_in_completion_order_not_creation_order(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    """A later, faster job for the same uid is overwritten by an earlier, slower one."""
    sandbox.set_faults(job_delay_ms=600)
    slow = submit(client, {"uid": "a", "display_name": "from the slow, older job"})
    sandbox.set_faults(job_delay_ms=50)
    fast = submit(client, {"uid": "a", "display_name": "from the fast, newer job"})

    finished_status(client, fast)
    assert sandbox.users()["a"]["display_name"] == "from the fast, newer job"
    finished_status(client, slow)
    assert sandbox.users()["a"]["display_name"] == "from the slow, older job"
    jobs = {job["id"]: job for job in sandbox.jobs()}
    assert jobs[fast]["finished_monotonic"] < jobs[slow]["finished_monotonic"]


def test_queued_job_starts_when_a_running_slot_frees() -> None:
    """With every running slot taken, a new job queues and starts as soon as one ends."""
    with (
        Sandbox(api_key=API_KEY, job_delay_ms=150, max_running_jobs=2) as sb,
        make_client(sb) as client,
    ):
        ids = [submit(client, {"uid": f"u{i}"}) for i in range(3)]
        states = {job["id"]: job["state"] for job in sb.jobs()}
        assert [states[i] for i in ids] == ["running", "running", "queued"]
        assert job_status(client, ids[2])["job"]["status"] == "PROCESSING"

        assert sb.wait_idle(5)
        jobs = {job["id"]: job for job in sb.jobs()}
        first_end = min(jobs[i]["finished_monotonic"] for i in ids[:2])
        assert jobs[ids[2]]["started_monotonic"] >= first_end
        assert jobs[ids[2]]["state"] == "completed"
        assert sb.stats()["jobs"]["max_running"] == 2


def test_jitter_spreads_job_durations() -> None:
    """With jitter, job durations vary within delay..delay+jitter."""
    with (
        Sandbox(api_key=API_KEY, job_delay_ms=50, job_jitter_ms=200, seed=1) as sb,
        make_client(sb) as client,
    ):
        for i in range(8):
            submit(client, {"uid": f"u{i}"})
        assert sb.wait_idle(5)
        durations = [j["finished_monotonic"] - j["started_monotonic"] for j in sb.jobs()]
        assert all(0.05 <= d < 0.5 for d in durations), durations
        assert max(durations) - min(durations) > 0.02


def test_admin_jobs_show_uids_and_running_intervals(client: httpx.Client, sandbox: Sandbox) -> None:
    """/_sandbox/jobs lists each job's uids and start/finish times, so overlaps are checkable."""
    job_id = submit(client, {"uid": "a"}, {"uid": "b"}, {"uid": ""})
    finished_status(client, job_id)
    (job,) = sandbox.jobs()
    assert job["uids"] == ["a", "b", ""]
    assert job["request_count"] == 3
    assert job["errors"] == 1
    assert job["imports"] == 2
    assert job["status"] == "FAILED"
    assert job["created_monotonic"] <= job["started_monotonic"] < job["finished_monotonic"]
    assert job["idempotency_key"] is None
