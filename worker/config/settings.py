"""Settings from the environment, validated once at start-up before connecting anywhere.
Their defaults, ranges and choices are declared in ``worker.config.spec``.

Every problem raises ``ConfigError`` naming the variable; the CLI turns it into one line
on stderr and exit status 2. Secrets are wrapped in ``Secret`` so no repr shows them, and
URLs are shown with their userinfo redacted. Refused besides malformed values:

* credentials over plain http:// to a host other than loopback (the FullStory API key
  always; the registry's only when it has some), unless ``*_ALLOW_INSECURE_HTTP=true``;
* a ``DLQ_TOPIC`` among ``KAFKA_TOPICS`` (dead letters would loop forever);
* ``KAFKA_CFG_*`` values that would break a delivery guarantee (``worker.config.kafka``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from worker.config.choices import OnDelete, PropertyTypes, SourceFormat
from worker.config.kafka import kafka_properties, refused_variable
from worker.config.redact import Secret as Secret  # re-exported: callers import it from here
from worker.config.redact import redact_url
from worker.config.spec import SPEC, bounds, int_default, str_default
from worker.errors import ConfigError

_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_INSECURE_OPT_INS = {
    "FULLSTORY_API_URL": "FULLSTORY_ALLOW_INSECURE_HTTP",
    "SCHEMA_REGISTRY_URL": "SCHEMA_REGISTRY_ALLOW_INSECURE_HTTP",
}
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap_servers: str
    topics: tuple[str, ...]
    group_id: str = "fullstory-user-sync"
    extra: Mapping[str, str | Secret] = field(default_factory=dict)
    # Which KAFKA_CFG_* variable each property of ``extra`` came from.
    variables: Mapping[str, str] = field(default_factory=dict)

    def client_config(self) -> dict[str, str]:
        """librdkafka properties with secrets revealed, for the Kafka clients only."""
        revealed = {k: v.reveal() if isinstance(v, Secret) else v for k, v in self.extra.items()}
        return {"bootstrap.servers": self.bootstrap_servers, **revealed}

    def refused(self, message: str) -> ConfigError:
        """librdkafka refused a client's configuration with ``message``: the error naming
        the variable, with librdkafka's reason (any secret value in it masked)."""
        variable = refused_variable(message, self.extra, self.variables)
        for value in self.extra.values():
            if isinstance(value, Secret) and value.reveal():
                message = message.replace(value.reveal(), "***")
        return ConfigError(variable, f"librdkafka refuses it: {message}")


@dataclass(frozen=True, slots=True, repr=False)
class Settings:
    kafka: KafkaSettings
    fullstory_api_key: Secret
    schema_registry_url: str | None = None
    schema_registry_auth: Secret | None = None
    fullstory_api_url: str = "https://api.fullstory.com"
    # Variables whose URL goes over plain http to another host by explicit opt-in.
    insecure_http: tuple[str, ...] = ()
    dlq_topic: str = "fullstory-user-sync-dlq"
    batch_max_users: int = 10_000
    batch_max_wait_ms: int = 1_000
    max_jobs_in_flight: int = 10
    max_pending_users: int = 100_000
    org_max_jobs: int = 100
    org_max_operations: int = 400_000
    shutdown_timeout_s: float = 30.0
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    http_timeout_s: float = 30.0
    job_poll_max_interval_ms: int = 2_000
    job_max_wait_s: float = 3600.0
    liveness_timeout_s: float = 60.0
    log_level: str = "info"
    log_format: str = "json"
    property_types: PropertyTypes = PropertyTypes.V2
    uid_allow_format_characters: bool = False
    local_schema_ids: frozenset[int] = frozenset()
    source_format: SourceFormat = SourceFormat.CANONICAL
    field_mapping: Path | None = None
    on_delete: OnDelete = OnDelete.IGNORE

    def __repr__(self) -> str:
        # URLs may carry userinfo: shown redacted, like the secrets.
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_url") and isinstance(value, str):
                value = redact_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(name, "is required")
    return value


def _number(name: str, raw: str, what: str = "an integer") -> int:
    """``raw`` as an integer within the range ``worker.config.spec`` declares for ``name``."""
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be {what}, got {raw!r}") from None
    low, high = bounds(name)
    if not low <= value <= high:
        raise ConfigError(name, f"must be within {low}..{high}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "").strip()
    return _number(name, raw) if raw else int_default(name)


def _bool(env: Mapping[str, str], name: str) -> bool:
    """Unset is false; anything but true/false/1/0/yes/no is refused, not guessed."""
    raw = env.get(name, "").strip()
    if not raw:
        return False
    value = _BOOLEANS.get(raw.lower())
    if value is None:
        raise ConfigError(name, f"must be true or false (or 1/0, yes/no), got {raw!r}")
    return value


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOSTNAME.fullmatch(host) is not None
    return True


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(env: Mapping[str, str], name: str) -> str | None:
    """An http(s) URL with a host that httpx accepts, or None when unset. Problems are
    named without echoing the URL: it may carry credentials."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises for a port that is not a number in 0..65535
        httpx.URL(raw)
    except (ValueError, httpx.InvalidURL):
        raise ConfigError(name, "is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(name, "must be an http:// or https:// URL")
    if not parts.hostname or not _valid_host(parts.hostname):
        raise ConfigError(name, "must name a valid host")
    if port == 0:
        raise ConfigError(name, "must not use port 0")
    if parts.query or parts.fragment:
        raise ConfigError(name, "must not carry a query or a fragment")
    return raw.rstrip("/")


def _ids(env: Mapping[str, str], name: str) -> frozenset[int]:
    """A comma-separated list of schema ids."""
    parts = (part.strip() for part in env.get(name, "").split(","))
    return frozenset(_number(name, p, "comma-separated schema ids") for p in parts if p)


def _plain_http_off_host(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and not _is_loopback(parts.hostname or "")


def _choice(env: Mapping[str, str], name: str) -> str:
    choices = SPEC[name].choices
    value = env.get(name, "").strip().lower() or str_default(name)
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _host(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip() or str_default(name)
    if not _valid_host(value):
        raise ConfigError(name, f"must be an IP address or a host name, got {value!r}")
    return value


def load_kafka_settings(env: Mapping[str, str]) -> KafkaSettings:
    """The Kafka part alone (what ``replay`` needs); raises ``ConfigError``."""
    bootstrap = _required(env, "KAFKA_BOOTSTRAP_SERVERS")
    topics = tuple(t.strip() for t in _required(env, "KAFKA_TOPICS").split(",") if t.strip())
    if not topics:
        raise ConfigError("KAFKA_TOPICS", "must name at least one topic")
    group_id = env.get("KAFKA_GROUP_ID", "").strip() or str_default("KAFKA_GROUP_ID")
    extra, variables = kafka_properties(env, group_id)
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topics=topics,
        group_id=group_id,
        extra=extra,
        variables=variables,
    )


def load_dlq_topic(env: Mapping[str, str], kafka: KafkaSettings) -> str:
    """DLQ_TOPIC, refused among KAFKA_TOPICS (dead letters would loop forever)."""
    topic = env.get("DLQ_TOPIC", "").strip() or str_default("DLQ_TOPIC")
    if topic in kafka.topics:
        raise ConfigError(
            "DLQ_TOPIC",
            "is one of KAFKA_TOPICS: the worker would consume its own dead letters "
            "and dead-letter them again, forever",
        )
    return topic


def _insecure_http(
    env: Mapping[str, str], api_url: str, registry_url: str | None, registry_auth: str
) -> tuple[str, ...]:
    """Refuse credentials over plain http to another host unless opted in; return the
    variables that opted in (the CLI warns about them once).

    The FullStory URL always carries the API key. The registry's carries credentials only
    with SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO or userinfo in the URL; without them a plain
    http registry is fine (schemas are not secret)."""
    # Both read even when not needed, so a typo in either is reported, not ignored.
    opted_in = {url: _bool(env, flag) for url, flag in _INSECURE_OPT_INS.items()}
    allowed = []
    checks = [("FULLSTORY_API_URL", api_url, True)]
    if registry_url is not None:
        carries = bool(registry_auth) or "@" in urlsplit(registry_url).netloc
        checks.append(("SCHEMA_REGISTRY_URL", registry_url, carries))
    for name, url, carries_credentials in checks:
        if not carries_credentials or not _plain_http_off_host(url):
            continue
        if not opted_in[name]:
            raise ConfigError(
                name,
                "sends credentials over plain http:// to a non-loopback host; "
                f"use https:// (or set {_INSECURE_OPT_INS[name]}=true)",
            )
        allowed.append(name)
    return tuple(allowed)


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build and validate the settings; raises ``ConfigError`` on the first problem."""
    if "MAX_BUFFERED_RECORDS" in env:
        # Users are merged on arrival now: the bound counts users, not records.
        raise ConfigError(
            "MAX_BUFFERED_RECORDS", "replaced by MAX_PENDING_USERS (users, not records)"
        )
    kafka = load_kafka_settings(env)
    api_key = Secret(_required(env, "FULLSTORY_API_KEY"))
    registry_auth = env.get("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "").strip()
    api_url = _url(env, "FULLSTORY_API_URL") or str_default("FULLSTORY_API_URL")
    registry_url = _url(env, "SCHEMA_REGISTRY_URL")
    insecure = _insecure_http(env, api_url, registry_url, registry_auth)
    dlq_topic = load_dlq_topic(env, kafka)
    source_format = _source_format(env, registry_url)
    return Settings(
        kafka=kafka,
        fullstory_api_key=api_key,
        schema_registry_url=registry_url,
        schema_registry_auth=Secret(registry_auth) if registry_auth else None,
        fullstory_api_url=api_url,
        insecure_http=insecure,
        dlq_topic=dlq_topic,
        batch_max_users=_int(env, "BATCH_MAX_USERS"),
        batch_max_wait_ms=_int(env, "BATCH_MAX_WAIT_MS"),
        max_jobs_in_flight=_int(env, "MAX_JOBS_IN_FLIGHT"),
        max_pending_users=_int(env, "MAX_PENDING_USERS"),
        org_max_jobs=_int(env, "FULLSTORY_ORG_MAX_JOBS"),
        org_max_operations=_int(env, "FULLSTORY_ORG_MAX_OPERATIONS"),
        shutdown_timeout_s=float(_int(env, "SHUTDOWN_TIMEOUT_S")),
        http_host=_host(env, "HTTP_HOST"),
        http_port=_int(env, "HTTP_PORT"),
        http_timeout_s=float(_int(env, "FULLSTORY_HTTP_TIMEOUT_S")),
        job_poll_max_interval_ms=_int(env, "JOB_POLL_MAX_INTERVAL_MS"),
        job_max_wait_s=float(_int(env, "JOB_MAX_WAIT_S")),
        liveness_timeout_s=float(_int(env, "LIVENESS_TIMEOUT_S")),
        log_level=_choice(env, "LOG_LEVEL"),
        log_format=_choice(env, "LOG_FORMAT"),
        property_types=PropertyTypes(_choice(env, "PROPERTY_TYPES")),
        uid_allow_format_characters=_bool(env, "UID_ALLOW_FORMAT_CHARACTERS"),
        local_schema_ids=_ids(env, "LOCAL_SCHEMA_IDS"),
        source_format=source_format,
        field_mapping=_field_mapping(env, source_format),
        on_delete=OnDelete(_choice(env, "ON_DELETE")),
    )


def _source_format(env: Mapping[str, str], registry_url: str | None) -> SourceFormat:
    source_format = SourceFormat(_choice(env, "SOURCE_FORMAT"))
    if source_format is SourceFormat.DEBEZIUM and registry_url is None:
        raise ConfigError(
            "SCHEMA_REGISTRY_URL", "is required with SOURCE_FORMAT=debezium (table schemas vary)"
        )
    return source_format


def _field_mapping(env: Mapping[str, str], source_format: SourceFormat) -> Path | None:
    """The mapping file's path: required for Debezium sources, refused for the canonical one
    (its events name FullStory's fields already). Its content is read by
    ``worker.events.mapping`` at start-up."""
    raw = env.get("FIELD_MAPPING", "").strip()
    if source_format is SourceFormat.CANONICAL:
        if raw:
            raise ConfigError("FIELD_MAPPING", "is only read with SOURCE_FORMAT=debezium")
        return None
    if not raw:
        raise ConfigError("FIELD_MAPPING", "is required with SOURCE_FORMAT=debezium")
    return Path(raw)
