"""FullStory property types: inference from JSON values and checks against declared types.

Contract (FullStory v2 custom properties):
- Declarable types are `str`, `int`, `real`, `bool`, `date` and the plurals `strs`, `ints`,
  `reals`, `bools`, `dates`.
- Without a declaration every JSON number is `real`, a boolean `bool`, a string `str`
  (strings are never inferred as dates), an array the plural of its elements' type
  (`strs` when empty or mixed).
- `int` accepts integral numbers only (`3` and `3.0`, not `3.5`, not `"3"`); `real` any
  number; `date` an ISO-8601 string. Booleans are never numbers.
- `null` conforms to every declared type and carries no type of its own.
"""

from __future__ import annotations

from datetime import datetime

SINGULAR_TYPES = frozenset({"str", "int", "real", "bool", "date"})
PLURAL_TYPES = frozenset(name + "s" for name in SINGULAR_TYPES)
DECLARABLE_TYPES = SINGULAR_TYPES | PLURAL_TYPES


def suffix_of(name: str) -> str | None:
    """The type a v1-style suffix declares (`visits_int` -> `int`, `tags_strs` -> `strs`)."""
    base, _, suffix = name.rpartition("_")
    return suffix if base and suffix in DECLARABLE_TYPES else None


def is_number(value: object) -> bool:
    """True for JSON numbers (Python int or float), false for booleans."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_primitive(value: object) -> bool:
    """True for values allowed as array elements: string, number, boolean or null."""
    return value is None or isinstance(value, str | bool) or is_number(value)


def infer_type(value: object) -> str | None:
    """The type FullStory infers for a leaf value; None for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "real"
    if isinstance(value, list):
        kinds = {infer_type(item) for item in value if item is not None}
        if len(kinds) == 1:
            return f"{kinds.pop()}s"
        return "strs"
    return "str"


def conforms(declared: str, value: object) -> bool:
    """Whether `value` satisfies the declared type (`declared` must be declarable)."""
    if value is None:
        return True
    if declared in PLURAL_TYPES:
        return isinstance(value, list) and all(conforms(declared[:-1], item) for item in value)
    if declared == "str":
        return isinstance(value, str)
    if declared == "bool":
        return isinstance(value, bool)
    if declared == "real":
        return is_number(value)
    if declared == "int":
        if isinstance(value, float):
            return value.is_integer()
        return is_number(value)
    if declared == "date":
        return isinstance(value, str) and _is_iso_date(value)
    return False


def normalize(declared: str, value: object) -> object:
    """The stored form of a conforming value: integral floats declared `int` become ints."""
    if declared == "int" and isinstance(value, float):
        return int(value)
    if declared == "ints" and isinstance(value, list):
        return [normalize("int", item) for item in value]
    return value


def _is_iso_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
