"""Which proxy each call goes through (``bounded_http.environment_proxies`` and ``route``), as
curl and httpx read ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY``; what the
start-up log says of it; and a proxy the worker cannot use refused at start, its password
never shown. The calls themselves go through a real proxy in tests/hostile/test_proxy.py."""

from __future__ import annotations

import json

import pytest
import structlog

from tests.unit.test_cli import BASE, _run
from worker.bounded_http import environment_proxies, route
from worker.cli import _report_egress
from worker.config.settings import load_settings
from worker.errors import ConfigError

NAMES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
PROXY = "http://proxy.corp:3128"


@pytest.fixture(autouse=True)
def only_the_tests_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize(
    ("environ", "url", "proxy"),
    [
        ({"HTTPS_PROXY": PROXY}, "https://api.fullstory.com", PROXY),
        ({"HTTPS_PROXY": PROXY}, "http://registry:8081", None),
        ({"HTTP_PROXY": PROXY}, "https://api.fullstory.com", None),
        ({"HTTP_PROXY": PROXY}, "http://registry:8081", PROXY),
        ({"ALL_PROXY": PROXY}, "https://api.fullstory.com", PROXY),
        ({"ALL_PROXY": PROXY, "HTTPS_PROXY": "http://tls:1"}, "https://a.io", "http://tls:1"),
        ({"HTTPS_PROXY": "http://upper:1", "https_proxy": PROXY}, "https://a.io", PROXY),
        ({"HTTPS_PROXY": "proxy.corp:3128"}, "https://a.io", PROXY),
        ({"HTTPS_PROXY": PROXY, "NO_PROXY": "*"}, "https://api.fullstory.com", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": ".svc"}, "http://registry.kafka.svc:8081", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": ".svc"}, "http://svc:8081", PROXY),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "corp.io"}, "http://reg.corp.io", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "corp.io"}, "http://corp.io", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "corp.io"}, "http://notcorp.io", PROXY),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "reg:8081"}, "http://reg:8081", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "reg:8081"}, "http://reg:8082", PROXY),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "10.0.0.5"}, "http://10.0.0.5:8081", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "::1"}, "http://[::1]:8081", None),
        ({"HTTP_PROXY": PROXY, "no_proxy": "a.io, reg"}, "http://reg:8081", None),
        ({}, "https://api.fullstory.com", None),
    ],
    ids=[
        "https-proxy",
        "https-proxy-not-for-http",
        "http-proxy-not-for-https",
        "http-proxy",
        "all-proxy",
        "scheme-beats-all",
        "lower-case-wins",
        "host-port-alone",
        "no-proxy-star",
        "no-proxy-dot-domain",
        "dot-domain-not-the-bare-name",
        "domain-subdomain",
        "domain-itself",
        "domain-not-a-suffix-of-a-word",
        "host-port",
        "host-other-port",
        "ipv4",
        "ipv6",
        "list-lower-case",
        "none",
    ],
)
def test_each_url_goes_through_the_proxy_curl_would_use(monkeypatch, environ, url, proxy):
    """An operator's proxy variables mean what they mean to curl: the scheme's proxy (or
    ALL_PROXY's), lower case first, and NO_PROXY's hosts, domains, IPs and host:port direct."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert route(url, environment_proxies()) == proxy


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HTTPS_PROXY", "socks5://egress:pr0xy-s3cret@proxy:1080"),
        ("all_proxy", "socks5h://egress:pr0xy-s3cret@proxy:1080"),
        ("HTTP_PROXY", "ftp://egress:pr0xy-s3cret@proxy:21"),
        ("NO_PROXY", "a.io,registry:pr0xy-s3cret"),
    ],
    ids=["socks", "socks-all-lower", "ftp", "no-proxy-not-a-host"],
)
def test_a_proxy_the_worker_cannot_use_exits_2_naming_it_never_its_password(variable, value):
    """A socks or otherwise unusable proxy (or a NO_PROXY entry that is no host) stops the
    worker at start with one line naming the variable, not a traceback at the first call,
    and never quoting the value (it may hold the proxy's password)."""
    done = _run(BASE | {variable: value})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and variable.upper() in done.stderr, done.stderr
    assert "pr0xy-s3cret" not in done.stderr + done.stdout


def test_the_start_up_log_names_each_clients_proxy_with_its_password_masked(monkeypatch):
    """Once at start, ``egress_proxy`` per client: FullStory through the proxy, shown as
    ``http://***@host:port``; the in-cluster registry named by NO_PROXY direct (None)."""
    monkeypatch.setenv("HTTPS_PROXY", "http://egress:pr0xy-s3cret@proxy.corp:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://egress:pr0xy-s3cret@proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", ".svc.cluster.local")
    registry = "http://registry.kafka.svc.cluster.local:8081"
    settings = load_settings(BASE | {"SCHEMA_REGISTRY_URL": registry})
    with structlog.testing.capture_logs() as logs:
        _report_egress(settings, environment_proxies())
    told = [(e["client"], e["proxy"]) for e in logs if e["event"] == "egress_proxy"]
    assert told == [("fullstory", "http://***@proxy.corp:3128"), ("schema_registry", None)]
    assert "pr0xy-s3cret" not in json.dumps(logs)


def test_a_bad_proxy_is_a_config_error_naming_the_scheme_variable(monkeypatch):
    """Read in-process too (status --worker reads it the same way): ConfigError, variable."""
    monkeypatch.setenv("https_proxy", "socks5://proxy:1080")
    with pytest.raises(ConfigError) as raised:
        environment_proxies()
    assert raised.value.variable == "HTTPS_PROXY"
