"""Egress through a proxy (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``): the
FullStory and registry clients reach their peer through a real forwarding proxy on loopback
(``tests/fakes/proxy.py``), plain http forwarded and https tunnelled with CONNECT and its TLS
verified, with the proxy's credentials; NO_PROXY's hosts go direct; and a proxy that refuses,
stalls, trickles or answers garbage ends the call within its deadline as the worker's own
retriable error, never another exception."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from fullstory_sandbox import Sandbox
from tests.fakes.avro import encode, event
from tests.fakes.proxy import ForwardProxy, Misbehaviour
from tests.fakes.tls import CA, server_context
from tests.hostile.server import DEADLINE_S, HostileServer, answer
from worker.bounded_http import environment_proxies
from worker.config.redact import Secret
from worker.errors import RegistryUnavailable, Unreachable, WorkerError
from worker.events.decode import Decoder, load_reader_schema
from worker.events.registry import SchemaRegistry
from worker.fullstory.client import FullStoryClient

SCHEMA_PATH = "/schemas/ids/7"
PASSWORD = "pr0xy-s3cret"
VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_but_the_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the variables it means; the runner's own (either case) are cleared."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(CA))  # trust tests/fakes/tls, as a private CA


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy(credentials=("egress", PASSWORD)) as running:
        yield running


@pytest.fixture
def tls_server() -> Iterator[HostileServer]:
    hostile = HostileServer(tls=server_context())
    yield hostile
    hostile.stop()


def _registry(url: str) -> tuple[SchemaRegistry, Decoder]:
    registry = SchemaRegistry(url, timeout_s=DEADLINE_S, proxies=environment_proxies())
    return registry, Decoder(load_reader_schema(), registry.writer_schema)


def _serve_schema(server: HostileServer) -> None:
    schema = load_reader_schema()
    server.answer_with("GET", SCHEMA_PATH, answer(200, {"schema": json.dumps(schema)}))


def test_fullstory_calls_reach_the_sandbox_through_the_proxy(monkeypatch, proxy: ForwardProxy):
    """HTTP_PROXY with credentials: the import, its status polls and its errors go through
    the proxy (which insists on the credentials), and the sandbox holds the user."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url(f"egress:{PASSWORD}"))
    with Sandbox(api_key="k", job_delay_ms=0) as sandbox:
        client = FullStoryClient(sandbox.url, Secret("k"), proxies=environment_proxies())
        body = b'{"requests": [{"uid": "via-proxy", "display_name": "Proxied"}]}'
        job = client.create_batch(body, "key-1")
        for _ in range(200):  # bounded: the sandbox ends a job at once
            if client.job_status(job).done:
                break
            time.sleep(0.01)
        client.close()
        assert list(sandbox.users()) == ["via-proxy"]
        paths = [target.removeprefix(sandbox.url) for target in proxy.targets()]
    assert paths[0] == "/v2/users/batch"
    assert paths[1:] and set(paths[1:]) == {f"/v2/users/batch/{job}"}
    assert set(proxy.authorizations) == {f"egress:{PASSWORD}"}


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
def test_https_calls_tunnel_through_the_proxy_with_tls_verified(
    monkeypatch, proxy: ForwardProxy, tls_server: HostileServer, variable: str
):
    """An https peer (FullStory in production): both clients open a CONNECT tunnel through
    the proxy named by the variable and verify the peer's certificate through it."""
    monkeypatch.setenv(variable, proxy.url(f"egress:{PASSWORD}"))
    tls_server.answer_with("POST", "/v2/users/batch", answer(200, {"job": {"id": "j-1"}}))
    _serve_schema(tls_server)
    client = FullStoryClient(tls_server.url, Secret("k"), proxies=environment_proxies())
    assert client.create_batch(b'{"requests": []}', "key-1") == "j-1"
    client.close()
    registry, decoder = _registry(tls_server.url)
    assert decoder.decode(encode(event("u1"), schema_id=7))["uid"] == "u1"
    registry.close()
    where = tls_server.url.removeprefix("https://")
    assert proxy.targets("CONNECT") == [where, where]
    assert tls_server.served("GET", SCHEMA_PATH) == 1


def test_registry_fetches_go_through_the_proxy(monkeypatch, proxy: ForwardProxy, server):
    """HTTP_PROXY and a plain-http registry: the schema fetch is forwarded by the proxy."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url(f"egress:{PASSWORD}"))
    _serve_schema(server)
    registry, decoder = _registry(server.url)
    assert decoder.decode(encode(event("u1"), schema_id=7))["uid"] == "u1"
    registry.close()
    assert proxy.targets() == [server.url + SCHEMA_PATH]


@pytest.mark.parametrize(
    ("no_proxy", "host", "proxied"),
    [
        ("127.0.0.1", "127.0.0.1", False),
        ("*", "127.0.0.1", False),
        ("localhost", "localhost", False),
        ("registry.example,127.0.0.1:{port}", "127.0.0.1", False),
        (".example.com, localhost", "localhost", False),
        ("127.0.0.1:1", "127.0.0.1", True),  # another port of the host: proxied
        ("example.com", "127.0.0.1", True),
    ],
    ids=["ip", "star", "localhost", "host-port", "list", "other-port", "other-host"],
)
def test_no_proxy_sends_the_registry_direct(
    monkeypatch, proxy: ForwardProxy, server: HostileServer, no_proxy, host, proxied
):
    """NO_PROXY as curl reads it (an in-cluster registry beside a proxied FullStory): the
    hosts it names go direct, the proxy sees nothing of them; others still go through it."""
    port = server.url.rpartition(":")[2]
    monkeypatch.setenv("HTTP_PROXY", proxy.url(f"egress:{PASSWORD}"))
    monkeypatch.setenv("NO_PROXY", no_proxy.format(port=port))
    _serve_schema(server)
    registry, decoder = _registry(f"http://{host}:{port}")
    assert decoder.decode(encode(event("u1"), schema_id=7))["uid"] == "u1"
    registry.close()
    assert proxy.requests == (1 if proxied else 0)
    assert server.served("GET", SCHEMA_PATH) == 1


HOSTILE = ["refuse", "stall", "trickle", "garbage", "closed", "no-auth"]
# A forwarding proxy's 403 / 407 to a plain-http request is an answer like the peer's own (a
# 403 from FullStory is AuthFailed); FullStory is https, tunnelled, where they are ProxyError.
CASES = [
    (peer, scheme, misbehave)
    for peer in ("fullstory", "registry")
    for scheme in ("http", "https")
    for misbehave in HOSTILE
    if not (peer == "fullstory" and scheme == "http" and misbehave in ("refuse", "no-auth"))
]


@pytest.mark.parametrize(("peer", "scheme", "misbehave"), CASES, ids=["-".join(c) for c in CASES])
def test_a_hostile_proxy_is_a_retriable_failure_ended_in_time(
    monkeypatch, server: HostileServer, tls_server: HostileServer, peer, scheme, misbehave
):
    """A proxy that refuses (403, or 407 to wrong credentials), stalls, trickles its answer a
    byte at a time, answers garbage or is not listening: the call ends within three times its
    deadline (the trickle is ended only by the call's own deadline, as a direct trickle is) as
    ``Unreachable`` (FullStory: retried) or ``RegistryUnavailable`` (the record waits), never
    anything else, and the peer never sees the request."""
    target = tls_server if scheme == "https" else server
    behaviour: Misbehaviour | None = None
    if misbehave not in ("closed", "no-auth"):
        behaviour = misbehave
    hostile = ForwardProxy(credentials=("egress", PASSWORD), misbehave=behaviour)
    userinfo = "egress:wrong" if misbehave == "no-auth" else f"egress:{PASSWORD}"
    url = hostile.url(userinfo)
    if misbehave == "closed":
        hostile.stop()  # nothing listens on its port any more
    monkeypatch.setenv(f"{scheme.upper()}_PROXY", url)
    started = time.monotonic()
    with pytest.raises(WorkerError) as raised:
        if peer == "fullstory":
            client = FullStoryClient(
                target.url, Secret("k"), timeout_s=DEADLINE_S, proxies=environment_proxies()
            )
            try:
                client.create_batch(b'{"requests": []}', "key-1")
            finally:
                client.close()
        else:
            registry, decoder = _registry(target.url)
            try:
                decoder.decode(encode(event("u1"), schema_id=7))
            finally:
                registry.close()
    elapsed = time.monotonic() - started
    hostile.stop()
    assert type(raised.value) is (Unreachable if peer == "fullstory" else RegistryUnavailable)
    assert PASSWORD not in repr(raised.value) and PASSWORD not in repr(raised.value.__cause__)
    assert elapsed < 3 * DEADLINE_S
    assert target.requests == []
