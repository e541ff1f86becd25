"""FullStory's published rules, checked on each decoded event before it is merged. Pure.

An event that breaks a rule raises ``InvalidRecord`` with a precise code and the field it
names (never the value: values may be personal data); it is dead-lettered alone, and the
user's other events still go. FullStory's own per-user errors stay the last line of defence.

| rule (FullStory v2)                                       | code                    |
|-----------------------------------------------------------|-------------------------|
| uid at most 256 characters, no control characters         | `invalid_uid`           |
| the worker's own: no format characters in a uid (opt-in)  | `invalid_uid`           |
| display_name at most 256 characters                       | `invalid_display_name`  |
| email at most 128 characters                              | `invalid_email`         |
| property name `^[A-Za-z][A-Za-z0-9_]*$`, at most 512      | `invalid_property_name` |
| property value at most 8,192 bytes as compact UTF-8 JSON  | `property_too_large`    |
| numbers finite (JSON has no NaN or Infinity)              | `non_finite_number`     |
| a value matching its name's type suffix (`visits_int`)   | `type_mismatch`         |
| the worker's own: one name per property in an event       | `property_collision`    |
| at most 500 properties on the merged user (``merge``)     | `too_many_properties`   |

Type suffixes (FullStory's v1 naming: ``plan_str``, ``visits_int``, ``spent_real``,
``beta_bool``, ``signup_date`` and the plurals ``_strs`` ...) are understood in both modes:
the value must match the suffix. ``PropertyNames`` gives the name as it is sent, by mode
(``PropertyTypes``, the ``PROPERTY_TYPES`` setting):

- ``V2`` (declared types): the suffix is removed and the type declared in ``schema``
  (``spent_real: 3`` is sent as ``spent: 3.0`` declared ``real``);
- ``SUFFIXED``: every name carries a suffix, derived from the Avro type when the producer
  wrote none (``plan`` -> ``plan_str``), and nothing is declared.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime
from math import isfinite

from worker.config.choices import PropertyTypes
from worker.errors import DeadLetterCode, InvalidRecord
from worker.events.change import Cleared, PropertyValue, UserChange
from worker.events.merge import MAX_PROPERTIES_PER_USER, DateStr, declared_type

Value = bool | int | float | str  # a property value that is not null

UID_MAX_CHARS = 256
DISPLAY_NAME_MAX_CHARS = 256
EMAIL_MAX_CHARS = 128
PROPERTY_NAME_MAX_CHARS = 512
PROPERTY_VALUE_MAX_BYTES = 8192

_PROPERTY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Printable characters that show as nothing (Unicode's default-ignorable letters and marks,
# beside the format characters): the combining grapheme joiner, Hangul fillers, Khmer
# inherent vowels, Mongolian and other variation selectors. ``u\u31641`` looks like ``u1``.
_INVISIBLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u3164\ufe00-\ufe0f\uffa0"
    "\U000e0100-\U000e01ef]"
)
_SINGULAR = ("str", "int", "real", "bool", "date")
_SUFFIXES = frozenset(_SINGULAR) | frozenset(t + "s" for t in _SINGULAR)
# Characters a string can hold and still be under the value limit whatever they are: a
# character takes at most 6 bytes in JSON (an escape), plus the two quotes.
_SURELY_SMALL = (PROPERTY_VALUE_MAX_BYTES - 2) // 6
_NAMES_CACHED = 10_000  # distinct property names remembered as checked


def suffix_of(name: str) -> str | None:
    """The type suffix a property name carries (``visits_int`` -> ``int``), or None."""
    base, _, suffix = name.rpartition("_")
    return suffix if base and suffix in _SUFFIXES else None


class PropertyNames:
    """Checks property names and gives each the name it is sent under, for one mode."""

    def __init__(self, mode: PropertyTypes = PropertyTypes.V2) -> None:
        self.mode = PropertyTypes(mode)  # ValueError for a mode it does not know
        # name -> (name as sent, or None when it depends on the value's type; suffix or None)
        self._checked: dict[str, tuple[str | None, str | None]] = {}
        self.unchanged: set[str] = set()  # valid names sent as they are, without a suffix

    def lookup(self, name: str) -> tuple[str | None, str | None]:
        known = self._checked.get(name)
        if known is None:
            known = self._check(name)
            if len(self._checked) >= _NAMES_CACHED:
                self._checked.clear()
                self.unchanged.clear()
            self._checked[name] = known
            if known == (name, None):
                self.unchanged.add(name)
        return known

    def _check(self, name: str) -> tuple[str | None, str | None]:
        if not _PROPERTY_NAME.fullmatch(name):
            raise InvalidRecord(
                DeadLetterCode.INVALID_PROPERTY_NAME,
                f"property {_shown(name)} does not match ^[A-Za-z][A-Za-z0-9_]*$",
            )
        suffix = suffix_of(name)
        if self.mode is PropertyTypes.V2:
            sent: str | None = name if suffix is None else name[: -len(suffix) - 1]
        else:
            sent = name if suffix is not None else None
        longest = name if sent is None else sent
        if len(longest) + (5 if sent is None else 0) > PROPERTY_NAME_MAX_CHARS:
            raise InvalidRecord(
                DeadLetterCode.INVALID_PROPERTY_NAME,
                f"property {_shown(name)} is longer than {PROPERTY_NAME_MAX_CHARS} characters",
            )
        return sent, suffix


class Rules:
    """``check`` one decoded event: returns it (its properties renamed as they are sent) or
    raises ``InvalidRecord``."""

    def __init__(
        self, mode: PropertyTypes = PropertyTypes.V2, *, allow_format_characters: bool = False
    ) -> None:
        """``allow_format_characters``: ``UID_ALLOW_FORMAT_CHARACTERS``, uids may hold
        Unicode format characters (``check_uid``)."""
        self.names = PropertyNames(mode)
        self.allow_format_characters = allow_format_characters

    def check(self, change: UserChange) -> UserChange:
        self.check_uid(change["uid"])
        # Rules run before a mapped row's NULLs become CLEAR (``events.mapping``): strings here.
        display_name = change["display_name"]
        if display_name is not None and len(display_name) > DISPLAY_NAME_MAX_CHARS:  # type: ignore[arg-type]
            raise InvalidRecord(
                DeadLetterCode.INVALID_DISPLAY_NAME,
                f"display_name is longer than {DISPLAY_NAME_MAX_CHARS} characters",
            )
        email = change["email"]
        if email is not None and len(email) > EMAIL_MAX_CHARS:  # type: ignore[arg-type]
            raise InvalidRecord(
                DeadLetterCode.INVALID_EMAIL, f"email is longer than {EMAIL_MAX_CHARS} characters"
            )
        properties = change["properties"]
        if properties:
            checked = self._properties(properties)
            if checked is not properties:
                change["properties"] = checked
        return change

    def check_uid(self, uid: str, *, deleting: bool = False) -> str:
        """The uid, when FullStory takes it (a delete's, a tombstone key's, any change's).
        A look-alike uid (format or invisible characters) is refused for an upsert, so no
        such user is created; a delete of one goes through (``deleting``): deleting a user
        that looks like another creates nothing, and one imported before the rule (or while
        the operator allowed them) can still be deleted."""
        if len(uid) > UID_MAX_CHARS:
            raise InvalidRecord(
                DeadLetterCode.INVALID_UID, f"uid is longer than {UID_MAX_CHARS} characters"
            )
        checked = not (deleting or self.allow_format_characters)
        if not uid.isprintable():  # every character below is one isprintable refuses
            if _CONTROL.search(uid):
                raise InvalidRecord(DeadLetterCode.INVALID_UID, "uid holds a control character")
            if checked:
                _check_format_characters(uid)
        if checked and (invisible := _INVISIBLE.search(uid)):
            raise _look_alike(invisible.group(), "the invisible character")
        return uid

    def _properties(self, properties: dict[str, PropertyValue]) -> dict[str, PropertyValue]:
        if len(properties) > MAX_PROPERTIES_PER_USER:
            raise InvalidRecord(
                DeadLetterCode.TOO_MANY_PROPERTIES,
                f"{len(properties)} properties, more than {MAX_PROPERTIES_PER_USER}",
            )
        # The common case, inline (this runs for every record): names seen before that are
        # sent as they are, finite numbers, short strings. Anything else takes the full path.
        unchanged = self.names.unchanged
        for name, value in properties.items():
            if name not in unchanged:
                return self._renamed(properties)
            cls = value.__class__
            if cls is float:
                if value - value != 0.0:  # type: ignore[operator]  # inf or NaN
                    return self._renamed(properties)
            elif cls is str and len(value) > _SURELY_SMALL:  # type: ignore[arg-type]
                return self._renamed(properties)
        return properties

    def _renamed(self, properties: dict[str, PropertyValue]) -> dict[str, PropertyValue]:
        """The properties under the names they are sent with, values as they are sent;
        ``property_collision`` when two of them set one property (``plan`` and ``plan_str``):
        which one the producer meant cannot be told, and keeping the last would lose the
        other (or change the property's type) without a word. A null changes nothing, so it
        collides with nothing."""
        renamed: dict[str, PropertyValue] = {}
        for name, value in properties.items():
            sent, typed = self._property(name, value)
            if sent is None:  # a null whose name depends on its type, a no-op
                continue
            if sent in renamed:
                if typed is None:
                    continue
                if renamed[sent] is not None:
                    raise self._collision(properties, name, sent)
            renamed[sent] = typed
        return renamed

    def _collision(
        self, properties: dict[str, PropertyValue], name: str, sent: str
    ) -> InvalidRecord:
        earlier = next(
            other
            for other, value in properties.items()
            if value is not None and other != name and self._property(other, value)[0] == sent
        )
        return InvalidRecord(
            DeadLetterCode.PROPERTY_COLLISION,
            f"properties {_shown(earlier)} and {_shown(name)} are both sent as {_shown(sent)}",
        )

    def _property(self, name: str, value: PropertyValue) -> tuple[str | None, PropertyValue]:
        sent, suffix = self.names.lookup(name)
        if value is None or isinstance(value, Cleared):
            return sent, value
        typed = _plain(name, value) if suffix is None else _suffixed(name, suffix, value)
        return (f"{name}_{declared_type(typed)}" if sent is None else sent), typed


def _check_format_characters(uid: str) -> None:
    """``invalid_uid`` for a Unicode format character (category Cf: zero-width, joiners, bidi
    controls, BOM, tags): it changes how the uid is shown, not what it is, so ``u\u200b1``
    would be a second user shown as ``u1`` in FullStory, and ``admin\u202egnp.exe`` would be
    shown as ``adminexe.png``."""
    for char in uid:
        if unicodedata.category(char) == "Cf":
            raise _look_alike(char, "the format character")


def _look_alike(char: str, kind: str) -> InvalidRecord:
    return InvalidRecord(
        DeadLetterCode.INVALID_UID,
        f"uid holds {kind} U+{ord(char):04X}, which changes how it is shown "
        "(UID_ALLOW_FORMAT_CHARACTERS=true lets it through)",
    )


def _plain(name: str, value: Value) -> Value:
    """The value itself, once it is known to be one FullStory takes."""
    if isinstance(value, float):
        if not isfinite(value):
            raise InvalidRecord(
                DeadLetterCode.NON_FINITE_NUMBER, f"property {_shown(name)} is not a finite number"
            )
    elif isinstance(value, str) and len(value) > _SURELY_SMALL:
        _check_size(name, value)
    return value


def _suffixed(name: str, suffix: str, value: Value) -> Value:
    """The value as it is sent under a suffixed name, or ``type_mismatch``. Like FullStory:
    a number is a ``real``, an integral number an ``int``; a ``date`` is an ISO-8601 string;
    a single value never matches a plural."""
    if suffix == "date":
        if isinstance(value, str) and _is_iso_date(value):
            return DateStr(_plain(name, value))
        raise _mismatch(name, suffix, "is not an ISO-8601 date")
    if suffix == "real" and declared_type(value) == "int":
        value = float(value)
    elif suffix == "int" and isinstance(value, float) and value.is_integer():
        if not -(2.0**63) <= value < 2.0**63:
            raise _mismatch(name, suffix, "is beyond a 64-bit integer")
        value = int(value)
    if declared_type(value) != suffix:
        raise _mismatch(name, suffix, f"holds a {declared_type(value)}")
    return _plain(name, value)


def _mismatch(name: str, suffix: str, what: str) -> InvalidRecord:
    return InvalidRecord(
        DeadLetterCode.TYPE_MISMATCH, f"property {_shown(name)} {what}, its suffix says {suffix}"
    )


def _check_size(name: str, value: str) -> None:
    encoded = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if len(encoded) > PROPERTY_VALUE_MAX_BYTES:
        raise InvalidRecord(
            DeadLetterCode.PROPERTY_TOO_LARGE,
            f"property {_shown(name)} is larger than {PROPERTY_VALUE_MAX_BYTES} bytes",
        )


def _is_iso_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _shown(name: str) -> str:
    """A property name as an error shows it: quoted, at most 64 characters."""
    return repr(name if len(name) <= 64 else name[:64] + "...")
