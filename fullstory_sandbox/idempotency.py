"""Idempotency-Key bookkeeping (FullStory "Idempotent Requests").

Contract:
- the first answer saved for a key is replayed, byte for byte in status and body, to every
  later request with that key and the same body, for `ttl_s` seconds;
- a later request with the key and a different body is refused with 400
  `idempotency_key_reused` (the docs call it an error; 400 is their "invalid input" class),
  and that refusal is not saved;
- bodies compare by canonical JSON (key order and whitespace do not matter), or by raw
  bytes when the body is not JSON.
Which answers get saved is the pipeline's decision (`should_save`), not this module's.
Not thread-safe: callers hold the sandbox lock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import orjson

from fullstory_sandbox.messages import ApiError, Response


@dataclass(frozen=True)
class SavedAnswer:
    fingerprint: str
    response: Response
    saved_mono: float


def fingerprint(body: bytes) -> str:
    """A digest identifying a request body up to JSON formatting. orjson first (a 10,000-user
    body in a fifth of the time); what it cannot read (integers beyond 64 bits, for one) goes
    through `json`, so the same body always gets the same digest."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        try:
            canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
        except (ValueError, RecursionError):
            canonical = body
    return hashlib.sha256(canonical).hexdigest()


def should_save(response: Response, replay_errors: bool) -> bool:
    """Whether an answer is saved under its key: never a 429 (the limiter answers before
    idempotency), a 5xx only when `replay_errors` (the docs' pessimistic reading)."""
    if response.status == 429:
        return False
    return response.status < 500 or replay_errors


class IdempotencyKeys:
    """Saved answers by key."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._saved: dict[str, SavedAnswer] = {}

    def lookup(self, key: str, body_fingerprint: str, now_mono: float) -> Response | None:
        """The saved answer to replay, None when the key is new (or expired).

        Raises `ApiError` 400 `idempotency_key_reused` when the key was saved for another body.
        """
        saved = self._saved.get(key)
        if saved is None:
            return None
        if now_mono - saved.saved_mono >= self._ttl_s:
            del self._saved[key]
            return None
        if saved.fingerprint != body_fingerprint:
            raise ApiError(
                400,
                "idempotency_key_reused",
                "Idempotency-Key was already used with a different request body",
            )
        return saved.response

    def save(self, key: str, body_fingerprint: str, response: Response, now_mono: float) -> None:
        self._saved[key] = SavedAnswer(body_fingerprint, response, now_mono)

    def __len__(self) -> int:
        return len(self._saved)

    def clear(self) -> None:
        self._saved.clear()
