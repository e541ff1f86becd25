"""Dead letters read back (``worker.ops.letters``): parsed, counted and shown; pure."""

import pytest

from worker.ops.letters import Tally, letter_json, parse, render, summary_json

LOG_APPEND_TIME = 2


def _letter(code="undecodable", source=("users", 0, 7), offset=0, headers=(), **extra):
    topic, partition, source_offset = source
    worker_headers = [
        ("dlq.error.code", code.encode()),
        ("dlq.error.message", b"cannot read it"),
        ("dlq.source.topic", topic.encode()),
        ("dlq.source.partition", str(partition).encode()),
        ("dlq.source.offset", str(source_offset).encode()),
        *[(name, value.encode()) for name, value in extra.items()],
    ]
    return parse(
        0,
        offset,
        b"uid-1",
        b"\x00\x01",
        [*headers, *worker_headers],
        (LOG_APPEND_TIME, 1_700_000_000_123),
    )


def test_a_letter_carries_the_workers_headers():
    """Code, message, source coordinates, job id and broker time come from the headers."""
    letter = _letter(code="invalid_email", source=("users", 3, 42), **{"dlq.job.id": "job-9"})
    shown = letter_json(letter, values=False)
    assert shown == {
        "partition": 0,
        "offset": 0,
        "key": "uid-1",
        "code": "invalid_email",
        "fullstory_code": None,
        "message": "cannot read it",
        "source": {"topic": "users", "partition": 3, "offset": 42},
        "job_id": "job-9",
        "timestamp": "2023-11-14T22:13:20.123+00:00",
        "timestamp_type": "LogAppendTime",
    }


def test_a_user_fullstory_rejected_shows_fullstorys_own_code():
    """A letter counted as `fullstory_rejected` shows the code FullStory gave
    (`dlq.fullstory.code`) beside it, in the JSON and in the listing (on its one line)."""
    letter = _letter(
        code="fullstory_rejected",
        **{"dlq.fullstory.code": "invalid_user\n", "dlq.job.id": "job-3"},
    )
    assert letter_json(letter, values=False)["fullstory_code"] == "invalid_user\n"
    tally = Tally()
    tally.add(letter)
    tally.add(_letter(offset=1))
    lines = render(tally.summary(), values=False).splitlines()
    assert "key uid-1 fullstory_rejected (FullStory: invalid_user\\n) from users[0]@7" in lines[-2]
    assert "FullStory" not in lines[-1]  # an undecodable record's letter has no such code
    assert summary_json(tally.summary(), values=False)["by_code"] == {
        "fullstory_rejected": 1,
        "undecodable": 1,
    }


def test_the_workers_headers_win_over_the_records_own():
    """A record that was a dead letter before keeps its old dlq.* headers first; the
    worker's, appended last, are the ones read."""
    old = [("dlq.error.code", b"tombstone"), ("dlq.source.topic", b"elsewhere")]
    letter = _letter(code="undecodable", headers=old)
    assert (letter.code, letter.source_topic) == ("undecodable", "users")


def test_a_record_without_the_headers_still_reads():
    """Something else written to the DLQ is shown with code ``?``, not a crash."""
    letter = parse(0, 5, None, None, None, (0, -1))
    assert (letter.code, letter.source_partition, letter.job_id) == ("?", None, None)
    assert letter_json(letter, values=True)["timestamp"] is None
    assert letter_json(letter, values=True)["value_hex"] is None


def test_values_only_when_asked():
    """A value holds personal data: shown (hex) with ``--values`` only."""
    letter = _letter()
    assert "value_hex" not in letter_json(letter, values=False)
    assert letter_json(letter, values=True)["value_hex"] == "0001"
    assert "0001" not in render(Tally().summary(), values=False)


def test_counts_cover_every_letter_while_only_the_first_are_kept():
    """Counts by code and by source are over all letters; ``limit`` and ``code`` choose
    only which are shown."""
    tally = Tally(code="invalid_email", limit=2)
    codes = ["undecodable", "invalid_email", "invalid_email", "invalid_email", "tombstone"]
    for offset, code in enumerate(codes):
        tally.add(_letter(code=code, offset=offset, source=("users", offset % 2, offset)))
    summary = tally.summary()
    assert summary.total == 5
    assert summary.by_code == {"invalid_email": 3, "tombstone": 1, "undecodable": 1}
    assert summary.by_source == {"users[0]": 3, "users[1]": 2}
    assert summary.matching == 3
    assert [letter.offset for letter in summary.shown] == [1, 2]
    assert summary_json(summary, values=False)["records"][0]["offset"] == 1


@pytest.mark.parametrize("limit", [0, 1], ids=["counts-only", "one"])
def test_limit(limit):
    """``--limit 0`` shows the counts alone."""
    tally = Tally(limit=limit)
    for offset in range(3):
        tally.add(_letter(offset=offset))
    assert len(tally.summary().shown) == limit
    assert tally.summary().total == 3


def test_each_letter_stays_on_one_line():
    """A message with a newline (FullStory's text) cannot break the listing apart."""
    tally = Tally()
    tally.add(
        parse(0, 0, b"k", None, [("dlq.error.code", b"x"), ("dlq.error.message", b"a\nb")], (0, 0))
    )
    text = render(tally.summary(), values=False)
    assert text.splitlines()[-1].endswith(": a\\nb")


HOSTILE = "\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\x1b]8;;http://evil/\x07click\x1b]8;;\x07\r\u202egnp.exe\u200b"


def _printable(text: str) -> bool:
    return all(line.isprintable() for line in text.splitlines()) and "\r" not in text


def test_attacker_text_never_reaches_the_terminal_raw():
    """A letter written straight to the DLQ topic, every field chosen by whoever produced it:
    escape sequences (clear screen, OSC 52 clipboard, OSC 8 link), a carriage return and bidi
    and zero-width characters are shown escaped, in every field of the text output."""
    forged = [
        ("dlq.error.code", HOSTILE.encode()),
        ("dlq.error.message", HOSTILE.encode()),
        ("dlq.source.topic", HOSTILE.encode()),
        ("dlq.source.partition", b"0"),
        ("dlq.source.offset", b"1"),
        ("dlq.job.id", HOSTILE.encode()),
        ("dlq.fullstory.code", HOSTILE.encode()),
    ]
    tally = Tally()
    tally.add(parse(0, 0, HOSTILE.encode(), b"v", forged, (LOG_APPEND_TIME, 1_700_000_000_000)))
    text = render(tally.summary(), values=True)
    assert _printable(text), text
    assert "\\x1b[2J" in text and "\\u202e" in text
