"""Idempotency keys: one per batch of records, derived from the request body, the records
the batch carries and a generation. Pure.

Equal keys imply equal bodies: the key is a hash of the exact bytes sent, the digest of the
batch's records (``Batch.records_digest``) and a generation number. A retried POST of a batch
keeps its key, so it never creates a second job; so does the same batch formed again from the
same records after a crash, which gets the job its first POST created (perhaps one whose
answer was lost with the crash) instead of a second job of older values that could run after
a later one. Another batch gets another key even when its body is the same: a user changed
A, then B, then back to A sends the first body again, and FullStory answers a key it has seen
with the first job (for 24 hours), so under a key of the body alone the last A would be
acknowledged and never applied. The generation moves on only when FullStory keeps answering
5xx under one key (it may replay a saved error for 24 hours), so a persistent failure is never
given up.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32


def batch_token() -> bytes:
    """A token for a batch whose records are not known (a caller without a ``Batch``):
    random, so it shares a key with no other batch."""
    return secrets.token_bytes(TOKEN_BYTES)


def idempotency_key(body: bytes, batch: bytes, generation: int = 0) -> str:
    """The key of ``body`` sent for the batch ``batch`` (its ``records_digest``, or a
    ``batch_token``)."""
    if len(batch) != TOKEN_BYTES:
        raise ValueError(f"a batch token is {TOKEN_BYTES} bytes, not {len(batch)}")
    digest = hashlib.sha256(batch)
    digest.update(body)
    digest.update(b"\x00generation=%d" % generation)
    return f"fsus-{digest.hexdigest()}"
