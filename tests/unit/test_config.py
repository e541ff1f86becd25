import pytest

from worker.config import Secret, load_settings
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
    ],
    ids=lambda v: v if isinstance(v, str) else next(iter(v)),
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
