"""The org's FullStory budget in the chart: fullstory.orgMaxJobs / orgMaxOperations reach the
pod, and the replicas scale without any setting changing (they share the budget, see
worker/fullstory/budget.py). What is still refused: more replicas than partitions (idle) or than
org jobs (each replica with partitions takes one job, so the group would overshoot), and the
removed fullstory.runningJobsLimit."""

from __future__ import annotations

import pytest

from tests.chart.conftest import FULL, MINIMAL, STATIC


@pytest.mark.parametrize("values", [MINIMAL, STATIC], ids=["deployment", "statefulset"])
def test_org_budget_defaults_reach_the_pod(render, values):
    """Deployment and StatefulSet alike (one pod template): the worker's defaults, and the
    per-pod ceiling beside them."""
    env = render(values).env()
    assert env["FULLSTORY_ORG_MAX_JOBS"]["value"] == "100"
    assert env["FULLSTORY_ORG_MAX_OPERATIONS"]["value"] == "400000"
    assert env["MAX_JOBS_IN_FLIGHT"]["value"] == "10"


def test_org_budget_values_reach_the_pod(render):
    env = render(FULL).env()
    assert env["FULLSTORY_ORG_MAX_JOBS"]["value"] == "80"
    assert env["FULLSTORY_ORG_MAX_OPERATIONS"]["value"] == "300000"
    assert env["MAX_JOBS_IN_FLIGHT"]["value"] == "8"
    bounds = {"fullstory.orgMaxJobs": 200, "fullstory.orgMaxOperations": 500_000}
    env = render(MINIMAL, set=bounds).env()
    assert env["FULLSTORY_ORG_MAX_JOBS"]["value"] == "200"
    assert env["FULLSTORY_ORG_MAX_OPERATIONS"]["value"] == "500000"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("fullstory.orgMaxJobs", 0),
        ("fullstory.orgMaxJobs", 201),
        ("fullstory.orgMaxOperations", 0),
        ("fullstory.orgMaxOperations", 500_001),
    ],
    ids=str,
)
def test_org_budget_outside_the_workers_range_fails_the_install(render, key, value):
    rendered = render(MINIMAL, set={key: value})
    assert not rendered.ok
    assert key.split(".")[-1] in rendered.error


@pytest.mark.parametrize("partitions", [0, 20, 24])
@pytest.mark.parametrize("jobs", [10, 100])
def test_twenty_replicas_render_with_no_other_setting(render, partitions, jobs):
    """The old rule (replicas x maxJobsInFlight under 100) capped the defaults at 9 pods; the
    replicas now share the org budget, so 1 to 20 render with everything else unchanged,
    whatever the per-pod ceiling."""
    for replicas in (1, 9, 10, 20):
        values = {"replicaCount": replicas, "maxJobsInFlight": jobs}
        if partitions:
            values["kafka.partitionCount"] = partitions
        rendered = render(MINIMAL, set=values)
        assert rendered.ok, (replicas, rendered.error)
        assert rendered.one("Deployment")["spec"]["replicas"] == replicas


def test_twenty_static_replicas_render(render):
    rendered = render(
        STATIC, set={"keda.enabled": False, "replicaCount": 20, "kafka.partitionCount": 24}
    )
    assert rendered.ok, rendered.error
    assert rendered.one("StatefulSet")["spec"]["replicas"] == 20


def test_more_replicas_than_org_jobs_are_refused(render):
    """Each replica with partitions takes at least one job: 6 replicas over an org budget of 4
    would have 6 in flight."""
    rendered = render(MINIMAL, set={"replicaCount": 6, "fullstory.orgMaxJobs": 4})
    assert not rendered.ok
    assert "replicaCount (6) exceeds fullstory.orgMaxJobs (4)" in rendered.error
    assert render(MINIMAL, set={"replicaCount": 4, "fullstory.orgMaxJobs": 4}).ok


def test_more_replicas_than_partitions_are_still_refused(render):
    rendered = render(MINIMAL, set={"replicaCount": 7, "kafka.partitionCount": 6})
    assert not rendered.ok
    assert "replicaCount (7) exceeds kafka.partitionCount (6)" in rendered.error


KEDA = {"keda.enabled": True}


@pytest.mark.parametrize(
    ("partitions", "org_jobs", "expected"),
    [(12, 100, 12), (50, 20, 20), (200, 200, 200), (1, 1, 1), (20, 100, 20)],
)
@pytest.mark.parametrize("jobs", [1, 10, 100])
def test_keda_max_defaults_to_min_of_partitions_and_org_jobs(
    render, partitions, org_jobs, expected, jobs
):
    """Not (runningJobsLimit - 1) / maxJobsInFlight any more: maxJobsInFlight plays no part."""
    rendered = render(
        MINIMAL,
        set={
            **KEDA,
            "kafka.partitionCount": partitions,
            "fullstory.orgMaxJobs": org_jobs,
            "maxJobsInFlight": jobs,
        },
    )
    assert rendered.ok, rendered.error
    assert rendered.one("ScaledObject")["spec"]["maxReplicaCount"] == expected


def test_keda_max_of_full_values_is_its_partition_count(render):
    assert render(FULL).one("ScaledObject")["spec"]["maxReplicaCount"] == 12


@pytest.mark.parametrize(
    ("partitions", "org_jobs", "override"), [(12, 100, 13), (50, 20, 21), (200, 200, 201)]
)
def test_keda_max_override_above_the_bound_is_refused(render, partitions, org_jobs, override):
    bound = min(partitions, org_jobs)
    values = {**KEDA, "kafka.partitionCount": partitions, "fullstory.orgMaxJobs": org_jobs}
    rendered = render(MINIMAL, set={**values, "keda.maxReplicaCount": override})
    assert not rendered.ok
    assert (
        f"keda.maxReplicaCount ({override}) exceeds min(kafka.partitionCount, "
        f"fullstory.orgMaxJobs) = min({partitions}, {org_jobs}) = {bound}"
    ) in rendered.error
    assert "overshoot the org budget" in rendered.error
    # At the bound, or under it, the override is KEDA's max as given.
    for allowed in (bound, max(1, bound - 1)):
        ok = render(MINIMAL, set={**values, "keda.maxReplicaCount": allowed})
        assert ok.ok, ok.error
        assert ok.one("ScaledObject")["spec"]["maxReplicaCount"] == allowed


def test_keda_min_above_the_max_is_refused(render):
    values = {**KEDA, "kafka.partitionCount": 6, "keda.minReplicaCount": 7}
    rendered = render(MINIMAL, set=values)
    assert not rendered.ok
    assert "keda.minReplicaCount (7) exceeds the effective maxReplicaCount (6)" in rendered.error


@pytest.mark.parametrize("values", [MINIMAL, FULL, STATIC], ids=["minimal", "full", "static"])
@pytest.mark.parametrize("limit", [1, 80, 100])
def test_the_removed_running_jobs_limit_is_refused_pointing_to_org_max_jobs(render, values, limit):
    """An operator's old value is not silently ignored: the render fails with one message
    naming its replacement (the schema lets the key through so that this message, not a
    bare `additional properties` error, is what the operator reads)."""
    rendered = render(values, set={"fullstory.runningJobsLimit": limit})
    assert not rendered.ok
    assert f"fullstory.runningJobsLimit ({limit}) was removed" in rendered.error
    assert "Set fullstory.orgMaxJobs instead" in rendered.error
    assert "additional properties" not in rendered.error
