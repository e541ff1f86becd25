"""The decoder ``SOURCE_FORMAT`` asks for, built once from the settings: the one factory
``run`` and ``preview`` share, so a preview decodes exactly as the worker does."""

from __future__ import annotations

from collections.abc import Callable

from worker.config.choices import SourceFormat
from worker.config.settings import Settings
from worker.errors import ConfigError
from worker.events.debezium import DebeziumDecoder
from worker.events.decode import Decoder, load_reader_schema
from worker.events.mapping import load_mapping
from worker.events.readers import ReaderChoice
from worker.events.registry import SchemaRegistry
from worker.events.rules import Rules


def decoder_for(
    settings: Settings,
    registry: SchemaRegistry | None,
    *,
    on_problem: Callable[[int, str], None],
    on_reader: Callable[[ReaderChoice], None],
) -> Decoder | DebeziumDecoder:
    """The source format's decoder, checking FullStory's rules (``PROPERTY_TYPES``,
    ``UID_ALLOW_FORMAT_CHARACTERS``). ``on_problem(schema_id, message)``: a writer schema the
    field mapping does not fit (Debezium); ``on_reader``: which reader reads a schema. A
    field mapping that cannot be read is a ConfigError."""
    rules = Rules(
        settings.property_types, allow_format_characters=settings.uid_allow_format_characters
    )
    if settings.source_format is SourceFormat.DEBEZIUM:
        if settings.field_mapping is None or registry is None:  # load_settings requires both
            raise ConfigError("FIELD_MAPPING", "is required with SOURCE_FORMAT=debezium")
        return DebeziumDecoder(
            load_mapping(settings.field_mapping, settings.property_types),
            registry.writer_schema,
            rules,
            on_problem=on_problem,
            on_reader=on_reader,
        )
    return Decoder(
        load_reader_schema(),
        registry.writer_schema if registry else None,
        rules,
        settings.local_schema_ids,
        on_reader=on_reader,
    )
