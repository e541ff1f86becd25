from worker.fullstory.idempotency import idempotency_key


def test_same_body_same_key():
    """A retried POST carries the same key, so FullStory replays instead of making a 2nd job."""
    assert idempotency_key(b'{"requests":[]}') == idempotency_key(b'{"requests":[]}')


def test_different_bodies_never_share_a_key():
    """One key never goes with two bodies (FullStory would reject the second)."""
    assert idempotency_key(b"a") != idempotency_key(b"b")


def test_generation_gives_a_new_key_for_the_same_body():
    """After repeated 5xx the same content moves to a fresh key instead of a replayed error."""
    assert idempotency_key(b"a", 0) != idempotency_key(b"a", 1)
