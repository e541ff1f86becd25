"""What FullStory should hold after a stream: the fold of each uid's events in order."""

from __future__ import annotations

import random
from typing import Any


def fold_events(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    users: dict[str, dict[str, Any]] = {}
    for event in events:
        user = users.setdefault(
            event["uid"], {"display_name": None, "email": None, "properties": {}}
        )
        for field in ("display_name", "email"):
            if event.get(field) is not None:
                user[field] = event[field]
        for name, value in event.get("properties", {}).items():
            if value is not None:
                user["properties"][name] = value
    return users


def random_events(count: int, uids: int, seed: int) -> list[dict[str, Any]]:
    """A stream of partial updates: names, emails, int/real/bool/str properties and nulls."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        uid = f"user-{rng.randrange(uids):05d}"
        props: dict[str, Any] = {}
        if rng.random() < 0.8:
            props["visits"] = rng.randrange(1000)
        if rng.random() < 0.3:
            props["spent"] = round(rng.random() * 100, 2)
        if rng.random() < 0.3:
            props["plan"] = rng.choice(["free", "pro", "team", None])
        if rng.random() < 0.2:
            props["beta"] = rng.random() < 0.5
        events.append(
            {
                "uid": uid,
                "changed_at": 1_700_000_000_000 + i,
                "display_name": rng.choice([None, None, f"Name {i}"]),
                "email": rng.choice([None, None, None, f"u{i}@example.com"]),
                "properties": props,
            }
        )
    return events
