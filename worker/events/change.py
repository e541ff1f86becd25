"""The events a record decodes to. Plain data, no I/O.

* ``UserChange``: an upsert of one user, as the reader schema (``schemas/user_change.avsc``)
  decodes it, or as a field mapping makes it of a table row (``events.mapping``);
* ``Delete``: the user was deleted at the source (a canonical tombstone keyed by the uid, a
  Debezium ``op=d``, a flattened row with ``__deleted="true"``);
* ``Skipped``: a record that asks nothing of FullStory (``Skip`` says why): acknowledged at
  once and counted, never imported or dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict


class Cleared:
    """The value of a field or property a full row leaves empty (a NULL column): sent as JSON
    ``null``, which clears it in FullStory. A partial event's ``None`` leaves it as it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "CLEAR"


CLEAR = Cleared()

# A property value as the Avro schema allows it (null leaves the property as it is).
PropertyValue = bool | int | float | str | Cleared | None


class UserChange(TypedDict):
    """An update of one user, as Avro decodes it (the reader schema's fields, logical types
    dropped): ``None`` leaves a field or property as it is, ``CLEAR`` empties it."""

    uid: str
    changed_at: int  # epoch millis
    display_name: str | Cleared | None
    email: str | Cleared | None
    properties: dict[str, PropertyValue]


@dataclass(frozen=True, slots=True)
class Delete:
    """The user ``uid`` is gone at the source."""

    uid: str


class Skip(StrEnum):
    """Why a record asks nothing of FullStory: the ``reason`` label of
    ``fsus_records_skipped_total``. A closed set; the values are an interface."""

    UNCHANGED = "unchanged"  # an update whose mapped columns did not change
    DELETE_IGNORED = "delete_ignored"  # a delete, with ON_DELETE=ignore
    KEY_CHANGE = "key_change"  # the delete half of a primary-key change
    TOMBSTONE = "tombstone"  # a Debezium tombstone (its op=d carried the delete)
    TRUNCATE = "truncate"  # op=t: a table truncated (never a per-user delete)
    MESSAGE = "message"  # op=m: a logical-decoding message


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: Skip


Event = UserChange | Delete | Skipped
