"""Idempotency keys derived from the request body. Pure.

Equal keys imply equal bodies: the key is a hash of the exact bytes sent plus a
generation number. The generation moves on only when FullStory keeps answering 5xx under
one key (it may replay a saved error for 24 hours), so a retried POST never creates a
second job, and a persistent failure is never given up.
"""

from __future__ import annotations

import hashlib


def idempotency_key(body: bytes, generation: int = 0) -> str:
    digest = hashlib.sha256(body)
    digest.update(b"\x00generation=%d" % generation)
    return f"fsus-{digest.hexdigest()}"
