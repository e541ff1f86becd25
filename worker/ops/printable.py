"""Text from Kafka or from another client, made safe to print: one rule for every operator
command's text output.

Keys, header values, codes, topic names, member and client ids, messages: any of them may be
written by whoever can produce to a topic or join a group. Printed raw, an escape sequence
clears the operator's screen, writes their clipboard (OSC 52), hides a link (OSC 8), or a
``\\r`` or a bidi control makes a line read as something else. ``shown`` writes every
character ``str.isprintable`` refuses (C0 and C1 controls, DEL, format characters such as
zero-width and bidi controls, line and paragraph separators) as its Python escape, so a line
stays one line and says what it holds. ``--json`` output needs none of this: JSON escapes
control characters itself.
"""

from __future__ import annotations


def shown(text: object) -> str:
    """``text`` on one line, every non-printable character escaped (``\\x1b``, ``\\u202e``)."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
