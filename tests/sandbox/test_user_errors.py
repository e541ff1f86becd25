"""Per-user validation inside a job: partial failure, error paging, and property typing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fullstory_sandbox import Sandbox

from .helpers import API_KEY, batch, finished_status, make_client

VALID = {"uid": "ok"}


def run_job(client: httpx.Client, *users: Any) -> tuple[str, dict[str, Any]]:
    response = client.post("/v2/users/batch", json=batch(*users))
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job"]["id"]
    return job_id, finished_status(client, job_id)


@pytest.mark.parametrize(
    ("user", "code"),
    [
        pytest.param({"display_name": "x"}, "invalid_uid", id="uid-missing"),
        pytest.param({"uid": ""}, "invalid_uid", id="uid-empty"),
        pytest.param({"uid": 42}, "invalid_uid", id="uid-not-string"),
        pytest.param({"uid": "u" * 257}, "invalid_uid", id="uid-257-chars"),
        pytest.param(
            {"uid": "u", "display_name": "n" * 257}, "invalid_display_name", id="display-name-257"
        ),
        pytest.param({"uid": "u", "email": "e" * 129}, "invalid_email", id="email-129"),
        pytest.param(
            {"uid": "u", "properties": {"1abc": 1}},
            "invalid_property_name",
            id="name-starts-with-digit",
        ),
        pytest.param(
            {"uid": "u", "properties": {"a-b": 1}}, "invalid_property_name", id="name-with-dash"
        ),
        pytest.param(
            {"uid": "u", "properties": {"a" * 513: 1}}, "invalid_property_name", id="name-513-chars"
        ),
        pytest.param(
            {"uid": "u", "properties": {"a" * 300: {"b" * 212: 1}}},
            "invalid_property_name",
            id="dotted-path-513-chars",
        ),
        pytest.param(
            {"uid": "u", "properties": {"blob": "x" * 8191}},
            "property_too_large",
            id="value-8193-bytes",
        ),
        pytest.param(
            {"uid": "u", "properties": {"quotes": '"' * 4096}},
            "property_too_large",
            id="value-escaped-to-8194-bytes",
        ),
        pytest.param(
            {"uid": "u", "properties": {f"p{i}": i for i in range(501)}},
            "too_many_properties",
            id="501-properties",
        ),
        pytest.param(
            {"uid": "u", "properties": {"tags": [{"a": 1}]}},
            "invalid_property_value",
            id="array-of-objects",
        ),
        pytest.param(
            {"uid": "u", "properties": {"n": "3"}, "schema": {"properties": {"n": "int"}}},
            "type_mismatch",
            id="int-declared-string-given",
        ),
        pytest.param(
            {"uid": "u", "properties": {"n": 3.5}, "schema": {"properties": {"n": "int"}}},
            "type_mismatch",
            id="int-declared-fraction-given",
        ),
        pytest.param(
            {"uid": "u", "properties": {"d": "yesterday"}, "schema": {"properties": {"d": "date"}}},
            "type_mismatch",
            id="date-declared-not-iso",
        ),
        pytest.param(
            {"uid": "u", "properties": {"b": 1}, "schema": {"properties": {"b": "bool"}}},
            "type_mismatch",
            id="bool-declared-number-given",
        ),
        pytest.param(
            {"uid": "u", "properties": {"xs": [1, "2"]}, "schema": {"properties": {"xs": "ints"}}},
            "type_mismatch",
            id="ints-declared-mixed",
        ),
        pytest.param(
            {"uid": "u", "properties": {"n": 1}, "schema": {"properties": {"n": "integer"}}},
            "invalid_schema",
            id="unknown-declared-type",
        ),
        pytest.param(
            {"uid": "u", "properties": {"visits_int": "many"}},
            "type_mismatch",
            id="int-suffix-string-given",
        ),
        pytest.param(
            {"uid": "u", "properties": {"signup_date": "soon"}},
            "type_mismatch",
            id="date-suffix-not-iso",
        ),
        pytest.param("just a string", "invalid_user", id="not-an-object"),
    ],
)
def test_invalid_user_fails_alone(
    client: httpx.Client, sandbox: Sandbox, user: Any, code: str
) -> None:
    """An invalid user is listed under the job's errors (FAILED); the valid one is imported."""
    job_id, status = run_job(client, VALID, user)
    assert status["job"]["status"] == "FAILED"
    assert (status["imports"], status["errors"]) == (1, 1)
    errors = client.get(f"/v2/users/batch/{job_id}/errors").json()
    assert errors["total_records"] == "1"
    assert [(e["code"], e["user"]) for e in errors["results"]] == [(code, user)]
    assert errors["results"][0]["message"]
    assert "next_page_token" not in errors
    assert list(sandbox.users()) == ["ok"]


@pytest.mark.parametrize(
    "user",
    [
        pytest.param(
            {"uid": "u" * 256, "display_name": "n" * 256, "email": "e" * 128}, id="fields-at-limits"
        ),
        pytest.param({"uid": "u", "properties": {"a" * 512: 1}}, id="name-512-chars"),
        pytest.param({"uid": "u", "properties": {"blob": "x" * 8190}}, id="value-8192-bytes"),
        pytest.param(
            {"uid": "u", "properties": {"quotes": '"' * 4095, "n": 10**17}},
            id="value-escaped-to-8192-bytes",
        ),
        pytest.param(
            {"uid": "u", "properties": {f"p{i}": i for i in range(500)}}, id="500-properties"
        ),
        pytest.param(
            {"uid": "u", "properties": {"tags": ["a", "b"], "ns": [1, 2.5]}},
            id="arrays-of-primitives",
        ),
        pytest.param(
            {"uid": "u", "properties": {"n": 3.0}, "schema": {"properties": {"n": "int"}}},
            id="int-declared-integral-real",
        ),
        pytest.param(
            {
                "uid": "u",
                "properties": {"d": "2024-05-01T10:00:00Z"},
                "schema": {"properties": {"d": "date"}},
            },
            id="date-declared-iso",
        ),
    ],
)
def test_users_at_the_limits_are_imported(client: httpx.Client, user: dict[str, Any]) -> None:
    """Values exactly at each documented limit are accepted (COMPLETED, no errors)."""
    _, status = run_job(client, user)
    assert status["job"]["status"] == "COMPLETED"
    assert status["imports"] == 1


def test_errors_page_across_pages_with_total_records() -> None:
    """250 failures come back in pages of 100, 100, 50, each with total_records "250"."""
    with Sandbox(api_key=API_KEY, job_delay_ms=50) as sb, make_client(sb) as client:
        users = [{"uid": ""} if i % 2 else {"uid": f"u{i}"} for i in range(500)]
        job_id, status = run_job(client, *users)
        assert (status["imports"], status["errors"]) == (250, 250)

        seen: list[Any] = []
        token: str | None = None
        sizes = []
        for _ in range(10):  # 3 pages expected; bounded
            params = {"page_token": token} if token else {}
            body = client.get(f"/v2/users/batch/{job_id}/errors", params=params).json()
            assert body["total_records"] == "250"
            sizes.append(len(body["results"]))
            seen.extend(body["results"])
            token = body.get("next_page_token")
            if not token:
                break
        assert sizes == [100, 100, 50]
        assert all(e["code"] == "invalid_uid" for e in seen)

        imports = client.get(f"/v2/users/batch/{job_id}/imports").json()
        assert imports["total_records"] == "250"
        assert len(imports["results"]) == 100
        assert imports["next_page_token"]


def test_page_size_is_configurable(client: httpx.Client, sandbox: Sandbox) -> None:
    """The errors page size follows the `page_size` knob."""
    sandbox.set_faults(page_size=2)
    job_id, _ = run_job(client, {"uid": ""}, {"uid": ""}, {"uid": ""})
    first = client.get(f"/v2/users/batch/{job_id}/errors").json()
    second = client.get(
        f"/v2/users/batch/{job_id}/errors", params={"page_token": first["next_page_token"]}
    ).json()
    assert (len(first["results"]), len(second["results"])) == (2, 1)
    assert "next_page_token" not in second


def test_bad_page_token_is_400(client: httpx.Client) -> None:
    """An unreadable page_token is a 400, not an empty page."""
    job_id, _ = run_job(client, {"uid": ""})
    response = client.get(f"/v2/users/batch/{job_id}/errors", params={"page_token": "garbage!"})
    assert response.status_code == 400


def test_numbers_are_real_unless_declared_int(client: httpx.Client, sandbox: Sandbox) -> None:
    """Every JSON number is stored as `real` unless the schema declares `int`."""
    job_id, _ = run_job(
        client,
        {
            "uid": "a",
            "properties": {
                "visits": 3,
                "spent": 14.55,
                "days": 7.0,
                "beta": True,
                "plan": "paid",
                "tags": ["x"],
                "scores": [1, 2],
                "signup": "2024-01-01",
            },
            "schema": {"properties": {"days": "int", "signup": "date", "scores": "ints"}},
        },
    )
    user = sandbox.users()["a"]
    assert user["types"] == {
        "visits": "real",
        "spent": "real",
        "days": "int",
        "beta": "bool",
        "plan": "str",
        "tags": "strs",
        "scores": "ints",
        "signup": "date",
    }
    assert user["properties"]["days"] == 7 and isinstance(user["properties"]["days"], int)
    imports = client.get(
        f"/v2/users/batch/{job_id}/imports", params={"include_schema": "true"}
    ).json()["results"]
    assert imports[0]["schema"]["properties"]["days"] == "int"
    plain = client.get(f"/v2/users/batch/{job_id}/imports").json()["results"]
    assert "schema" not in plain[0]


def test_a_type_suffix_declares_the_type_and_the_property_is_stored_without_it(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    """FullStory's v1 naming, as the worker's `suffixed` mode sends it: no schema, the suffix
    says the type."""
    run_job(
        client,
        {
            "uid": "a",
            "properties": {
                "visits_int": 3,
                "spent_real": 2,
                "plan_str": "pro",
                "beta_bool": False,
                "signup_date": "2024-01-01",
            },
        },
    )
    user = sandbox.users()["a"]
    assert user["properties"] == {
        "visits": 3,
        "spent": 2,
        "plan": "pro",
        "beta": False,
        "signup": "2024-01-01",
    }
    assert user["types"] == {
        "visits": "int",
        "spent": "real",
        "plan": "str",
        "beta": "bool",
        "signup": "date",
    }


def test_resent_property_takes_the_type_of_the_new_request(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    """Types follow each upsert: a property re-sent without a schema is inferred again."""
    run_job(client, {"uid": "a", "properties": {"n": 1}, "schema": {"properties": {"n": "int"}}})
    assert sandbox.users()["a"]["types"]["n"] == "int"
    run_job(client, {"uid": "a", "properties": {"n": 2}})
    assert sandbox.users()["a"]["types"]["n"] == "real"


def test_reject_uids_fault_fails_matching_users(client: httpx.Client, sandbox: Sandbox) -> None:
    """Users whose uid matches `reject_uids` end up under errors with code `invalid_user`."""
    sandbox.set_faults(reject_uids="^bad-")
    job_id, status = run_job(client, {"uid": "bad-1"}, {"uid": "good-1"})
    assert status["job"]["status"] == "FAILED"
    errors = client.get(f"/v2/users/batch/{job_id}/errors").json()["results"]
    assert [(e["code"], e["user"]["uid"]) for e in errors] == [("invalid_user", "bad-1")]
    assert list(sandbox.users()) == ["good-1"]
