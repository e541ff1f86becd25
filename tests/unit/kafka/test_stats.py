import json

from worker.kafka.stats import parse_stats


def _stats(states, lag=None):
    return json.dumps(
        {
            "brokers": {f"b{i}": {"state": s, "nodeid": i} for i, s in enumerate(states)},
            "topics": {
                "users": {
                    "partitions": {
                        "0": {"consumer_lag": lag if lag is not None else -1},
                        "-1": {"consumer_lag": 5},
                    }
                }
            },
        }
    )


def test_kafka_is_reachable_while_any_broker_connection_is_up():
    """Readiness follows broker connection states, not records from the prefetch queue."""
    assert parse_stats(_stats(["UP", "DOWN"])).brokers_up == 1
    assert parse_stats(_stats(["DOWN", "CONNECT", "TRY_CONNECT"])).brokers_up == 0


def test_lag_is_reported_for_real_partitions_with_a_known_lag():
    """The lag gauge shows each partition's known lag; unknown and internal ones are left out."""
    assert parse_stats(_stats(["UP"], lag=42)).lag == {("users", 0): 42}
    assert parse_stats(_stats(["UP"])).lag == {}
