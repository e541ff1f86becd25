"""Avro user changes -> FullStory ``BatchUserImportRequest`` objects. Pure.

Events are partial updates: a ``None`` field or property leaves the value as it is, and
``CLEAR`` (a full row's NULL column, ``events.mapping``) empties it: it is sent as ``null``.
All events of one uid in a batch fold, in offset order, into one request object whose
``schema`` declares each property's type from its Avro value type, because FullStory
infers every JSON number as ``real`` unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from sys import intern
from typing import Any

from worker.errors import DeadLetterCode, InvalidRecord
from worker.events.change import CLEAR, Cleared, UserChange

MAX_PROPERTIES_PER_USER = 500


class DateStr(str):
    """A string value sent as a ``date`` (it came under a ``_date`` name)."""

    __slots__ = ()


def declared_type(value: bool | int | float | str) -> str:
    """FullStory's declared type for an Avro value (``bool`` before ``int``: it is one)."""
    cls = value.__class__
    if cls is bool:
        return "bool"
    if cls is int:
        return "int"
    if cls is float:
        return "real"
    if cls is DateStr:
        return "date"
    return "str"


@dataclass(slots=True)
class UserUpdate:
    """The fold of one uid's changes: what one request object will carry."""

    uid: str
    display_name: str | Cleared | None = None
    email: str | Cleared | None = None
    properties: dict[str, bool | int | float | str | Cleared] = field(default_factory=dict)

    def apply(self, change: UserChange) -> None:
        """Fold a later change on top: non-null values (``CLEAR`` included) win, nulls leave
        things as they are.
        A change that would take the user over FullStory's limit of properties raises
        ``InvalidRecord`` (``too_many_properties``) and changes nothing."""
        properties = change["properties"]
        mine = self.properties
        if properties and len(mine) + len(properties) > MAX_PROPERTIES_PER_USER:
            self._check_room(properties)
        display_name, email = change["display_name"], change["email"]
        if display_name is not None:
            self.display_name = display_name
        if email is not None:
            self.email = email
        if properties:
            for name, value in properties.items():
                if value is not None:
                    if name in mine:
                        mine[name] = value
                    else:  # kept as long as the user waits: one copy of each name
                        mine[intern(name)] = value

    def _check_room(self, properties: dict[str, Any]) -> None:
        new = sum(1 for n, v in properties.items() if v is not None and n not in self.properties)
        if len(self.properties) + new > MAX_PROPERTIES_PER_USER:
            raise InvalidRecord(
                DeadLetterCode.TOO_MANY_PROPERTIES,
                f"the user would have {len(self.properties) + new} properties, "
                f"more than {MAX_PROPERTIES_PER_USER}",
            )

    def to_request(self, declare_types: bool = True) -> dict[str, Any]:
        """The ``BatchUserImportRequest`` JSON object; ``declare_types`` False when the
        property names carry their type suffixes instead (``PropertyTypes.SUFFIXED``)."""
        request: dict[str, Any] = {"uid": self.uid}
        display_name, email = self.display_name, self.email
        if display_name is not None:
            request["display_name"] = None if display_name is CLEAR else display_name
        if email is not None:
            request["email"] = None if email is CLEAR else email
        properties = self.properties
        if properties:
            request["properties"] = {n: None if v is CLEAR else v for n, v in properties.items()}
            if declare_types:
                # A cleared property declares nothing: null conforms to every type.
                declared = {
                    n: declared_type(v)  # type: ignore[arg-type]  # CLEAR is filtered out
                    for n, v in properties.items()
                    if v is not CLEAR
                }
                if declared:
                    request["schema"] = {"properties": declared}
        return request


def fold(changes: list[UserChange]) -> UserUpdate:
    """Merge one uid's changes, given in offset order."""
    if not changes:
        raise ValueError("fold needs at least one change")
    update = UserUpdate(uid=changes[0]["uid"])
    for change in changes:
        if change["uid"] != update.uid:
            raise ValueError("fold takes the changes of one uid")
        update.apply(change)
    return update
