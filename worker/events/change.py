"""The event: one user's partial change, as the reader schema (``schemas/user_change.avsc``)
decodes it. Plain data, no I/O."""

from __future__ import annotations

from typing import TypedDict

# A property value as the Avro schema allows it (null leaves the property as it is).
PropertyValue = bool | int | float | str | None


class UserChange(TypedDict):
    """A partial update of one user, as Avro decodes it (the reader schema's fields, logical
    types dropped): ``None`` leaves a field or property as it is."""

    uid: str
    changed_at: int  # epoch millis
    display_name: str | None
    email: str | None
    properties: dict[str, PropertyValue]
