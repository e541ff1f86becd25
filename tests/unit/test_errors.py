"""The error tree's closed sets held to the documentation operators read."""

from __future__ import annotations

import re
from pathlib import Path

from worker.errors import DeadLetterCode

ROOT = Path(__file__).resolve().parents[2]


def _section(markdown: str, title: str) -> str:
    """The text of the ``## title`` section, up to the next ``## `` heading."""
    start = markdown.index(f"\n## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def test_every_dead_letter_code_is_documented_and_nothing_else_is():
    """README.md's table of dead-letter codes names each code the worker writes in
    `dlq.error.code` (and labels `fsus_dead_letters_total` with), and no code it never writes:
    an operator looking up a letter's code or an alert's label finds it there."""
    section = _section((ROOT / "README.md").read_text(), "Dead letters")
    rows = re.findall(r"^\| (`[^|]+) \|", section, flags=re.MULTILINE)
    documented = [code for cell in rows for code in re.findall(r"`([a-z_]+)`", cell)]
    assert sorted(documented) == sorted(code.value for code in DeadLetterCode)


def test_dead_letter_codes_are_stable_snake_case_values():
    """Each code is the snake_case string that lands in the header and the metric label (a
    member compares and formats as that string), so dashboards and alerts keep matching."""
    for code in DeadLetterCode:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code.value), code
        assert str(code) == f"{code}" == code.value == code
