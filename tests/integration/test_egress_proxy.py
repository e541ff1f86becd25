"""The worker behind an egress proxy, on the real broker: ``python -m worker run`` with
``HTTP_PROXY`` (credentials in the URL) imports every record into the sandbox through a real
proxy on loopback (``tests/fakes/proxy.py``), its registry fetches too unless ``NO_PROXY`` names
the registry, and its log names the proxy with the password masked, never the password."""

from __future__ import annotations

import json

import pytest

from tests.fakes.avro import encode, event
from tests.fakes.proxy import ForwardProxy
from tests.integration.registry import Registry
from tests.integration.test_end_to_end import _assert_sandbox_holds, _drained
from tests.integration.worker_process import ROOT, wait_until
from worker.bounded_http import PROXY_VARIABLES

pytestmark = pytest.mark.integration

PASSWORD = "pr0xy-s3cret"


@pytest.mark.parametrize("registry_direct", [False, True], ids=["all-proxied", "no-proxy-registry"])
def test_the_worker_imports_through_the_proxy_and_never_logs_its_password(
    broker, sandbox, stream, start_worker, monkeypatch, registry_direct
):
    for name in PROXY_VARIABLES:  # the worker inherits the runner's environment
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    topic, dlq, group = stream(2)
    events = [event(f"proxied-{i % 7}", properties={"n": i}) for i in range(60)]
    with Registry() as registry, ForwardProxy(credentials=("egress", PASSWORD)) as proxy:
        registry.register(1, json.loads((ROOT / "schemas" / "user_change.avsc").read_text()))
        broker.produce(topic, [(e["uid"].encode(), encode(e, schema_id=1)) for e in events])
        env = {
            "SCHEMA_REGISTRY_URL": registry.url,
            "HTTP_PROXY": proxy.url(f"egress:{PASSWORD}"),
        }
        if registry_direct:
            env["NO_PROXY"] = registry.url.removeprefix("http://")  # 127.0.0.1:<its port>
        worker = start_worker(topic, dlq, group, **env)
        wait_until(_drained(broker, group, topic), 90, "every record imported through the proxy")
        assert worker.terminate() == 0
        forwarded = proxy.targets()
        assert registry.fetches >= 1
    _assert_sandbox_holds(sandbox, events)
    to_fullstory = [t for t in forwarded if t.startswith(f"{sandbox.url}/v2/users/batch")]
    to_registry = [t for t in forwarded if t.startswith(registry.url)]
    assert to_fullstory and len(to_fullstory) + len(to_registry) == len(forwarded)
    assert len(to_registry) == (0 if registry_direct else registry.fetches)
    assert set(proxy.authorizations) == {f"egress:{PASSWORD}"}
    told = {e["client"]: e["proxy"] for e in worker.events() if e.get("event") == "egress_proxy"}
    masked = proxy.url("***")
    assert told == {"fullstory": masked, "schema_registry": None if registry_direct else masked}
    assert PASSWORD not in worker.log_path.read_text(errors="replace")
