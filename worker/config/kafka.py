"""The ``KAFKA_CFG_*`` pass-through to librdkafka.

``KAFKA_CFG_<NAME>`` becomes property ``<name>`` lowercased with ``_`` -> ``.``
(``KAFKA_CFG_SASL_PASSWORD`` -> ``sasl.password``). It reaches the consumer and the DLQ
producer both. Values of properties that may hold a credential are wrapped in ``Secret``.

Refused, each with the reason in the error, because it would break a delivery guarantee or
silently not do what it says:

* ``enable.auto.commit`` (or its legacy alias ``auto.commit.enable``) other than false:
  librdkafka would commit offsets of records FullStory has not acknowledged, and a crash
  would then lose them. Only the tracker commits.
* ``isolation.level=read_uncommitted``: records of aborted transactions would be imported,
  and an upsert in FullStory cannot be taken back.
* ``group.id`` other than ``KAFKA_GROUP_ID``'s: it would be ignored (the worker and
  ``replay`` use ``KAFKA_GROUP_ID``), so the group would not be the one the operator named.

Allowed although the worker's defaults differ: ``enable.auto.offset.store`` (every commit
names its offsets explicitly and auto-commit is refused, so the store is never read),
``enable.partition.eof`` (the source skips end-of-partition events), ``auto.offset.reset``
(where a new group starts is the operator's choice).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from confluent_kafka import KafkaException, Producer

from worker.config.redact import Secret
from worker.errors import ConfigError

PREFIX = "KAFKA_CFG_"
# Substrings of property names whose values may be credentials (sasl.password,
# ssl.key.password, ssl.key.pem, sasl.oauthbearer.client.secret, sasl.oauthbearer.config,
# sasl.jaas.config, ...). Over-matching only hides a harmless value.
_SECRET_HINTS = ("password", "secret", "key", "token", "credential", "jaas", "oauthbearer.config")
_FALSE = ("false", "f", "0")  # what librdkafka reads as false


def property_name(variable: str) -> str:
    return variable.removeprefix(PREFIX).lower().replace("_", ".")


def is_secret(prop: str) -> bool:
    return any(hint in prop for hint in _SECRET_HINTS)


def kafka_properties(
    env: Mapping[str, str], group_id: str
) -> tuple[dict[str, str | Secret], dict[str, str]]:
    """``({property: value}, {property: variable})`` from ``KAFKA_CFG_*``; raises
    ``ConfigError`` for a property that would break a guarantee (see the module docstring)."""
    values: dict[str, str | Secret] = {}
    variables: dict[str, str] = {}
    for variable, value in sorted(env.items()):
        if not variable.startswith(PREFIX) or variable == PREFIX:
            continue
        prop = property_name(variable)
        _refuse_unsafe(variable, prop, value.strip(), group_id)
        values[prop] = Secret(value) if is_secret(prop) else value
        variables[prop] = variable
    return values, variables


def _refuse_unsafe(variable: str, prop: str, value: str, group_id: str) -> None:
    if prop in ("enable.auto.commit", "auto.commit.enable") and value.lower() not in _FALSE:
        raise ConfigError(
            variable,
            "must be false: auto-commit would commit records FullStory has not acknowledged",
        )
    if prop == "isolation.level" and value.lower() == "read_uncommitted":
        raise ConfigError(
            variable, "must not be read_uncommitted: aborted transactions would be imported"
        )
    if prop == "group.id" and value != group_id:
        raise ConfigError(
            variable, f"would be ignored: the group is KAFKA_GROUP_ID's ({group_id!r})"
        )


def refused_variable(
    message: str, values: Mapping[str, str | Secret], variables: Mapping[str, str]
) -> str:
    """The ``KAFKA_CFG_*`` variable behind librdkafka's refusal ``message`` of a client's
    configuration, or ``KAFKA_CFG_*`` when no single property is to blame.

    librdkafka quotes the property in most refusals (``No such configuration property:
    "foo.bar"``), but not all (``Java JAAS configuration is not supported``): then each
    property is tried alone on a client that connects nowhere."""
    for quoted in re.findall(r'"([^"]+)"', message):
        if quoted in variables:
            return variables[quoted]
    for prop, value in values.items():
        if not _accepted(prop, value.reveal() if isinstance(value, Secret) else value):
            return variables[prop]
    return PREFIX + "*"


def _accepted(prop: str, value: str) -> bool:
    quiet = logging.getLogger("worker.config.kafka.probe")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        # No bootstrap.servers: the client is built and destroyed without connecting.
        Producer({prop: value, "logger": quiet})
    except KafkaException:
        return False
    return True
