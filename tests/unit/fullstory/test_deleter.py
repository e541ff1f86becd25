"""Deleting users (``worker.fullstory.deleter``) on FullStory's HTTP API (MockTransport)."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.fakes.fullstory_script import Script, importer_on
from worker.config.redact import Secret
from worker.errors import ConfigError
from worker.fullstory.client import FullStoryClient
from worker.fullstory.deleter import Deleter, check_may_delete
from worker.runtime.retry import Backoff

GONE = httpx.Response(404, json={"code": "resource_not_found", "message": "not found"})
DELETING = httpx.Response(200, json={"results": [{"uid": "u1", "is_being_deleted": True}]})
PRESENT = httpx.Response(200, json={"results": [{"uid": "u1", "is_being_deleted": False}]})
OK = httpx.Response(200, json={})


def _client(script: Script) -> FullStoryClient:
    return FullStoryClient("http://fs.test", Secret("KEY"), transport=httpx.MockTransport(script))


def _deleter(script: Script) -> Deleter:
    importer = importer_on(script)
    return Deleter(_client(script), importer.policy, poll_min_s=0.001, poll_max_s=0.002)


def test_a_deleted_user_is_waited_for_until_a_look_up_answers_404():
    script = Script({"DELETE /v2/users": [OK], "GET /v2/users": [DELETING, DELETING, GONE]})
    outcome = _deleter(script).run(["u1"])
    assert (outcome.deleted, outcome.absent, outcome.failures) == (1, 0, {})
    calls = [f"{r.method} {r.url.params.get('uid')}" for r in script.requests]
    assert calls == ["DELETE u1", "GET u1", "GET u1", "GET u1"]


def test_a_user_fullstory_does_not_know_is_not_waited_for():
    script = Script({"DELETE /v2/users": [GONE], "GET /v2/users": [PRESENT]})
    outcome = _deleter(script).run(["u1"])
    assert (outcome.deleted, outcome.absent) == (0, 1)
    assert [r.method for r in script.requests] == ["DELETE"]


def test_a_user_seen_present_again_is_sent_its_delete_again():
    script = Script({"DELETE /v2/users": [OK], "GET /v2/users": [PRESENT, GONE]})
    _deleter(script).run(["u1"])
    assert [r.method for r in script.requests] == ["DELETE", "GET", "DELETE", "GET"]


def test_a_server_error_is_retried_and_a_400_fails_the_user_alone():
    bad = httpx.Response(400, json={"code": "invalid_argument", "message": "bad uid"})
    down = httpx.Response(503, json={"message": "down"})
    script = Script({"DELETE /v2/users": [down, bad, OK], "GET /v2/users": [GONE]})
    outcome = _deleter(script).run(["u1", "u2"])
    assert list(outcome.failures) == ["u1"]
    assert outcome.failures["u1"].code == "invalid_argument"
    assert outcome.deleted == 1


def _role_check(answers: list[httpx.Response]) -> bool:
    script = Script({"GET /v2/users": answers})
    return check_may_delete(
        _client(script), threading.Event().wait, Backoff(base_s=0.001, cap_s=0.001)
    )


def test_the_role_check_passes_on_404_and_refuses_a_key_without_the_role():
    assert _role_check([GONE]) is True
    forbidden = httpx.Response(403, json={"code": "forbidden", "message": "needs admin"})
    with pytest.raises(ConfigError) as info:
        _role_check([forbidden])
    assert info.value.variable == "ON_DELETE"
    assert "Admin or Architect" in str(info.value) and "403" in str(info.value)


def test_the_role_check_waits_out_an_outage_instead_of_failing():
    down = httpx.Response(503, json={"message": "down"})
    assert _role_check([down, down, GONE]) is True
