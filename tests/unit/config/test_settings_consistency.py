"""The Helm chart's values schema and the README's settings table against ``worker.config.spec``.

The chart annotates each value that becomes a worker variable with ``x-env`` (its value is the
variable's), ``x-env-secret`` (the variable comes from a Secret holding it), ``x-env-prefix``
(a map whose keys become ``KAFKA_CFG_*``) or ``x-env-file`` (the value is the content of the file
the variable names: the chart writes it to a ConfigMap, mounts it and sets the variable to its
path). No helm needed: ``tests/chart`` renders the chart.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from worker.bounded_http import PROXY_VARIABLES
from worker.config import kafka as kafka_config
from worker.config.settings import load_settings
from worker.config.spec import PREFIXES, SETTINGS, SPEC, Setting, doc_table
from worker.errors import ConfigError
from worker.events import mapping

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "fullstory-user-sync"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
BASE = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "KAFKA_TOPICS": "t", "FULLSTORY_API_KEY": "k"}

# Where the chart deliberately accepts less than the worker, and why.
CHART_NARROWS = {
    ("HTTP_PORT", "minimum"): (1, "the probes and /metrics need the port; 0 turns them off"),
}
# Worker settings the chart does not offer as values (extraEnv can still set them), and why.
NOT_IN_CHART = {
    "HTTP_HOST": "the pod's health server listens on every address of its own network namespace",
}
# Object blocks whose keys are Kubernetes' (or Prometheus Operator's) to define, passed through.
PASSTHROUGH = {
    "global", "podAnnotations", "podLabels", "podSecurityContext", "securityContext",
    "resources", "nodeSelector", "affinity", "keda.behavior", "serviceAccount.annotations",
    "service.annotations", "serviceMonitor.labels",
}  # fmt: skip


def _walk(node: dict, path: str = ""):
    """(dotted path, schema node) of every node under ``properties``, depth first."""
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{key}" if path else key)


NODES = dict(_walk(SCHEMA))
BY_ENV = {node["x-env"]: (path, node) for path, node in NODES.items() if "x-env" in node}
FILES = {node["x-env-file"]: (path, node) for path, node in NODES.items() if "x-env-file" in node}


def _expected(setting: Setting) -> dict[str, object]:
    """The JSON-schema keywords a chart value for ``setting`` must carry."""
    kind = {"int": "integer", "bool": "boolean", "list": "array"}.get(setting.kind, "string")
    expected: dict[str, object] = {"type": kind}
    if setting.kind == "int":
        expected |= {"minimum": setting.minimum, "maximum": setting.maximum}
    if setting.kind == "enum":
        expected["enum"] = list(setting.choices)
    return expected


def _actual(setting: Setting, node: dict) -> dict[str, object]:
    actual = {key: node.get(key) for key in ("type", "minimum", "maximum", "enum") if key in node}
    if "oneOf" in node:  # KAFKA_TOPICS: a list, or the comma-separated string itself
        types = {branch["type"] for branch in node["oneOf"]}
        assert types == {"array", "string"}, node
        actual["type"] = "array"
    if setting.kind == "int":
        for keyword in ("minimum", "maximum"):
            narrowed = CHART_NARROWS.get((setting.name, keyword))
            if narrowed is not None and actual.get(keyword) == narrowed[0]:
                actual[keyword] = getattr(setting, keyword)
    return actual


@pytest.mark.parametrize("variable", sorted(BY_ENV), ids=str)
def test_each_chart_value_matches_the_setting_it_sets(variable):
    """A value the chart turns into a worker variable accepts exactly what the worker does
    (no `warn` log level the worker would refuse at start-up, no shutdown deadline past its
    maximum): a bad value fails `helm install`, not the pod, minutes later."""
    assert variable in SPEC, f"{BY_ENV[variable][0]} sets {variable}, which the worker lacks"
    setting = SPEC[variable]
    path, node = BY_ENV[variable]
    assert not setting.secret, f"{path} puts the secret {variable} in plain values"
    assert _actual(setting, node) == _expected(setting), path
    if setting.kind == "list" and setting.item == "int":
        items = node["items"]
        assert (items["type"], items["minimum"], items["maximum"]) == (
            "integer",
            setting.minimum,
            setting.maximum,
        )


def test_required_settings_are_not_required_by_the_schema():
    """The templates name every missing required value in one message; a schema `required`
    or `minLength` would fail first with a bare JSON path instead."""
    for setting in SETTINGS:
        if setting.required and setting.name in BY_ENV:
            path, node = BY_ENV[setting.name]
            assert "minLength" not in node and "minItems" not in node, path
    assert not SCHEMA.get("required")


def test_every_worker_setting_is_in_the_chart_or_excused():
    """A setting added to the worker reaches the chart (or is excused here, with a reason)."""
    secrets = {n["x-env-secret"] for n in NODES.values() if "x-env-secret" in n}
    offered = set(BY_ENV) | secrets | set(FILES)
    assert {s.name for s in SETTINGS} - offered == set(NOT_IN_CHART)
    assert secrets == {s.name for s in SETTINGS if s.secret}
    prefixes = {n["x-env-prefix"] for n in NODES.values() if "x-env-prefix" in n}
    assert prefixes == {p.prefix for p in PREFIXES}


@pytest.mark.parametrize("variable", sorted(FILES), ids=str)
def test_a_value_written_to_a_file_is_for_a_path_setting(variable):
    """An `x-env-file` value is the file's content, not the variable's: the variable must be a
    plain path setting (a secret would not belong in a ConfigMap), set by nothing else."""
    assert variable in SPEC, f"{FILES[variable][0]} sets {variable}, which the worker lacks"
    setting = SPEC[variable]
    assert setting.kind == "str" and not setting.secret and setting.default is None
    assert variable not in BY_ENV


def test_field_mapping_value_has_the_shape_the_worker_reads():
    """fieldMapping is the FIELD_MAPPING file (worker.events.mapping): its keys and no other,
    each column a non-empty string, uid required as soon as anything is mapped (empty is the
    chart's unset default). tests/chart renders the mappings the worker refuses: each fails."""
    path, node = FILES["FIELD_MAPPING"]
    column = {"type": "string", "minLength": 1}
    assert node["type"] == "object" and node["additionalProperties"] is False, path
    assert set(node["properties"]) == mapping._KEYS
    assert node["dependencies"] == {key: ["uid"] for key in sorted(mapping._KEYS - {"uid"})}
    for field in mapping._FIELDS:
        assert node["properties"][field] == column, field
    properties = node["properties"]["properties"]
    assert properties["type"] == "object" and properties["additionalProperties"] == column


def test_env_vars_in_the_pod_template_are_declared():
    """Every variable the pod template (_pod.tpl: the Deployment's and the StatefulSet's)
    names is a worker setting (or a prefix's)."""
    template = (CHART / "templates" / "_pod.tpl").read_text()
    names = set(re.findall(r"- name: ([A-Z][A-Z0-9_]+)", template))
    assert names, "no env var found: the pattern no longer matches the template"
    for name in names - set(PROXY_VARIABLES):
        assert name in SPEC or any(name.startswith(p.prefix) for p in PREFIXES), name


def test_the_charts_proxy_values_are_the_standard_proxy_variables():
    """`proxy.*` sets only proxy variables the worker honours (README, "Egress proxy")."""
    standard = {n["x-env-standard"] for n in NODES.values() if "x-env-standard" in n}
    assert standard == {"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"} <= set(PROXY_VARIABLES)


def test_every_object_block_is_closed_to_typos():
    """`serviceMonitor.enable`, `podDisruptionBudget.enable`, `image.tagg`: a misspelt key
    fails the install instead of silently leaving the feature at its default."""
    open_blocks = []
    for path, node in NODES.items():
        if node.get("type") != "object" or path in PASSTHROUGH or not path:
            continue
        if node.get("additionalProperties", True) is True:
            open_blocks.append(path)
    assert not open_blocks
    assert SCHEMA["additionalProperties"] is False


def test_chart_refuses_in_kafka_config_what_the_worker_treats_as_secret():
    """kafka.config values land in the Deployment in clear: every name the worker would
    treat as a credential must be refused there."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    match = re.search(r'define "fullstory-user-sync.secretHints" -}}\s*(\[.*?\])', helpers)
    assert match is not None
    chart_hints = set(json.loads(match.group(1)))
    assert set(kafka_config._SECRET_HINTS) <= chart_hints


def test_readme_table_is_the_spec():
    """The README's settings table is `scripts/settings_doc.py`'s output: every setting is
    documented, and nothing is documented that the worker does not read."""
    readme = (ROOT / "README.md").read_text()
    assert doc_table() in readme, "README.md's table differs: run scripts/settings_doc.py --write"
    documented = set(re.findall(r"^\| `([A-Z_<>]+)` \|", readme, flags=re.MULTILINE))
    declared = {s.name for s in SETTINGS} | {p.shown_as for p in PREFIXES}
    assert documented == declared


INT_SETTINGS = [s for s in SETTINGS if s.kind == "int"]


@pytest.mark.parametrize("setting", INT_SETTINGS, ids=lambda s: s.name)
def test_worker_accepts_exactly_the_declared_range(setting):
    """load_settings takes the range the spec declares: its ends, and not one past."""
    assert setting.minimum is not None and setting.maximum is not None
    for good in (setting.minimum, setting.maximum):
        load_settings({**BASE, setting.name: str(good)})
    for bad in (setting.minimum - 1, setting.maximum + 1):
        with pytest.raises(ConfigError) as info:
            load_settings({**BASE, setting.name: str(bad)})
        assert info.value.variable == setting.name


# Choices the worker takes only with other settings beside them (alone, it names the missing one).
CHOICE_NEEDS = {
    ("SOURCE_FORMAT", "debezium"): {
        "SCHEMA_REGISTRY_URL": "http://registry:8081",
        "FIELD_MAPPING": "/etc/fullstory-user-sync/field-mapping.json",
    },
}


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.kind == "enum"], ids=lambda s: s.name)
def test_worker_accepts_exactly_the_declared_choices(setting):
    """load_settings takes each declared choice (with what it needs) and refuses anything else."""
    for choice in setting.choices:
        needs = CHOICE_NEEDS.get((setting.name, choice), {})
        load_settings({**BASE, **needs, setting.name: choice})
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, setting.name: "warn"})
    assert info.value.variable == setting.name
