"""The Helm chart, rendered by helm: what it refuses (with its own message) and what it deploys."""

from __future__ import annotations

import json

import pytest

from tests.chart.conftest import FULL, MINIMAL


def test_missing_required_values_are_each_named_in_the_charts_message(render):
    """With nothing set, the render fails with one message naming every missing value,
    not with a JSON-schema path."""
    rendered = render()
    assert not rendered.ok
    assert "missing required values:" in rendered.error
    for value in ("kafka.bootstrapServers", "kafka.topics", "fullstory.existingSecret"):
        assert value in rendered.error
    assert "schema" not in rendered.error


@pytest.mark.parametrize(
    ("missing", "values"),
    [
        ("kafka.bootstrapServers", {"kafka.topics": "t", "fullstory.apiKey": "k"}),
        ("kafka.topics", {"kafka.bootstrapServers": "k:9092", "fullstory.apiKey": "k"}),
        ("fullstory.existingSecret", {"kafka.bootstrapServers": "k:9092", "kafka.topics": "t"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_missing_value_alone_is_named(render, missing, values):
    """Setting two of the three required values names exactly the third."""
    rendered = render(set=values)
    assert not rendered.ok
    message = rendered.error.split("missing required values:")[1]
    assert missing in message
    assert len(message.split(";")) == 1


def test_minimal_values_render_every_default_manifest(render):
    """The required values alone give a Deployment, its ServiceAccount and its PDB."""
    rendered = render(MINIMAL)
    assert rendered.ok, rendered.error
    assert rendered.kinds() == {"Deployment", "ServiceAccount", "PodDisruptionBudget"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("serviceMonitor.enable", True),
        ("podDisruptionBudget.enable", True),
        ("image.tagg", "x"),
        ("keda.enable", True),
        ("networkPolicy.enable", True),
        ("strategy.rollingupdate.maxSurge", 1),
    ],
    ids=lambda v: str(v),
)
def test_misspelt_keys_are_refused(render, key, value):
    """A typo fails the install instead of leaving the feature silently at its default."""
    rendered = render(MINIMAL, set={key: value})
    assert not rendered.ok
    assert "additional properties" in rendered.error


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("log.level", "warn"),
        ("log.level", "critical"),
        ("log.format", "text"),
        ("shutdownTimeoutSeconds", 3601),
        ("batch.maxWaitMs", 3_600_001),
        ("jobMaxWaitSeconds", 59),
        ("propertyTypes", "v1"),
        ("sourceFormat", "avro"),
        ("sourceFormat", "Debezium"),
        ("onDelete", "purge"),
    ],
    ids=lambda v: str(v),
)
def test_values_the_worker_would_refuse_fail_the_install(render, key, value):
    """What the worker would exit 2 on at start-up fails at `helm install` instead."""
    rendered = render(MINIMAL, set={key: value})
    assert not rendered.ok
    assert key.split(".")[-1] in rendered.error


@pytest.mark.parametrize("value", [0, "0%"], ids=str)
def test_pdb_max_unavailable_zero_is_refused(render, value):
    """A PDB allowing no eviction would block node drains forever."""
    rendered = render(MINIMAL, set={"podDisruptionBudget.maxUnavailable": value})
    assert not rendered.ok
    assert "podDisruptionBudget.maxUnavailable 0 would block" in rendered.error


def test_pdb_lets_unhealthy_pods_go(render):
    """A pod that is not ready can always be evicted (it holds nothing worth protecting)."""
    spec = render(MINIMAL).one("PodDisruptionBudget")["spec"]
    assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert spec["maxUnavailable"] == 1


def test_recreate_renders_no_rolling_update(render):
    """The API server refuses a Recreate Deployment carrying the default rollingUpdate."""
    strategy = render(MINIMAL, set={"strategy.type": "Recreate"}).one("Deployment")["spec"][
        "strategy"
    ]
    assert strategy == {"type": "Recreate"}
    default = render(MINIMAL).one("Deployment")["spec"]["strategy"]
    assert default == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }


def test_keda_has_one_trigger_per_topic_reading_from_earliest(render):
    """Each topic gets its own trigger naming it (a trigger without a topic sees only topics
    the group has committed on, so a new group never scales from zero), and KEDA counts an
    uncommitted partition from its start, as the worker reads it."""
    scaled = render(FULL).one("ScaledObject")
    triggers = scaled["spec"]["triggers"]
    assert [t["metadata"]["topic"] for t in triggers] == ["users.changes", "users.deletes"]
    for trigger in triggers:
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["offsetResetPolicy"] == "earliest"
        assert trigger["metadata"]["consumerGroup"] == "fullstory-user-sync-prod"
        assert trigger["authenticationRef"]["name"] == "kafka-scram"


def test_keda_policy_is_earliest_without_an_override_and_follows_one(render):
    """Without kafka.config auto.offset.reset the policy is the worker's default, earliest."""
    base = {"keda.enabled": True, "kafka.partitionCount": 6}
    plain = render(MINIMAL, set=base).one("ScaledObject")["spec"]["triggers"]
    assert [t["metadata"]["offsetResetPolicy"] for t in plain] == ["earliest"]
    assert plain[0]["metadata"]["topic"] == "users.changes"
    latest = render(MINIMAL, set={**base, "kafka.config.auto\\.offset\\.reset": "latest"})
    assert (
        latest.one("ScaledObject")["spec"]["triggers"][0]["metadata"]["offsetResetPolicy"]
        == "latest"
    )


def test_keda_skips_empty_topic_names(render):
    """`a,,b ` gives triggers for a and b, never one with an empty topic."""
    rendered = render(
        MINIMAL,
        set={"keda.enabled": True, "kafka.partitionCount": 6},
        set_json={"kafka.topics": '"a,, b ,"'},
    )
    topics = [t["metadata"]["topic"] for t in rendered.one("ScaledObject")["spec"]["triggers"]]
    assert topics == ["a", "b"]
    assert rendered.env()["KAFKA_TOPICS"]["value"] == "a,b"


@pytest.mark.parametrize(
    "prop",
    ["sasl.password", "sasl.username", "ssl.key.pem", "sasl.oauthbearer.client.secret",
     "sasl.jaas.config", "sasl.oauthbearer.token.endpoint.credential", "some.token"],
)  # fmt: skip
def test_credentials_in_plain_kafka_config_are_refused(render, prop):
    """kafka.config lands in the Deployment in clear; credentials must come from a Secret."""
    key = "kafka.config." + prop.replace(".", "\\.")
    rendered = render(MINIMAL, set={key: "x"})
    assert not rendered.ok
    assert f"kafka.config.{prop} looks like a credential" in rendered.error


def _secret_ref(env: dict, name: str) -> tuple[str, str]:
    assert "value" not in env[name], f"{name} rendered in clear"
    ref = env[name]["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def test_secrets_come_from_secret_refs(render):
    """The API key, the registry's basic auth and the Kafka credentials reach the pod only
    through secretKeyRef, from the operator's Secrets or the chart's own."""
    rendered = render(FULL)
    env = rendered.env()
    assert _secret_ref(env, "FULLSTORY_API_KEY") == ("fs-sync", "FULLSTORY_API_KEY")
    assert _secret_ref(env, "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO") == (
        "schema-registry-auth",
        "user-info",
    )
    assert _secret_ref(env, "KAFKA_CFG_SASL_PASSWORD") == ("kafka-sasl", "password")
    assert _secret_ref(env, "KAFKA_CFG_SASL_USERNAME") == ("fs-sync", "KAFKA_CFG_SASL_USERNAME")
    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    # existingSecretKeys picks keys: the whole Secret is not loaded as well.
    assert {"secretRef": {"name": "kafka-sasl"}} not in container.get("envFrom", [])
    assert set(rendered.one("Secret")["data"]) == {"FULLSTORY_API_KEY", "KAFKA_CFG_SASL_USERNAME"}


def test_registry_user_info_from_values_goes_to_the_charts_secret(render):
    """basicAuth.userInfo is stored in the chart's Secret, never in the Deployment."""
    rendered = render(MINIMAL, set={"schemaRegistry.basicAuth.userInfo": "u:p"})
    env = rendered.env()
    assert _secret_ref(env, "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO")[1] == (
        "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"
    )
    assert "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO" in rendered.one("Secret")["data"]


def test_existing_kafka_secret_without_keys_is_loaded_whole(render):
    """kafka.existingSecret alone: its keys are env var names, loaded with envFrom."""
    rendered = render(MINIMAL, set={"kafka.existingSecret": "kafka-creds"})
    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "kafka-creds"}}]


def test_worker_settings_reach_the_pod(render):
    """The newer worker settings are values of the chart, rendered as the worker reads them."""
    env = render(FULL).env()
    values = {name: e.get("value") for name, e in env.items()}
    assert values["PROPERTY_TYPES"] == "suffixed"
    assert values["UID_ALLOW_FORMAT_CHARACTERS"] == "true"
    assert values["LOCAL_SCHEMA_IDS"] == "1,7"
    assert values["JOB_MAX_WAIT_S"] == "7200"
    assert values["FULLSTORY_ALLOW_INSECURE_HTTP"] == "false"
    assert values["MAX_PENDING_USERS"] == "250000"
    assert values["FULLSTORY_HTTP_TIMEOUT_S"] == "45"


def test_every_rendered_variable_is_a_worker_setting(render):
    """Nothing the chart sets is a variable the worker ignores."""
    from worker.bounded_http import PROXY_VARIABLES
    from worker.config.spec import PREFIXES, SPEC

    for name in render(FULL).env():
        if name == "TZ" or name in PROXY_VARIABLES:  # full-values' extraEnv; README's
            continue
        assert name in SPEC or any(name.startswith(p.prefix) for p in PREFIXES), name


def test_the_egress_proxy_reaches_the_pod_and_extra_env_can_override_it(render):
    """proxy.https / http / noProxy become HTTPS_PROXY / HTTP_PROXY / NO_PROXY; unset by
    default; a proxy URL with a password is refused at install (it would sit in the pod spec
    in clear), and one from a Secret through extraEnv comes after, so it wins."""
    assert not {"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"} & set(render(MINIMAL).env())
    values = {
        "proxy.https": "http://proxy.corp:3128",
        "proxy.http": "proxy.corp:3128",
        "proxy.noProxy": r".svc\,.cluster.local",  # helm's --set splits on a bare comma
    }
    env = render(MINIMAL, set=values).env()
    assert {n: env[n]["value"] for n in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")} == {
        "HTTPS_PROXY": "http://proxy.corp:3128",
        "HTTP_PROXY": "proxy.corp:3128",
        "NO_PROXY": ".svc,.cluster.local",
    }
    refused = render(MINIMAL, set={"proxy.https": "http://egress:pw@proxy.corp:3128"})
    assert not refused.ok and "proxy.https holds credentials" in refused.error
    assert ":pw@" not in refused.error
    secret = {"name": "HTTPS_PROXY", "valueFrom": {"secretKeyRef": {"name": "p", "key": "url"}}}
    rendered = render(MINIMAL, set=values, set_json={"extraEnv": json.dumps([secret])})
    container = rendered.workload()["spec"]["template"]["spec"]["containers"][0]
    names = [e["name"] for e in container["env"]]
    assert names.count("HTTPS_PROXY") == 2 and container["env"][-1] == secret


def test_network_policy_allows_only_dns_brokers_registry_and_fullstory(render):
    """Egress to the four peers the worker talks to, each on its ports; nothing else."""
    spec = render(FULL).one("NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    egress = spec["egress"]
    assert {p["port"] for p in egress[0]["ports"]} == {53}
    blocks = [([t["ipBlock"]["cidr"] for t in rule["to"]], [p["port"] for p in rule["ports"]])
              for rule in egress[1:]]  # fmt: skip
    assert blocks == [
        (["10.20.0.0/24", "10.20.1.0/24"], [9096]),
        (["10.30.0.10/32"], [443]),
        (["203.0.113.0/24"], [443]),
    ]
    assert spec["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_network_policy_without_broker_cidrs_is_refused(render):
    """Enabled without the brokers' addresses, it would cut the worker off from Kafka."""
    rendered = render(MINIMAL, set={"networkPolicy.enabled": True})
    assert not rendered.ok
    assert "networkPolicy.kafka.cidrs" in rendered.error


def test_prometheus_rule_alerts_on_the_workers_metrics(render):
    """Stalled commits while lag grows, dead letters, failed jobs, not ready: on the metric
    names and labels worker/runtime/metrics.py exports."""
    rule = render(FULL).one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(rules) >= {
        "FullStoryUserSyncNoCommitProgress",
        "FullStoryUserSyncDeadLetters",
        "FullStoryUserSyncFailedJobs",
        "FullStoryUserSyncNotReady",
    }
    stalled = rules["FullStoryUserSyncNoCommitProgress"]["expr"]
    assert "fsus_last_commit_timestamp_seconds" in stalled and "fsus_consumer_lag" in stalled
    assert "> 900" in stalled  # 15m
    assert "fsus_dead_letters_total" in rules["FullStoryUserSyncDeadLetters"]["expr"]
    assert 'status="FAILED"' in rules["FullStoryUserSyncFailedJobs"]["expr"]
    assert "kube_pod_status_ready" in rules["FullStoryUserSyncNotReady"]["expr"]
    assert rules["FullStoryUserSyncDeadLetters"]["labels"] == {
        "severity": "warning",
        "team": "data-platform",
    }


def test_custom_resources_are_well_formed(render):
    """The validator has no schema for KEDA's and Prometheus Operator's kinds: their
    essentials are checked here."""
    rendered = render(FULL)
    scaled = rendered.one("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert (
        scaled["spec"]["scaleTargetRef"]["name"] == rendered.one("Deployment")["metadata"]["name"]
    )
    assert scaled["spec"]["maxReplicaCount"] == 12  # min(partitionCount 12, orgMaxJobs 80)
    monitor = rendered.one("ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "http-metrics"
    service_ports = rendered.one("Service")["spec"]["ports"]
    assert service_ports[0]["name"] == "http-metrics"
