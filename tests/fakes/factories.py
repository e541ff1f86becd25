"""Small builders shared by the unit tests."""

from __future__ import annotations

from worker.events.change import PropertyValue, UserChange
from worker.records import SourceRecord


def record(offset: int, partition: int = 0, topic: str = "users") -> SourceRecord:
    return SourceRecord(topic=topic, partition=partition, offset=offset, key=b"k", value=b"v")


def change(
    uid: str,
    display_name: str | None = None,
    email: str | None = None,
    **properties: PropertyValue,
) -> UserChange:
    return UserChange(
        uid=uid, changed_at=0, display_name=display_name, email=email, properties=properties
    )
