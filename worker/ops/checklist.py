"""``check``'s checklist, pure: one item per peer, printed one line each (peer text made safe
by ``printable.shown``), or as JSON; the exit status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.ops.printable import shown


@dataclass(frozen=True)
class Item:
    """``fix``: what to do when it failed (a command, a variable to set); ``data``: what
    ``--json`` adds (a group's committed offsets per partition, ...)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def lines(items: Sequence[Item]) -> list[str]:
    """``ok    name: detail`` or ``FAIL  name: detail -> fix``, one line each."""
    out = []
    for item in items:
        fix = f" -> {item.fix}" if item.fix and not item.ok else ""
        out.append(shown(f"{'ok  ' if item.ok else 'FAIL'}  {item.name}: {item.detail}{fix}"))
    return out


def as_json(items: Sequence[Item]) -> dict[str, Any]:
    return {
        "ok": all(item.ok for item in items),
        "checks": [
            {"check": i.name, "ok": i.ok, "detail": i.detail, "fix": i.fix or None, **i.data}
            for i in items
        ],
    }


def exit_status(items: Sequence[Item]) -> int:
    """0 when every item passed, 1 otherwise."""
    return 0 if all(item.ok for item in items) else 1
