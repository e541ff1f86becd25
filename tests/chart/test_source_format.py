"""SOURCE_FORMAT, FIELD_MAPPING and ON_DELETE in the chart: the field mapping written as JSON to a
ConfigMap, mounted read-only, named by FIELD_MAPPING and rolled by its checksum; what is refused."""

from __future__ import annotations

import json
import posixpath

import pytest
import yaml

from tests.chart.conftest import DEBEZIUM, FULL, MINIMAL
from worker.config.choices import PropertyTypes
from worker.errors import ConfigError
from worker.events.mapping import parse_mapping

DEBEZIUM_VALUES = yaml.safe_load(DEBEZIUM.read_text())
# MINIMAL made a Debezium source, but for its mapping.
NO_MAPPING = {"sourceFormat": "debezium", "schemaRegistry.url": "http://registry:8081"}


def _pod(rendered) -> dict:
    return rendered.one("Deployment")["spec"]["template"]


def _mapping_file(rendered) -> tuple[str, str]:
    """(the path the container sees the ConfigMap's mapping at, the file's content), found by
    following the pod's volume and the container's mount to the ConfigMap."""
    config_map = rendered.one("ConfigMap")
    [(key, content)] = config_map["data"].items()
    name = config_map["metadata"]["name"]
    pod = _pod(rendered)["spec"]
    [volume] = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == name]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount.get("readOnly") is True, mount
    assert "subPath" not in mount, mount
    items = {i["key"]: i["path"] for i in volume["configMap"].get("items", [])}
    return posixpath.join(mount["mountPath"], items.get(key, key)), content


def test_canonical_is_the_default_with_nothing_to_map(render):
    """Without sourceFormat the worker reads its own event: no mapping, no ConfigMap, no mount,
    and deletes are ignored."""
    rendered = render(MINIMAL)
    env = rendered.env()
    assert env["SOURCE_FORMAT"]["value"] == "canonical"
    assert env["ON_DELETE"]["value"] == "ignore"
    assert "FIELD_MAPPING" not in env
    assert "ConfigMap" not in rendered.kinds()
    pod = _pod(rendered)
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["tmp"]
    assert "checksum/field-mapping" not in pod["metadata"].get("annotations", {})


def test_config_map_holds_the_mapping_as_json_exactly_as_given(render):
    """The file is the fieldMapping value as JSON, key for key: nothing added or dropped."""
    rendered = render(DEBEZIUM)
    assert rendered.ok, rendered.error
    config_map = rendered.one("ConfigMap")
    assert config_map["metadata"]["name"] == "rel-fullstory-user-sync-field-mapping"
    _, content = _mapping_file(rendered)
    assert json.loads(content) == DEBEZIUM_VALUES["fieldMapping"]
    # What the worker does with it at start-up: it reads as a valid mapping.
    parse_mapping(json.loads(content), PropertyTypes.V2)


def test_field_mapping_names_the_mounted_file(render):
    """FIELD_MAPPING is the path where the pod sees the ConfigMap's file, mounted read-only."""
    rendered = render(DEBEZIUM)
    path, _ = _mapping_file(rendered)
    env = rendered.env()
    assert env["FIELD_MAPPING"]["value"] == path
    assert path == "/etc/fullstory-user-sync/field-mapping.json"


def test_debezium_values_reach_the_pod(render):
    """SOURCE_FORMAT and ON_DELETE are the values as given, beside the registry the worker
    needs for Debezium sources."""
    env = render(DEBEZIUM).env()
    assert env["SOURCE_FORMAT"]["value"] == "debezium"
    assert env["ON_DELETE"]["value"] == "delete"
    assert env["SCHEMA_REGISTRY_URL"]["value"] == "http://schema-registry.kafka:8081"
    assert render(MINIMAL, set={"onDelete": "delete"}).env()["ON_DELETE"]["value"] == "delete"


def test_a_changed_mapping_rolls_the_pods(render):
    """The pod template carries the mapping's checksum: a new mapping is a new template (a
    rollout), the same mapping is not."""

    def checksum(**kwargs) -> str:
        return _pod(render(DEBEZIUM, **kwargs))["metadata"]["annotations"]["checksum/field-mapping"]

    assert checksum() == checksum()
    assert checksum() != checksum(set={"fieldMapping.properties.plan": "plan_name"})
    assert checksum() != checksum(set={"fieldMapping.email": "work_email"})


def test_debezium_without_a_mapping_names_it_among_the_missing_values(render):
    """sourceFormat debezium without fieldMapping (or without the registry) fails with the
    chart's one message naming each missing value."""
    rendered = render(MINIMAL, set=NO_MAPPING)
    assert not rendered.ok
    message = rendered.error.split("missing required values:")[1]
    assert "fieldMapping (sourceFormat debezium" in message
    assert len(message.split(";")) == 1
    both = render(MINIMAL, set={"sourceFormat": "debezium"})
    assert not both.ok
    message = both.error.split("missing required values:")[1]
    assert "schemaRegistry.url (sourceFormat debezium" in message
    assert "fieldMapping (sourceFormat debezium" in message
    assert "execution error" in both.error  # the template's message, not a schema path


def test_a_mapping_with_the_canonical_format_is_refused(render):
    """The worker exits 2 on FIELD_MAPPING with the canonical source: the install fails first."""
    rendered = render(MINIMAL, set={"fieldMapping.uid": "id"})
    assert not rendered.ok
    assert "fieldMapping is set but sourceFormat is canonical" in rendered.error
    explicit = render(DEBEZIUM, set={"sourceFormat": "canonical"})
    assert not explicit.ok
    assert "fieldMapping is set but sourceFormat is canonical" in explicit.error


@pytest.mark.parametrize(
    ("mapping", "error"),
    [
        ({"email": "email"}, "'uid' required"),
        ({"properties": {"plan": "pricing_plan"}}, "'uid' required"),
        ({"uid": "id", "emial": "email"}, "additional properties 'emial'"),
        ({"uid": ""}, "minLength"),
        ({"uid": "id", "properties": {"plan": ""}}, "minLength"),
        ({"uid": "id", "properties": {"visits": 3}}, "want string"),
        ({"uid": "id", "properties": ["plan"]}, "want object"),
        ({"uid": 7}, "want string"),
    ],
    ids=json.dumps,
)
def test_mappings_the_worker_refuses_fail_the_install(render, mapping, error):
    """values.schema.json's fieldMapping refuses what worker.events.mapping would refuse at
    start-up (exit 2): the install fails instead of the pod."""
    with pytest.raises(ConfigError):
        parse_mapping(mapping, PropertyTypes.V2)
    rendered = render(MINIMAL, set=NO_MAPPING, set_json={"fieldMapping": json.dumps(mapping)})
    assert not rendered.ok
    assert "/fieldMapping" in rendered.error and error in rendered.error, rendered.error


@pytest.mark.parametrize(
    "mapping",
    [{"uid": "id"}, {"uid": "id", "display_name": "name", "properties": {}}],
    ids=json.dumps,
)
def test_smallest_mappings_render(render, mapping):
    """uid alone is a whole mapping, for the chart as for the worker."""
    parse_mapping(mapping, PropertyTypes.V2)
    rendered = render(MINIMAL, set=NO_MAPPING, set_json={"fieldMapping": json.dumps(mapping)})
    assert rendered.ok, rendered.error
    assert json.loads(_mapping_file(rendered)[1]) == mapping


def test_full_values_delete_in_fullstory(render):
    """full-values (every option on) deletes the source's deleted users (canonical tombstones)."""
    env = render(FULL).env()
    assert env["ON_DELETE"]["value"] == "delete"
    assert env["SOURCE_FORMAT"]["value"] == "canonical"
