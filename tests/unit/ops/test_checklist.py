"""``check``'s checklist (``worker.ops.checklist``): one line per item, peer text escaped,
the fix shown only for a failure, exit 0 only when every item passed."""

from __future__ import annotations

from worker.ops.checklist import Item, as_json, exit_status, lines


def test_one_line_per_item_with_the_fix_only_when_it_failed():
    """A passing item says what was found; a failing one adds what to do; exit 1 for any."""
    items = [
        Item("kafka", True, "1 broker answered", "never shown"),
        Item("dlq topic d", False, "does not exist", "`fullstory-user-sync check --create-dlq`"),
    ]
    assert lines(items) == [
        "ok    kafka: 1 broker answered",
        "FAIL  dlq topic d: does not exist -> `fullstory-user-sync check --create-dlq`",
    ]
    assert exit_status(items) == 1 and exit_status(items[:1]) == 0
    assert as_json(items)["ok"] is False and as_json(items[:1])["ok"] is True


def test_peer_text_cannot_break_a_line_or_drive_the_terminal():
    """A registry subject or a Kafka error message is the peer's text: a newline, an escape
    sequence or a bidi control is shown escaped, so each item stays one line."""
    [line] = lines([Item("schema registry", True, "subjects: a\nFAIL  b \x1b]52;c;x\x07 \u202e")])
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line
    assert "\\n" in line and "\\x1b" in line and "\\u202e" in line
