"""Print the README's settings table from ``worker.config.spec``, or rewrite it in place.

    python scripts/settings_doc.py            # print the table
    python scripts/settings_doc.py --write    # replace the table in README.md

``tests/unit/config/test_settings_consistency.py`` fails when README.md's table differs from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's worker, not an installed one

from worker.config.spec import doc_table  # noqa: E402 (after the path is set)

README = ROOT / "README.md"
HEADER = "| variable | default | meaning |"


def readme_table(text: str) -> tuple[int, int]:
    """Line span ``[start, end)`` of the settings table in the README's lines."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADER))
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return start, end


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        text = README.read_text()
        start, end = readme_table(text)
        lines = text.splitlines(keepends=True)
        README.write_text("".join([*lines[:start], doc_table(), *lines[end:]]))
    elif argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    else:
        sys.stdout.write(doc_table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
