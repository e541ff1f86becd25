import pytest

from worker.config.choices import PropertyTypes
from worker.config.redact import redact_url
from worker.config.settings import Secret, load_settings
from worker.errors import ConfigError

BASE = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "KAFKA_TOPICS": "users, more ",
    "FULLSTORY_API_KEY": "na1.super-secret",
}


def test_defaults_follow_the_contract():
    """Unset optional variables take the documented defaults."""
    settings = load_settings(BASE)
    assert settings.kafka.topics == ("users", "more")
    assert settings.kafka.group_id == "fullstory-user-sync"
    assert settings.fullstory_api_url == "https://api.fullstory.com"
    assert settings.dlq_topic == "fullstory-user-sync-dlq"
    assert (settings.batch_max_users, settings.batch_max_wait_ms) == (10_000, 1_000)
    assert (settings.max_jobs_in_flight, settings.shutdown_timeout_s) == (10, 30.0)
    assert settings.http_port == 8080
    assert settings.max_pending_users == 100_000
    assert settings.job_max_wait_s == 3600.0
    assert (settings.log_level, settings.log_format) == ("info", "json")
    assert settings.uid_allow_format_characters is False


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"KAFKA_TOPICS": ""}, "KAFKA_TOPICS"),
        ({"KAFKA_TOPICS": " , "}, "KAFKA_TOPICS"),
        ({"KAFKA_BOOTSTRAP_SERVERS": ""}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"FULLSTORY_API_KEY": ""}, "FULLSTORY_API_KEY"),
        ({"BATCH_MAX_USERS": "50001"}, "BATCH_MAX_USERS"),
        ({"BATCH_MAX_USERS": "ten"}, "BATCH_MAX_USERS"),
        ({"MAX_JOBS_IN_FLIGHT": "0"}, "MAX_JOBS_IN_FLIGHT"),
        ({"FULLSTORY_API_URL": "api.fullstory.com"}, "FULLSTORY_API_URL"),
        ({"SCHEMA_REGISTRY_URL": "ftp://x"}, "SCHEMA_REGISTRY_URL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"HTTP_PORT": "70000"}, "HTTP_PORT"),
        ({"MAX_PENDING_USERS": "99"}, "MAX_PENDING_USERS"),
        # Below a minute every job would turn readiness off; past a week nothing would.
        ({"JOB_MAX_WAIT_S": "59"}, "JOB_MAX_WAIT_S"),
        ({"JOB_MAX_WAIT_S": "604801"}, "JOB_MAX_WAIT_S"),
        ({"JOB_MAX_WAIT_S": "1h"}, "JOB_MAX_WAIT_S"),
        # It counted records; users are merged on arrival now, so it would silently mislead.
        ({"MAX_BUFFERED_RECORDS": "50000"}, "MAX_BUFFERED_RECORDS"),
        # URLs that used to pass the check and crash the start-up with a traceback.
        ({"FULLSTORY_API_URL": "http://[::1"}, "FULLSTORY_API_URL"),
        ({"FULLSTORY_API_URL": "https://h:abc"}, "FULLSTORY_API_URL"),
        ({"FULLSTORY_API_URL": "https://h:99999"}, "FULLSTORY_API_URL"),
        ({"FULLSTORY_API_URL": "https://h:0"}, "FULLSTORY_API_URL"),
        ({"FULLSTORY_API_URL": "https://a b/"}, "FULLSTORY_API_URL"),
        ({"FULLSTORY_API_URL": "https://:443/"}, "FULLSTORY_API_URL"),
        ({"FULLSTORY_API_URL": "https://h/?region=eu"}, "FULLSTORY_API_URL"),
        ({"SCHEMA_REGISTRY_URL": "http://reg:port"}, "SCHEMA_REGISTRY_URL"),
        ({"HTTP_HOST": "bad host"}, "HTTP_HOST"),
        ({"HTTP_HOST": "-x"}, "HTTP_HOST"),
    ],
    ids=lambda v: v if isinstance(v, str) else f"{next(iter(v))}={next(iter(v.values()))}",
)
def test_bad_values_name_their_variable(override, variable):
    """Each bad value is reported with the variable's name."""
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, **override})
    assert info.value.variable == variable


def test_secrets_never_show_in_repr():
    """The API key and SASL passwords never appear in a repr (logs, tracebacks)."""
    settings = load_settings(
        {**BASE, "KAFKA_CFG_SASL_PASSWORD": "hunter2", "KAFKA_CFG_SECURITY_PROTOCOL": "SASL_SSL"}
    )
    text = repr(settings)
    assert "super-secret" not in text and "hunter2" not in text
    assert isinstance(settings.fullstory_api_key, Secret)
    assert settings.kafka.client_config() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "sasl.password": "hunter2",
        "security.protocol": "SASL_SSL",
    }


@pytest.mark.parametrize(
    "url",
    ["http://[::1", "https://user:hunter2@h:abc", "https://user:hunter2@a b/"],
)
def test_a_malformed_url_is_refused_without_echoing_it(url):
    """The URL may hold a password: the error names the variable, never the value."""
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "FULLSTORY_API_URL": url})
    assert info.value.variable == "FULLSTORY_API_URL"
    assert "hunter2" not in str(info.value) and url not in str(info.value)


@pytest.mark.parametrize(
    "override",
    [
        {"FULLSTORY_API_URL": "http://fullstory.internal"},
        {"FULLSTORY_API_URL": "http://10.0.0.7:8787"},
        {"FULLSTORY_API_URL": "http://fullstory.internal", "FULLSTORY_ALLOW_INSECURE_HTTP": "no"},
    ],
    ids=["host", "private-ip", "opt-in-false"],
)
def test_plain_http_to_another_host_is_refused_for_the_api_key(override):
    """The API key goes in every request: plain http off the machine is refused."""
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, **override})
    assert info.value.variable == "FULLSTORY_API_URL"
    assert "FULLSTORY_ALLOW_INSECURE_HTTP" in info.value.problem


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8787", "http://127.8.9.10", "http://[::1]:8787", "http://localhost:1"],
)
def test_plain_http_to_loopback_is_allowed(url):
    """The sandbox and a local proxy sit on loopback: the key never leaves the machine."""
    settings = load_settings({**BASE, "FULLSTORY_API_URL": url})
    assert settings.fullstory_api_url == url
    assert settings.insecure_http == ()


@pytest.mark.parametrize("flag", ["true", "TRUE", "1", "yes"])
def test_the_opt_in_allows_plain_http_and_is_remembered_for_the_warning(flag):
    """With FULLSTORY_ALLOW_INSECURE_HTTP the operator chose it; the CLI warns once."""
    settings = load_settings(
        {**BASE, "FULLSTORY_API_URL": "http://fs.internal", "FULLSTORY_ALLOW_INSECURE_HTTP": flag}
    )
    assert settings.insecure_http == ("FULLSTORY_API_URL",)


@pytest.mark.parametrize(
    "variable",
    [
        "FULLSTORY_ALLOW_INSECURE_HTTP",
        "SCHEMA_REGISTRY_ALLOW_INSECURE_HTTP",
        "UID_ALLOW_FORMAT_CHARACTERS",
    ],
)
@pytest.mark.parametrize("value", ["maybe", "on", "2", "tru"])
def test_an_opt_in_that_is_not_a_boolean_is_refused(variable, value):
    """A typo is refused, not read as false (or true), even when no URL needs it."""
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, variable: value})
    assert info.value.variable == variable


@pytest.mark.parametrize(
    ("override", "refused"),
    [
        ({"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "k:s"}, True),
        ({"SCHEMA_REGISTRY_URL": "http://k:s@registry:8081"}, True),
        ({}, False),
        (
            {"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "k:s", "SCHEMA_REGISTRY_URL": "https://r"},
            False,
        ),
        (
            {"SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "k:s", "SCHEMA_REGISTRY_URL": "http://[::1]"},
            False,
        ),
        (
            {
                "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "k:s",
                "SCHEMA_REGISTRY_ALLOW_INSECURE_HTTP": "1",
            },
            False,
        ),
    ],
    ids=["auth", "userinfo", "no-credentials", "https", "loopback", "opt-in"],
)
def test_registry_credentials_over_plain_http_are_refused(override, refused):
    """Schemas are not secret, so a plain-http registry is fine, unless it gets credentials."""
    env = {**BASE, "SCHEMA_REGISTRY_URL": "http://registry:8081", **override}
    if not refused:
        load_settings(env)
        return
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == "SCHEMA_REGISTRY_URL"
    assert "SCHEMA_REGISTRY_ALLOW_INSECURE_HTTP" in info.value.problem


def test_urls_with_credentials_are_redacted_in_the_settings_repr():
    """Userinfo in a URL is a credential: the settings' repr (logs, tracebacks) masks it."""
    settings = load_settings(
        {
            **BASE,
            "FULLSTORY_API_URL": "https://user:hunter2@fs.example.com/",
            "SCHEMA_REGISTRY_URL": "https://key:s3cr3t@registry:8081",
        }
    )
    text = repr(settings)
    assert "hunter2" not in text and "s3cr3t" not in text
    assert "https://***@fs.example.com" in text and "https://***@registry:8081" in text
    assert settings.fullstory_api_url == "https://user:hunter2@fs.example.com"  # still sent


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@h:8/x", "https://***@h:8/x"),
        ("https://u@h", "https://***@h"),
        ("https://h/a@b", "https://h/a@b"),
        ("http://[::1", "***"),
    ],
)
def test_redact_url_masks_the_userinfo(url, shown):
    """Only the userinfo goes; a URL that does not parse is hidden whole."""
    assert redact_url(url) == shown


def test_a_dlq_topic_among_the_source_topics_is_refused():
    """The worker would consume its own dead letters and dead-letter them again, forever."""
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "DLQ_TOPIC": "more"})
    assert info.value.variable == "DLQ_TOPIC"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAFKA_CFG_ENABLE_AUTO_COMMIT", "true"),
        ("KAFKA_CFG_ENABLE_AUTO_COMMIT", "True"),
        ("KAFKA_CFG_ENABLE_AUTO_COMMIT", "t"),
        ("KAFKA_CFG_ENABLE_AUTO_COMMIT", "1"),
        ("KAFKA_CFG_ENABLE_AUTO_COMMIT", "yes"),
        ("KAFKA_CFG_AUTO_COMMIT_ENABLE", "true"),
        ("KAFKA_CFG_ISOLATION_LEVEL", "read_uncommitted"),
        ("KAFKA_CFG_ISOLATION_LEVEL", "READ_UNCOMMITTED"),
        ("KAFKA_CFG_GROUP_ID", "another-group"),
    ],
)
def test_kafka_settings_that_would_break_a_guarantee_are_refused(variable, value):
    """Auto-commit would commit unacknowledged records, read_uncommitted would import aborted
    transactions, a second group id would be ignored: each is refused with its reason."""
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, variable: value})
    assert info.value.variable == variable
    assert ":" in str(info.value) and len(info.value.problem) > 20  # says why


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAFKA_CFG_ENABLE_AUTO_COMMIT", "false"),
        ("KAFKA_CFG_ENABLE_AUTO_COMMIT", "0"),
        ("KAFKA_CFG_ENABLE_AUTO_OFFSET_STORE", "true"),
        ("KAFKA_CFG_ENABLE_PARTITION_EOF", "true"),
        ("KAFKA_CFG_ISOLATION_LEVEL", "read_committed"),
        ("KAFKA_CFG_GROUP_ID", "fullstory-user-sync"),
        ("KAFKA_CFG_AUTO_OFFSET_RESET", "latest"),
    ],
)
def test_kafka_settings_that_keep_the_guarantees_are_passed_through(variable, value):
    """Commits always name their offsets, so the offset store and EOF events are harmless."""
    settings = load_settings({**BASE, variable: value})
    prop = variable.removeprefix("KAFKA_CFG_").lower().replace("_", ".")
    assert settings.kafka.client_config()[prop] == value


@pytest.mark.parametrize(
    "variable",
    [
        "KAFKA_CFG_SASL_PASSWORD",
        "KAFKA_CFG_SASL_JAAS_CONFIG",
        "KAFKA_CFG_SSL_KEY_PEM",
        "KAFKA_CFG_SSL_KEY_PASSWORD",
        "KAFKA_CFG_SASL_OAUTHBEARER_CLIENT_SECRET",
        "KAFKA_CFG_SASL_OAUTHBEARER_CONFIG",
    ],
)
def test_kafka_credentials_are_wrapped_in_secret(variable):
    """Properties that can hold a credential never show in a repr."""
    settings = load_settings({**BASE, variable: "hunter2"})
    prop = variable.removeprefix("KAFKA_CFG_").lower().replace("_", ".")
    assert isinstance(settings.kafka.extra[prop], Secret)
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        # librdkafka quotes the property with a colon, which the old pattern missed.
        ({"KAFKA_CFG_FOO_BAR": "1"}, "KAFKA_CFG_FOO_BAR"),
        ({"KAFKA_CFG_SECURITY_PROTOCOL": "SASL_SSLX"}, "KAFKA_CFG_SECURITY_PROTOCOL"),
        ({"KAFKA_CFG_SESSION_TIMEOUT_MS": "soon"}, "KAFKA_CFG_SESSION_TIMEOUT_MS"),
        # No property quoted at all: found by trying each one alone.
        (
            {"KAFKA_CFG_SASL_JAAS_CONFIG": "x", "KAFKA_CFG_CLIENT_ID": "c"},
            "KAFKA_CFG_SASL_JAAS_CONFIG",
        ),
    ],
    ids=["unknown", "bad-enum", "bad-int", "unquoted"],
)
def test_a_librdkafka_refusal_names_the_variable(override, variable):
    """The operator sees which KAFKA_CFG_* variable librdkafka refused, not KAFKA_CFG_?."""
    from confluent_kafka import Consumer, KafkaException

    kafka = load_settings({**BASE, **override}).kafka
    with pytest.raises(KafkaException) as refusal:
        Consumer({**kafka.client_config(), "group.id": "g"})
    error = kafka.refused(refusal.value.args[0].str())
    assert error.variable == variable


def test_a_librdkafka_refusal_masks_secret_values():
    """librdkafka may quote the value it refuses: a secret one is masked in the message."""
    kafka = load_settings({**BASE, "KAFKA_CFG_SASL_PASSWORD": "hunter2"}).kafka
    error = kafka.refused('Invalid value "hunter2" for configuration property "sasl.password"')
    assert error.variable == "KAFKA_CFG_SASL_PASSWORD"
    assert "hunter2" not in str(error)


@pytest.mark.parametrize(
    ("raw", "declared"),
    [("", True), ("v2", True), (" V2 ", True), ("suffixed", False), ("SUFFIXED", False)],
    ids=["unset", "v2", "V2-spaced", "suffixed", "SUFFIXED"],
)
def test_property_types_decide_whether_requests_declare_types(raw, declared):
    """`PROPERTY_TYPES` is read as a `PropertyTypes` member, whose choice the importer follows:
    in `v2` mode (the default) each request declares its properties' types, in `suffixed` mode
    none does (a `v2` read as a plain string would silently send no types)."""
    settings = load_settings({**BASE, "PROPERTY_TYPES": raw})
    assert isinstance(settings.property_types, PropertyTypes)
    assert settings.property_types.declares_types is declared


def test_local_schema_ids_and_property_types_are_read_and_checked():
    env = {**BASE, "LOCAL_SCHEMA_IDS": "7, 12", "PROPERTY_TYPES": "suffixed"}
    settings = load_settings(env)
    assert settings.local_schema_ids == {7, 12} and settings.property_types == "suffixed"
    assert load_settings(BASE).local_schema_ids == frozenset()
    for name, value in (
        ("LOCAL_SCHEMA_IDS", "7,x"),
        ("LOCAL_SCHEMA_IDS", "-1"),
        ("LOCAL_SCHEMA_IDS", "2147483648"),
        ("PROPERTY_TYPES", "v1"),
    ):
        with pytest.raises(ConfigError) as info:
            load_settings({**BASE, name: value})
        assert name in str(info.value)
