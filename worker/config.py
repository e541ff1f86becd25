"""Settings from the environment, validated once at start-up before connecting anywhere.

Every problem raises ``ConfigError`` naming the variable; the CLI turns it into one line
on stderr and exit status 2. Secrets are wrapped in ``Secret`` so no repr shows them.

librdkafka pass-through: ``KAFKA_CFG_<NAME>`` becomes property ``<name>`` lowercased with
``_`` -> ``.`` (``KAFKA_CFG_SASL_PASSWORD`` -> ``sasl.password``). It reaches the consumer
and the DLQ producer both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from worker.errors import ConfigError

_SECRET_HINTS = ("password", "secret", "key", "token", "credentials")
_LOG_LEVELS = ("debug", "info", "warning", "error")


class Secret:
    """A string whose repr and str never show it; call ``reveal()`` where it is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap_servers: str
    topics: tuple[str, ...]
    group_id: str = "fullstory-user-sync"
    extra: Mapping[str, str | Secret] = field(default_factory=dict)

    def client_config(self) -> dict[str, str]:
        """librdkafka properties with secrets revealed, for the Kafka clients only."""
        revealed = {k: v.reveal() if isinstance(v, Secret) else v for k, v in self.extra.items()}
        return {"bootstrap.servers": self.bootstrap_servers, **revealed}


@dataclass(frozen=True, slots=True)
class Settings:
    kafka: KafkaSettings
    fullstory_api_key: Secret
    schema_registry_url: str | None = None
    schema_registry_auth: Secret | None = None
    fullstory_api_url: str = "https://api.fullstory.com"
    dlq_topic: str = "fullstory-user-sync-dlq"
    batch_max_users: int = 10_000
    batch_max_wait_ms: int = 1_000
    max_jobs_in_flight: int = 10
    max_pending_users: int = 100_000
    shutdown_timeout_s: float = 30.0
    http_port: int = 8080
    http_timeout_s: float = 30.0
    job_poll_max_interval_ms: int = 2_000
    job_max_wait_s: float = 3600.0
    liveness_timeout_s: float = 60.0
    log_level: str = "info"
    log_format: str = "json"


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(name, "is required")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be within {low}..{high}, got {value}")
    return value


def _url(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    raw = env.get(name, "").strip() or default
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(name, "must be an http:// or https:// URL")
    return raw.rstrip("/")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _kafka_extra(env: Mapping[str, str]) -> dict[str, str | Secret]:
    extra: dict[str, str | Secret] = {}
    for name, value in sorted(env.items()):
        if not name.startswith("KAFKA_CFG_") or name == "KAFKA_CFG_":
            continue
        prop = name.removeprefix("KAFKA_CFG_").lower().replace("_", ".")
        secret = any(hint in prop for hint in _SECRET_HINTS)
        extra[prop] = Secret(value) if secret else value
    return extra


def load_kafka_settings(env: Mapping[str, str]) -> KafkaSettings:
    """The Kafka part alone (what ``replay`` needs); raises ``ConfigError``."""
    bootstrap = _required(env, "KAFKA_BOOTSTRAP_SERVERS")
    topics = tuple(t.strip() for t in _required(env, "KAFKA_TOPICS").split(",") if t.strip())
    if not topics:
        raise ConfigError("KAFKA_TOPICS", "must name at least one topic")
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topics=topics,
        group_id=env.get("KAFKA_GROUP_ID", "").strip() or "fullstory-user-sync",
        extra=_kafka_extra(env),
    )


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
    http_port = _int(env, "HTTP_PORT", 8080, 0, 65535)
    return Settings(
        kafka=kafka,
        fullstory_api_key=api_key,
        schema_registry_url=_url(env, "SCHEMA_REGISTRY_URL", None),
        schema_registry_auth=Secret(registry_auth) if registry_auth else None,
        fullstory_api_url=_url(env, "FULLSTORY_API_URL", "https://api.fullstory.com")
        or "https://api.fullstory.com",
        dlq_topic=env.get("DLQ_TOPIC", "").strip() or "fullstory-user-sync-dlq",
        batch_max_users=_int(env, "BATCH_MAX_USERS", 10_000, 1, 50_000),
        batch_max_wait_ms=_int(env, "BATCH_MAX_WAIT_MS", 1_000, 0, 3_600_000),
        max_jobs_in_flight=_int(env, "MAX_JOBS_IN_FLIGHT", 10, 1, 100),
        max_pending_users=_int(env, "MAX_PENDING_USERS", 100_000, 100, 10_000_000),
        shutdown_timeout_s=float(_int(env, "SHUTDOWN_TIMEOUT_S", 30, 1, 3600)),
        http_port=http_port,
        http_timeout_s=float(_int(env, "FULLSTORY_HTTP_TIMEOUT_S", 30, 1, 600)),
        job_poll_max_interval_ms=_int(env, "JOB_POLL_MAX_INTERVAL_MS", 2_000, 10, 60_000),
        job_max_wait_s=float(_int(env, "JOB_MAX_WAIT_S", 3600, 60, 7 * 86_400)),
        liveness_timeout_s=float(_int(env, "LIVENESS_TIMEOUT_S", 60, 1, 3600)),
        log_level=_choice(env, "LOG_LEVEL", "info", _LOG_LEVELS),
        log_format=_choice(env, "LOG_FORMAT", "json", ("json", "console")),
    )
