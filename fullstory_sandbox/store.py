"""The sandbox's user store: what FullStory would hold after the imports so far.

Upsert contract (FullStory v2 users are upserted by `uid`):
- a new uid creates a user with a fresh FullStory `id`; an existing uid keeps its `id`;
- `display_name` / `email` present in the request overwrite (null clears), absent ones stay;
- properties merge per top-level key: a key present in the request replaces that property
  (value and the types of all its leaves), absent keys stay untouched;
- every property leaf carries a type: the declared one, else the inferred one.
The store also counts how often each uid was upserted, so tests can spot duplicate imports.

Delete contract (`DELETE /v2/users?uid=`): FullStory answers at once and deletes in the
background; until then the user is still there, marked `is_being_deleted`, then it is gone.
What an upsert of a uid whose deletion still runs does is undocumented, so the sandbox takes
the worst case: the upsert applies, and the deletion removes the user all the same. Every such
upsert is recorded as a violation (a worker must wait for the 404 before sending the uid
again). Time comes from the sandbox's clock, passed in.
Not thread-safe: callers hold the sandbox lock.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

from fullstory_sandbox.clock import Clock
from fullstory_sandbox.messages import JsonObject
from fullstory_sandbox.validation import ValidUser


@dataclass
class StoredUser:
    """One user as FullStory holds it. `types` is keyed by dotted leaf path."""

    id: str
    uid: str
    display_name: str | None = None
    email: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "display_name": self.display_name,
            "email": self.email,
            "properties": copy.deepcopy(self.properties),
            "types": dict(self.types),
        }


@dataclass(frozen=True)
class Violation:
    """An upsert of a uid whose deletion was still running (the order a worker must keep)."""

    uid: str
    at: float  # the sandbox clock's monotonic time of the upsert

    def to_json(self) -> JsonObject:
        return {"uid": self.uid, "at": self.at}


class UserStore:
    """Users by uid, with upsert counts and deletions in progress."""

    def __init__(self, clock: Clock, delete_s: float = 0.0) -> None:
        """``delete_s``: how long a deletion runs in the background."""
        self._clock = clock
        self._delete_s = delete_s
        self._deleting: dict[str, float] = {}  # uid -> when its deletion ends (monotonic)
        self.violations: list[Violation] = []
        self._users: dict[str, StoredUser] = {}
        self._upserts: dict[str, int] = {}
        self._duplicates = 0
        # Ids never repeat, even across clear(), so a stale id cannot match a new user.
        self._ids = itertools.count(1)

    def upsert(self, user: ValidUser) -> StoredUser:
        """Applies one validated request; returns the stored user after the merge."""
        self._settle()
        if user.uid in self._deleting:
            self.violations.append(Violation(user.uid, self._clock.monotonic()))
        stored = self._users.get(user.uid)
        if stored is None:
            stored = StoredUser(id=f"{next(self._ids)}", uid=user.uid)
            self._users[user.uid] = stored
        if "display_name" in user.fields:
            stored.display_name = user.fields["display_name"]
        if "email" in user.fields:
            stored.email = user.fields["email"]
        types = stored.types
        for name, value in user.properties.items():
            # The types recorded under `name`: its own, or its leaves' when it held an object
            # (names hold no dots: only nesting makes a dotted path).
            if isinstance(stored.properties.get(name), dict):
                prefix = f"{name}."
                for path in [p for p in types if p.startswith(prefix)]:
                    del types[path]
            types.pop(name, None)
            # JSON scalars are immutable: only objects and arrays need their own copy.
            stored.properties[name] = (
                copy.deepcopy(value) if isinstance(value, dict | list) else value
            )
        types.update(user.types)
        seen = self._upserts.get(user.uid, 0)
        if seen:
            self._duplicates += 1
        self._upserts[user.uid] = seen + 1
        return stored

    def delete(self, uid: str) -> bool:
        """Starts deleting the user (again, if it is being deleted: the deletion restarts);
        False when no such uid exists."""
        self._settle()
        if uid not in self._users:
            return False
        self._deleting[uid] = self._clock.monotonic() + self._delete_s
        self._settle()
        return True

    def is_being_deleted(self, uid: str) -> bool:
        self._settle()
        return uid in self._deleting

    def get(self, uid: str) -> StoredUser | None:
        self._settle()
        return self._users.get(uid)

    def _settle(self) -> None:
        """Ends the deletions whose time has come."""
        if not self._deleting:
            return
        now = self._clock.monotonic()
        for uid in [u for u, ends in self._deleting.items() if ends <= now]:
            del self._deleting[uid]
            self._users.pop(uid, None)

    def __len__(self) -> int:
        self._settle()
        return len(self._users)

    @property
    def duplicates(self) -> int:
        """Upserts of a uid beyond its first (batch jobs and `POST /v2/users` alike)."""
        return self._duplicates

    @property
    def upserts(self) -> int:
        return sum(self._upserts.values())

    def snapshot(self) -> dict[str, JsonObject]:
        """Every user as `{uid: {"id", "display_name", "email", "properties", "types"}}`
        (users being deleted included)."""
        self._settle()
        return {uid: user.to_json() for uid, user in self._users.items()}

    def clear(self) -> None:
        self._deleting.clear()
        self.violations.clear()
        self._users.clear()
        self._upserts.clear()
        self._duplicates = 0
