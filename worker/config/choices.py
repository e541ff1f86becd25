"""Closed sets of values a setting chooses from, for the code that acts on the choice.

``worker.config.spec`` declares each as its setting's ``choices``; this module imports nothing,
so any package may name a choice without importing the settings.
"""

from __future__ import annotations

from enum import StrEnum


class PropertyTypes(StrEnum):
    """``PROPERTY_TYPES``: how a property's type reaches FullStory (``worker.events.rules``)."""

    V2 = "v2"  # declared in the request's ``schema``; a name's v1 type suffix is removed
    SUFFIXED = "suffixed"  # every name carries its v1 type suffix; nothing is declared

    @property
    def declares_types(self) -> bool:
        """Whether a request declares each property's type in its ``schema``."""
        return self is PropertyTypes.V2


class SourceFormat(StrEnum):
    """``SOURCE_FORMAT``: what the source topics carry (``worker.events``)."""

    CANONICAL = "canonical"  # the worker's own UserChange schema (schemas/user_change.avsc)
    DEBEZIUM = "debezium"  # Debezium change events of a table, mapped by FIELD_MAPPING


class OnDelete(StrEnum):
    """``ON_DELETE``: what a user deleted at the source does in FullStory (``worker.loop``)."""

    IGNORE = "ignore"  # acknowledged and counted, nothing sent
    DELETE = "delete"  # DELETE /v2/users?uid=, in the uid's order
