"""staticMembership.enabled: the worker as a StatefulSet of static group members, each pod's
KAFKA_CFG_GROUP_INSTANCE_ID its own name (the downward API); the same pod as the Deployment."""

from __future__ import annotations

import pytest

from tests.chart.conftest import FULL, MINIMAL, STATIC

ON = {"staticMembership.enabled": True}
INSTANCE_ID = {
    "name": "KAFKA_CFG_GROUP_INSTANCE_ID",
    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
}


def test_off_by_default_a_deployment_of_dynamic_members(render):
    rendered = render(MINIMAL)
    assert rendered.workload()["kind"] == "Deployment"
    assert "StatefulSet" not in rendered.kinds()
    assert "KAFKA_CFG_GROUP_INSTANCE_ID" not in rendered.env()
    assert "Service" not in rendered.kinds()


def test_each_pod_is_a_static_member_named_by_its_pod(render):
    """The id is the pod's name, read from the API (not a value): unique per replica, the same
    across the pod's restarts."""
    rendered = render(MINIMAL, set=ON)
    assert rendered.ok, rendered.error
    assert "Deployment" not in rendered.kinds()
    assert rendered.workload()["kind"] == "StatefulSet"
    assert rendered.env()["KAFKA_CFG_GROUP_INSTANCE_ID"] == INSTANCE_ID


def test_statefulset_starts_replicas_together_and_rolls_one_by_one(render):
    rendered = render(MINIMAL, set=ON)
    spec = rendered.one("StatefulSet")["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["updateStrategy"] == {"type": "RollingUpdate"}
    assert spec["replicas"] == 2
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    # The governing Service StatefulSets require: headless, selecting the same pods.
    [headless] = [d for d in rendered.docs if d["kind"] == "Service"]
    assert headless["metadata"]["name"] == spec["serviceName"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == spec["selector"]["matchLabels"]


@pytest.mark.parametrize("values", [MINIMAL, FULL], ids=["minimal", "full"])
def test_the_pod_is_the_deployments_but_for_the_instance_id(render, values):
    """One pod template for both kinds (_pod.tpl): with every option on, the StatefulSet's pod
    is the Deployment's, containers, volumes, probes and all, plus the instance id."""
    deployment = render(values).one("Deployment")["spec"]["template"]
    statefulset = render(values, set=ON).one("StatefulSet")["spec"]["template"]
    env = statefulset["spec"]["containers"][0]["env"]
    assert INSTANCE_ID in env
    env.remove(INSTANCE_ID)
    assert statefulset == deployment


def test_keda_scales_the_statefulset(render):
    rendered = render(STATIC)
    assert rendered.ok, rendered.error
    target = rendered.one("ScaledObject")["spec"]["scaleTargetRef"]
    statefulset = rendered.one("StatefulSet")
    assert target == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": statefulset["metadata"]["name"],
    }
    assert "replicas" not in statefulset["spec"]  # KEDA owns the count
    assert rendered.env()["KAFKA_CFG_SESSION_TIMEOUT_MS"] == {
        "name": "KAFKA_CFG_SESSION_TIMEOUT_MS",
        "value": "30000",
    }
    assert render(FULL).one("ScaledObject")["spec"]["scaleTargetRef"]["kind"] == "Deployment"


@pytest.mark.parametrize(
    "where",
    ["kafka.config.group\\.instance\\.id", "kafka.secretConfig.group\\.instance\\.id"],
)
def test_one_instance_id_for_every_pod_is_refused(render, where):
    """Every pod would have the same id: two live members with one id fence each other."""
    rendered = render(MINIMAL, set={where: "replica"})
    assert not rendered.ok
    assert "staticMembership.enabled" in rendered.error


def test_static_membership_under_the_consumer_protocol_is_refused(render):
    """Kafka 4's consumer protocol refuses a crashed member's id until its session expires
    (tests/integration/test_static_membership.py): the restarted pod would exit, not recover."""
    rendered = render(MINIMAL, set={**ON, "kafka.config.group\\.protocol": "consumer"})
    assert not rendered.ok
    assert "group.protocol=consumer" in rendered.error
    assert render(MINIMAL, set={"kafka.config.group\\.protocol": "consumer"}).ok
