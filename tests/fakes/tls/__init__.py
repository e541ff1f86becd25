"""A test-only certificate authority and a server certificate it signed for 127.0.0.1 and
localhost (valid until 2125), so tests can serve https and the worker verify it, as in
production, with ``SSL_CERT_FILE`` naming ``CA``. Never trust these anywhere else."""

from __future__ import annotations

import ssl
from pathlib import Path

HERE = Path(__file__).resolve().parent
CA = HERE / "ca.pem"


def server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(HERE / "server.pem", HERE / "server.key")
    return context
