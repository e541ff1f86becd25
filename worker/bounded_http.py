"""HTTP answers read within a size cap and an overall deadline, for the FullStory and the
registry adapters.

httpx's timeouts bound each socket operation, not a call: a peer trickling one byte a second
keeps every read inside its timeout and the call alive for ever. Here a call has one deadline,
``deadline_s`` after it starts, and nothing of it outlives that by more than one socket
operation's scheduling slack:

- waiting for a pooled connection: httpx's ``pool`` timeout (the call's ``deadline_s``);
- connecting, TLS, sending, the status line and headers, the body: every socket operation of
  ``DeadlineTransport`` gets at most the time left (a per-thread deadline read by its network
  streams), and fails with httpx's own ``ReadTimeout`` / ``WriteTimeout`` / ``ConnectTimeout``
  once none is left;
- the body is also checked against the deadline between chunks (any transport).

The body is read as a stream and counted: a ``Content-Length`` above ``max_bytes``, or more
than ``max_bytes`` decoded bytes, raises ``AnswerTooLarge`` and closes the connection, never
reading the rest. (A compressed body is counted after decoding; httpx decodes one network read
at a time, so the cap can be passed by at most one read's expansion before it is noticed.)

Egress through a proxy: ``environment_proxies`` reads ``HTTPS_PROXY``, ``HTTP_PROXY``,
``ALL_PROXY`` and ``NO_PROXY`` (either case) once, by httpx's own rules, and ``client`` mounts a
``DeadlineTransport`` through each proxy, so a call through a proxy has the same
deadline and cap as a direct one (httpx would skip the environment's proxies altogether once a
transport is passed). A proxy that refuses, stalls or answers garbage fails the call with
httpx's ``ProxyError`` / ``TimeoutException`` / ``RemoteProtocolError``: an ``HTTPError`` like
any other. The proxy's credentials (``http://user:pass@proxy:3128``) go in its
``Proxy-Authorization`` header only; ``route`` names the proxy, shown with ``redact_url``.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

# httpx's reading of the proxy variables (urllib's, then NO_PROXY as curl documents it) and
# its matching of a URL against them; private names, pinned by the lock and held to their
# behaviour by tests/unit/test_egress.py.
from httpx._utils import URLPattern, get_environment_proxies

from worker.errors import ConfigError

# The standard variables honoured (either case), besides the worker's own settings.
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
# URL pattern (httpx's mount keys: "https://", "all://*.svc") -> the proxy's URL, or None
# where NO_PROXY sends calls direct.
Proxies = Mapping[str, str | None]

# When the current thread's call must be over (time.monotonic()); None outside a call.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "bounded_http_deadline", default=None
)
_WRITE_PIECE = 64 * 1024  # bytes sent per socket operation, each under the time left


class AnswerTooLarge(Exception):
    """The answer's body is longer than the cap; the connection was closed unread."""

    def __init__(self, status: int, max_bytes: int) -> None:
        super().__init__(f"answer larger than {max_bytes} bytes")
        self.status = status


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to the time left before the call's deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the call's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_PIECE):
            piece = buffer[start : start + _WRITE_PIECE]
            self._inner.write(piece, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport, on network streams that obey the calling thread's deadline: direct,
    or through the http(s) proxy at ``proxy`` (the connection to the proxy, its CONNECT
    answer and the tunnelled TLS all under the same deadline)."""

    def __init__(self, limits: httpx.Limits, proxy: str | None = None) -> None:
        super().__init__(limits=limits)
        # httpx builds its pool without a way to pass a network backend; the same pool as
        # HTTPTransport's, with ours. tests/hostile (headers trickled, directly and through
        # a proxy) fails if this stops taking effect.
        ssl_context = httpx.create_ssl_context()
        if proxy is None:
            self._pool = httpcore.ConnectionPool(
                ssl_context=ssl_context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=_DeadlineBackend(),
            )
            return
        through = httpx.Proxy(proxy)  # the URL without its userinfo, which becomes .raw_auth
        self._pool = httpcore.HTTPProxy(
            proxy_url=httpcore.URL(
                scheme=through.url.raw_scheme,
                host=through.url.raw_host,
                port=through.url.port,
                target=through.url.raw_path,
            ),
            proxy_auth=through.raw_auth,
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(),
        )


def environment_proxies() -> dict[str, str | None]:
    """The proxies of ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (lower
    case first, as urllib and curl read them), by httpx's rules: ``host:port`` alone is an
    http:// proxy; NO_PROXY's entries are hosts, ``.domains``, domains (with their
    subdomains), IP addresses, ``host:port``, or ``*`` (no proxy at all). Read at start-up.

    Raises ``ConfigError`` naming the variable for a proxy that is not an http(s) URL (socks
    is not supported) and a NO_PROXY entry that is not a host; the value is never quoted.
    """
    proxies = get_environment_proxies()
    # ``from None``: httpx's own message may quote the value, password included.
    for pattern, url in proxies.items():
        if url is None:
            try:
                URLPattern(pattern)
            except (ValueError, httpx.InvalidURL):
                raise ConfigError("NO_PROXY", "has an entry that is not a host") from None
            continue
        variable = f"{pattern.removesuffix('://').upper()}_PROXY"
        try:
            parsed = httpx.URL(url)
        except (ValueError, httpx.InvalidURL):
            raise ConfigError(variable, "is not a proxy URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(variable, "is not an http(s):// proxy URL (socks is not supported)")
    return proxies


def route(url: str, proxies: Proxies) -> str | None:
    """The proxy calls to ``url`` go through, None when they go direct: the first of
    ``proxies`` matching it, most specific first, as httpx picks a mount."""
    target = httpx.URL(url)
    for pattern in sorted(URLPattern(key) for key in proxies):
        if pattern.matches(target):
            return proxies[pattern.pattern]
    return None


def client(
    base_url: str,
    *,
    deadline_s: float,
    limits: httpx.Limits,
    proxies: Proxies,
    transport: httpx.BaseTransport | None = None,
    **kwargs: Any,
) -> httpx.Client:
    """An httpx client for ``fetch`` calls of ``deadline_s``: every connection, direct or
    through one of ``proxies``, on a ``DeadlineTransport``; on ``transport`` alone when
    given (tests). ``kwargs`` go to ``httpx.Client`` (headers, auth)."""
    mounts: dict[str, httpx.BaseTransport | None] = {}
    if transport is None:
        transport = DeadlineTransport(limits)
        mounts = {
            pattern: None if proxy is None else DeadlineTransport(limits, proxy)
            for pattern, proxy in proxies.items()
        }
    return httpx.Client(
        base_url=base_url,
        timeout=timeouts(deadline_s),
        transport=transport,
        mounts=mounts,
        **kwargs,
    )


def timeouts(deadline_s: float) -> httpx.Timeout:
    """httpx timeouts for calls of ``deadline_s``: no single step may take longer, and
    connecting at most 5 s of it."""
    return httpx.Timeout(deadline_s, connect=min(deadline_s, 5.0), pool=deadline_s)


def fetch(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    max_bytes: int,
    deadline_s: float,
    **kwargs: Any,
) -> Answer:
    """One call, its whole answer read within ``deadline_s`` and ``max_bytes``.

    Raises ``AnswerTooLarge``, httpx's ``TimeoutException`` once the deadline passed, or any
    other ``httpx.HTTPError`` as httpx does.
    """
    deadline = time.monotonic() + deadline_s
    token = _deadline.set(deadline)
    try:
        request = client.build_request(method, url, **kwargs)
        response = client.send(request, stream=True)
        try:
            return Answer(response.status_code, response.headers, _body(response, max_bytes))
        finally:
            response.close()  # a body not read to its end closes the connection
    finally:
        _deadline.reset(token)


def _body(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise AnswerTooLarge(response.status_code, max_bytes)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise AnswerTooLarge(response.status_code, max_bytes)
        chunks.append(chunk)
        _left(None, httpx.ReadTimeout)  # between chunks too, whatever the transport
    return b"".join(chunks)
