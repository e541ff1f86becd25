"""The Idempotency-Key of a POST: one key never goes with two bodies, a retried batch keeps
its key, and no two batches share one. A key that missed a difference between two bodies, or
that two batches of the same body shared, would make FullStory answer the second POST with the
first one's job: the second batch's changes would be acknowledged and never imported."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.factories import change
from tests.fakes.fullstory_script import users_of
from worker.events.merge import fold
from worker.fullstory.idempotency import TOKEN_BYTES, batch_token, idempotency_key
from worker.fullstory.importer import encode_body

# Bodies from one byte up to a large batch's size (10,000 users of about 100 bytes each).
_LENGTHS = st.one_of(st.integers(1, 64), st.integers(1, 1_200_000))


# One batch's token, for the tests of what the body and the generation do to the key.
BATCH = bytes(range(TOKEN_BYTES))


def _body(length: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(length)


def test_same_batch_same_key():
    """A retried POST carries the same key, so FullStory replays instead of making a 2nd job."""
    assert idempotency_key(b'{"requests":[]}', BATCH) == idempotency_key(b'{"requests":[]}', BATCH)


def test_different_bodies_never_share_a_key():
    """One key never goes with two bodies (FullStory would reject the second)."""
    assert idempotency_key(b"a", BATCH) != idempotency_key(b"b", BATCH)


def test_generation_gives_a_new_key_for_the_same_body():
    """After repeated 5xx the same content moves to a fresh key instead of a replayed error."""
    assert idempotency_key(b"a", BATCH, 0) != idempotency_key(b"a", BATCH, 1)


@given(length=_LENGTHS, seed=st.integers(0, 2**32), generation=st.integers(0, 50))
def test_an_equal_body_and_generation_always_give_the_same_key(length, seed, generation):
    """The key depends on the bytes and the generation alone: a body encoded again (another
    bytes object with the same content) is a retry and keeps its key."""
    body = _body(length, seed)
    again = bytes(bytearray(body))
    assert again is not body
    assert idempotency_key(body, BATCH, generation) == idempotency_key(again, BATCH, generation)


@given(
    length=_LENGTHS,
    seed=st.integers(0, 2**32),
    generation=st.integers(0, 50),
    data=st.data(),
)
def test_any_one_byte_changed_anywhere_changes_the_key(length, seed, generation, data):
    """Whichever byte of a body differs, and however long the body, the key differs."""
    body = _body(length, seed)
    at = data.draw(st.integers(0, length - 1), label="at")
    flip = data.draw(st.integers(1, 255), label="xor")
    changed = body[:at] + bytes([body[at] ^ flip]) + body[at + 1 :]
    assert idempotency_key(changed, BATCH, generation) != idempotency_key(body, BATCH, generation)


@given(length=_LENGTHS, seed=st.integers(0, 2**32), cut=st.integers(1, 100))
def test_a_body_longer_or_shorter_by_any_bytes_has_another_key(length, seed, cut):
    """A body and the same body with bytes added or removed at its end never share a key."""
    body = _body(length, seed)
    assert idempotency_key(body + body[:cut], BATCH) != idempotency_key(body, BATCH)
    assert idempotency_key(body + b"\x00" * cut, BATCH) != idempotency_key(body, BATCH)
    if cut < length:
        assert idempotency_key(body[:-cut], BATCH) != idempotency_key(body, BATCH)


@pytest.mark.parametrize("who", [0, 1_000, 1_999], ids=["first", "middle", "last"])
def test_two_batches_differing_in_one_users_change_never_share_a_key(who):
    """Two POSTs of 2,000 users that differ only in one user's property (first, middle or
    last in the body) get different keys: FullStory never takes the second for a retry of
    the first."""
    users = users_of(*(f"u{i}" for i in range(2_000)))
    other = list(users)
    other[who] = fold([change(f"u{who}", seats=who + 1)])  # as many digits
    first, second = encode_body(users), encode_body(other)
    assert first != second and len(first) == len(second)
    assert idempotency_key(first, BATCH) != idempotency_key(second, BATCH)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ((b"a1", 0), (b"a", 10)),
        ((b"a", 1), (b"a\x00generation=1", 0)),
        ((b"", 12), (b"", 1)),
    ],
    ids=["digits-move-to-generation", "generation-spelled-in-body", "empty-body"],
)
def test_a_body_and_a_generation_are_never_traded_for_another_pair(one, other):
    """The generation cannot be confused with the body's last bytes: two different
    (body, generation) pairs never share a key."""
    assert idempotency_key(one[0], BATCH, one[1]) != idempotency_key(other[0], BATCH, other[1])


def test_two_batches_of_the_same_body_never_share_a_key():
    """A user changed A, then B, then back to A sends A's body again as a new batch: under the
    first batch's key FullStory would answer with the first job, and the last change would be
    acknowledged and never applied."""
    body = encode_body(users_of("u1"))
    keys = {idempotency_key(body, batch_token()) for _ in range(1_000)}
    assert len(keys) == 1_000


def test_a_token_of_another_length_is_refused():
    """A short or long token could be traded for the body's first bytes: refused."""
    with pytest.raises(ValueError, match="32 bytes"):
        idempotency_key(b"body", b"short")
