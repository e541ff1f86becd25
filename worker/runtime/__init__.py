"""What the process runs with, whichever stage it serves.

Owns ``health`` (liveness and readiness), ``health_server`` (``/healthz``, ``/readyz`` and
``/metrics`` over HTTP: a thread a connection, at most 64, each cut after 5 s),
``metrics`` (the Prometheus registry), ``logs`` (structlog, librdkafka's logs routed through
it), ``process`` (malloc arenas, the garbage collector), ``clock`` (time, passed in so the pure
core is tested without sleeping) and ``retry`` (backoff with jitter). Imports nothing of the
worker but its errors.
"""
